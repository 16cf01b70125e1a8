//! The `ml` source type: models behind HTTP model servers (`integrations/ml_config.yaml`).
//!
//! **Features → tensor.** A model declares its `inputs` in order. Each row of features is an
//! object: the data source's params themselves (one row), or a `rows` param holding an array
//! of objects (a batch) or one object. Each input is taken from the row by name and cast to
//! the model's `datatype` (`FP64` unless declared): numbers and numeric strings for `FP*`,
//! integers for `INT*`/`UINT*`, booleans (or 0/1) for `BOOL`, text for `BYTES`. A missing or
//! null input fails the source as `rejected` before any call.
//!
//! **Protocols.**
//! - `v2` (Open Inference Protocol: KServe, Triton, MLServer): `POST
//!   /v2/models/{model}[/versions/{v}]/infer` with one input tensor (`input_name`, default
//!   `input-0`) of shape `[rows, inputs]`, asking for the output tensors the `outputs` mapping
//!   names.
//! - `tfserving`: `POST /v1/models/{model}[/versions/{v}]:predict` with `instances` (rows as
//!   lists, the default), `instances_named` (rows as objects) or `inputs` (columns).
//! - `mlflow`: `POST /invocations` with `dataframe_split` (the default), `dataframe_records` or
//!   `inputs`; both the MLflow 2 answer `{"predictions": …}` and the 1.x bare list are read.
//! - `json`: `POST` of the resolved params as they are to `endpoint`; the answer is the one
//!   prediction.
//!
//! **Outputs.** Each row's prediction (for `v2`, an object of the output tensors' values for
//! that row; a tensor of one value per row gives a scalar) is mapped by `outputs`: field →
//! path, e.g. `probability: predict_proba[1]`, `class: predict`. Without `outputs` the
//! prediction is returned as it is. One row gives an object, a batch an array.
//!
//! [`check_models`] compares the config with what `v2` servers publish about their models.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::http::{HttpClient, Outgoing};
use super::{DataSource, SourceCall, SourceError, SourceErrorKind, SourceFactory};
use crate::diagnostic::{Code, Diagnostic, KeyPath};
use crate::plan::{Integrations, Model, ModelProtocol, OutputPath, OutputStep, Plan};

/// Builds the `ml` source for each config version and domain scope: one client per server.
#[derive(Debug, Clone, Copy, Default)]
pub struct MlFactory;

impl SourceFactory for MlFactory {
    fn build(&self, integrations: &Integrations) -> Result<Arc<dyn DataSource>, SourceError> {
        let mut servers = HashMap::new();
        for (id, server) in &integrations.ml.sources {
            let client = Arc::new(HttpClient::new(
                id,
                server.base_url.expose(),
                &server.http,
                Vec::new(),
                Vec::new(),
            )?);
            let mut models = HashMap::new();
            for (name, model) in &server.models {
                models.insert(name.clone(), Arc::new(PreparedModel::new(name, model)?));
            }
            servers.insert(id.clone(), Server { client, models });
        }
        Ok(Arc::new(MlSource { servers }))
    }
}

struct Server {
    client: Arc<HttpClient>,
    models: HashMap<String, Arc<PreparedModel>>,
}

/// A model ready to call.
struct PreparedModel {
    model: Model,
    path: String,
    datatype: String,
    outputs: Vec<(String, OutputPath)>,
    /// V2 output tensors to ask for.
    tensors: Vec<String>,
    /// The model's own `headers`.
    headers: Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
    /// An absolute `endpoint` (the original service's form): called instead of `base_url`.
    absolute: Option<reqwest::Url>,
}

impl PreparedModel {
    fn new(name: &str, model: &Model) -> Result<Self, SourceError> {
        let outputs = model
            .outputs
            .iter()
            .map(|(field, spec)| {
                OutputPath::parse(spec)
                    .map(|p| (field.clone(), p))
                    .map_err(|e| {
                        SourceError::new(
                            SourceErrorKind::Config,
                            format!("model `{name}`, output `{field}`: {e}"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut tensors = Vec::new();
        for (_, path) in &outputs {
            if let Some(OutputStep::Key(t)) = path.0.first()
                && !tensors.contains(t)
            {
                tensors.push(t.clone());
            }
        }
        let config =
            |e: String| SourceError::new(SourceErrorKind::Config, format!("model `{name}`: {e}"));
        let mut headers = Vec::with_capacity(model.headers.len());
        for (k, v) in &model.headers {
            let name = reqwest::header::HeaderName::try_from(k.as_str())
                .map_err(|_| config(format!("`{k}` is not a header name")))?;
            let mut value = reqwest::header::HeaderValue::try_from(v.expose())
                .map_err(|_| config(format!("the value of header `{k}` is not valid")))?;
            value.set_sensitive(true);
            headers.push((name, value));
        }
        let absolute = match model.endpoint.as_deref() {
            Some(e) if e.starts_with("http://") || e.starts_with("https://") => Some(
                reqwest::Url::parse(e)
                    .map_err(|err| config(format!("`endpoint` is not a URL: {err}")))?,
            ),
            _ => None,
        };
        Ok(Self {
            headers,
            absolute,
            path: model
                .endpoint
                .clone()
                .unwrap_or_else(|| default_path(name, model)),
            datatype: model.datatype.clone().unwrap_or_else(|| "FP64".into()),
            model: model.clone(),
            outputs,
            tensors,
        })
    }
}

/// The conventional path of a model for its protocol.
fn default_path(name: &str, model: &Model) -> String {
    let name = super::http::encode_component(name);
    let version = model
        .version
        .as_deref()
        .map(|v| format!("/versions/{}", super::http::encode_component(v)))
        .unwrap_or_default();
    match model.protocol {
        ModelProtocol::V2 => format!("/v2/models/{name}{version}/infer"),
        ModelProtocol::TfServing => format!("/v1/models/{name}{version}:predict"),
        ModelProtocol::Mlflow => "/invocations".into(),
        ModelProtocol::Json => format!("/{name}"),
    }
}

struct MlSource {
    servers: HashMap<String, Server>,
}

#[async_trait::async_trait]
impl DataSource for MlSource {
    async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
        let name = call.operation.unwrap_or_default();
        let (client, m) = match call.source_id {
            Some(id) => self
                .servers
                .get(id)
                .and_then(|s| s.models.get(name).map(|m| (&s.client, m))),
            None => self
                .servers
                .values()
                .find_map(|s| s.models.get(name).map(|m| (&s.client, m))),
        }
        .ok_or_else(|| {
            SourceError::new(SourceErrorKind::Config, format!("unknown model `{name}`"))
        })?;
        let err = |kind, e: String| SourceError::new(kind, format!("model `{name}`: {e}"));
        let (body, rows, single) = if m.model.protocol == ModelProtocol::Json {
            (Value::Object(call.params.clone()), 1, true)
        } else {
            let (rows, single) = feature_rows(&m.model.inputs, &m.datatype, call.params)
                .map_err(|e| err(SourceErrorKind::Rejected, e))?;
            (
                request_body(m, &rows, &call.request.request_id),
                rows.len(),
                single,
            )
        };
        let out = Outgoing {
            method: reqwest::Method::POST,
            path: m.path.clone(),
            headers: m.headers.clone(),
            absolute: m.absolute.clone(),
            body: Some(body),
            ..Outgoing::default()
        };
        let answer = client
            .send(&call, out)
            .await
            .map_err(|e| err(e.kind, e.message))?;
        let predictions = predictions(m.model.protocol, &answer, rows)
            .map_err(|e| err(SourceErrorKind::InvalidResponse, e))?;
        let mapped = predictions
            .into_iter()
            .map(|p| map_outputs(&m.outputs, p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(SourceErrorKind::InvalidResponse, e))?;
        Ok(if single {
            mapped.into_iter().next().unwrap_or(Value::Null)
        } else {
            Value::Array(mapped)
        })
    }
}

/// The feature rows (each the inputs in order, cast) and whether the caller gave one row.
fn feature_rows(
    inputs: &[String],
    datatype: &str,
    params: &Map<String, Value>,
) -> Result<(Vec<Vec<Value>>, bool), String> {
    let (objects, single): (Vec<&Map<String, Value>>, bool) = match params.get("rows") {
        Some(Value::Array(items)) if params.len() == 1 => (
            items
                .iter()
                .map(|i| {
                    i.as_object()
                        .ok_or("each item of `rows` must be an object of features")
                })
                .collect::<Result<_, _>>()?,
            false,
        ),
        Some(Value::Object(one)) if params.len() == 1 => (vec![one], true),
        Some(_) if params.len() == 1 => {
            return Err("`rows` must be an object or an array of objects".into());
        }
        _ => (vec![params], true),
    };
    let rows = objects
        .iter()
        .enumerate()
        .map(|(r, row)| {
            inputs
                .iter()
                .map(|input| {
                    let v = row.get(input).filter(|v| !v.is_null()).ok_or_else(|| {
                        if single {
                            format!("input `{input}` is missing")
                        } else {
                            format!("input `{input}` is missing in row {r}")
                        }
                    })?;
                    cast(v, datatype)
                        .ok_or_else(|| format!("input `{input}`: {v} is not {datatype}"))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((rows, single))
}

/// `v` as a JSON value of tensor `datatype`.
fn cast(v: &Value, datatype: &str) -> Option<Value> {
    let number = || match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match datatype {
        "BOOL" => match v {
            Value::Bool(b) => Some(Value::Bool(*b)),
            Value::Number(n) => n.as_f64().map(|f| Value::Bool(f != 0.0)),
            _ => None,
        },
        "BYTES" => super::http::scalar_text(v).map(Value::String),
        dt if dt.starts_with("FP") => number().filter(|f| f.is_finite()).map(Value::from),
        dt => {
            let i = match v {
                Value::Number(n) => n
                    .as_i64()
                    .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            }?;
            (!dt.starts_with("UINT") || i >= 0).then(|| Value::from(i))
        }
    }
}

fn request_body(m: &PreparedModel, rows: &[Vec<Value>], request_id: &str) -> Value {
    let inputs = &m.model.inputs;
    let named = |row: &Vec<Value>| -> Map<String, Value> {
        inputs.iter().cloned().zip(row.iter().cloned()).collect()
    };
    let columns = || -> Map<String, Value> {
        inputs
            .iter()
            .enumerate()
            .map(|(i, name)| {
                (
                    name.clone(),
                    Value::Array(rows.iter().map(|r| r[i].clone()).collect()),
                )
            })
            .collect()
    };
    match m.model.protocol {
        ModelProtocol::V2 => {
            let mut body = json!({
                "inputs": [{
                    "name": m.model.input_name.as_deref().unwrap_or("input-0"),
                    "shape": [rows.len(), inputs.len()],
                    "datatype": m.datatype,
                    "data": rows.iter().flatten().collect::<Vec<_>>(),
                }]
            });
            if !request_id.is_empty() {
                body["id"] = json!(request_id);
            }
            if !m.tensors.is_empty() {
                body["outputs"] =
                    Value::Array(m.tensors.iter().map(|t| json!({"name": t})).collect());
            }
            body
        }
        ModelProtocol::TfServing => match m.model.format.as_deref() {
            Some("instances_named") => {
                json!({"instances": rows.iter().map(named).collect::<Vec<_>>()})
            }
            Some("inputs") => json!({"inputs": columns()}),
            _ => json!({"instances": rows}),
        },
        ModelProtocol::Mlflow => match m.model.format.as_deref() {
            Some("dataframe_records") => {
                json!({"dataframe_records": rows.iter().map(named).collect::<Vec<_>>()})
            }
            Some("inputs") => json!({"inputs": columns()}),
            _ => json!({"dataframe_split": {"columns": inputs, "data": rows}}),
        },
        ModelProtocol::Json => Value::Null,
    }
}

/// For the fuzzer (`orchestrator/core/fuzz`, target `upstream`): `body` read as a model
/// server's answer for `rows` rows in `protocol`, each prediction mapped by `outputs` (`field`
/// → `tensor[k]`, `[k]`, `key` …) as the model's `outputs:` would.
#[doc(hidden)]
pub fn __fuzz_answer(
    protocol: ModelProtocol,
    body: &[u8],
    rows: usize,
    outputs: &[(&str, &str)],
) -> Result<Vec<Value>, String> {
    let outputs = outputs
        .iter()
        .map(|(field, spec)| OutputPath::parse(spec).map(|p| ((*field).to_owned(), p)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let answer: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    predictions(protocol, &answer, rows)?
        .into_iter()
        .map(|p| map_outputs(&outputs, p))
        .collect()
}

/// One prediction per row.
fn predictions(protocol: ModelProtocol, answer: &Value, rows: usize) -> Result<Vec<Value>, String> {
    let list = match protocol {
        ModelProtocol::Json => return Ok(vec![answer.clone()]),
        ModelProtocol::V2 => return v2_predictions(answer, rows),
        ModelProtocol::TfServing => answer
            .get("predictions")
            .or_else(|| answer.get("outputs"))
            .ok_or("no `predictions` or `outputs` in the answer")?,
        // MLflow 2.x wraps the list, 1.x returned it bare.
        ModelProtocol::Mlflow => answer.get("predictions").unwrap_or(answer),
    };
    let preds = match list {
        Value::Array(items) => items.clone(),
        // Columns (`{"score": [..], "label": [..]}`) become one object per row.
        Value::Object(cols) => (0..rows)
            .map(|i| {
                Value::Object(
                    cols.iter()
                        .map(|(k, v)| (k.clone(), v.get(i).cloned().unwrap_or(Value::Null)))
                        .collect(),
                )
            })
            .collect(),
        other => return Err(format!("predictions are {other}, not a list")),
    };
    if preds.len() != rows {
        return Err(format!("{} predictions for {rows} rows", preds.len()));
    }
    Ok(preds)
}

fn v2_predictions(answer: &Value, rows: usize) -> Result<Vec<Value>, String> {
    let outputs = answer
        .get("outputs")
        .and_then(Value::as_array)
        .ok_or("no `outputs` in the answer")?;
    let mut preds: Vec<Map<String, Value>> = vec![Map::new(); rows];
    for t in outputs {
        let name = t
            .get("name")
            .and_then(Value::as_str)
            .ok_or("an output without a name")?;
        let shape: Vec<usize> = t
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("output `{name}` has no shape"))?
            .iter()
            .map(|d| {
                d.as_u64()
                    .map(|d| d as usize)
                    .ok_or_else(|| format!("output `{name}`: bad shape"))
            })
            .collect::<Result<_, _>>()?;
        let mut data = Vec::new();
        flatten(
            t.get("data")
                .ok_or_else(|| format!("output `{name}` has no data"))?,
            &mut data,
        );
        if shape.first() != Some(&rows) {
            return Err(format!(
                "output `{name}` has shape {shape:?} for {rows} rows"
            ));
        }
        // The shape comes from the upstream: products that overflow are its mistake.
        let width = shape[1..]
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|w| rows.checked_mul(*w).is_some())
            .ok_or_else(|| format!("output `{name}` has an impossible shape {shape:?}"))?;
        if data.len() != rows * width {
            return Err(format!(
                "output `{name}` has {} values for shape {shape:?}",
                data.len()
            ));
        }
        for (r, pred) in preds.iter_mut().enumerate() {
            let cells = &data[r * width..(r + 1) * width];
            let value = if width == 1 {
                cells[0].clone()
            } else {
                Value::Array(cells.to_vec())
            };
            pred.insert(name.to_owned(), value);
        }
    }
    Ok(preds.into_iter().map(Value::Object).collect())
}

fn flatten(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other.clone()),
    }
}

fn map_outputs(outputs: &[(String, OutputPath)], prediction: Value) -> Result<Value, String> {
    if outputs.is_empty() {
        return Ok(prediction);
    }
    outputs
        .iter()
        .map(|(field, path)| {
            path.get(&prediction)
                .cloned()
                .map(|v| (field.clone(), v))
                .ok_or_else(|| {
                    format!("output `{field}`: the prediction {prediction} has nothing there")
                })
        })
        .collect::<Result<Map<_, _>, _>>()
        .map(Value::Object)
}

/// `GET` of a `v2` model's metadata (`/v2/models/{model}[/versions/{v}]`), bounded by the
/// server's own timeout.
pub(crate) async fn metadata(
    client: &HttpClient,
    name: &str,
    model: &Model,
) -> Result<Value, SourceError> {
    let standalone = super::Standalone::default();
    let params = Map::new();
    let call = standalone.call(name, None, &params);
    let path = default_path(name, model)
        .trim_end_matches("/infer")
        .to_owned();
    client.get(&call, path).await
}

/// Compares every `v2` model of `plan` with the metadata its server publishes
/// (`GET /v2/models/{model}`): the input tensor's name, its datatype and its last dimension
/// against `inputs`. A server that cannot be reached, or a model it does not know, is a
/// finding too; a server that publishes no inputs (MLServer without a model signature) is
/// not. Opt in by calling it after loading, e.g. at start-up or in a deploy check: servers may
/// legitimately be down while a config loads.
pub async fn check_models(plan: &Plan) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (_, integrations) in plan.integrations.iter() {
        for (id, server) in &integrations.ml.sources {
            let Ok(client) = HttpClient::new(
                id,
                server.base_url.expose(),
                &server.http,
                Vec::new(),
                Vec::new(),
            ) else {
                continue;
            };
            for (name, model) in server
                .models
                .iter()
                .filter(|(_, m)| m.protocol == ModelProtocol::V2)
            {
                let path = KeyPath::root()
                    .key("ml")
                    .key("sources")
                    .key(id)
                    .key("models")
                    .key(name);
                let finding = |message: String, help: &str| {
                    Diagnostic::new(Code::ModelMetadata, path.clone(), message)
                        .in_file(model.origin.file.clone())
                        .with_help(help.to_owned())
                };
                let meta = match metadata(&client, name, model).await {
                    Ok(m) => m,
                    Err(e) => {
                        out.push(finding(
                            format!("cannot read the metadata of model `{name}`: {}", e.message),
                            "check `base_url` and the model name, or skip the metadata check while the server is down",
                        ));
                        continue;
                    }
                };
                let published = meta
                    .get("inputs")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if published.is_empty() {
                    continue;
                }
                let wanted = model.input_name.as_deref().unwrap_or("input-0");
                let Some(input) = published
                    .iter()
                    .find(|i| i.get("name").and_then(Value::as_str) == Some(wanted))
                    .or_else(|| {
                        (published.len() == 1 && model.input_name.is_none()).then(|| &published[0])
                    })
                else {
                    let names: Vec<&str> = published
                        .iter()
                        .filter_map(|i| i.get("name")?.as_str())
                        .collect();
                    out.push(finding(
                        format!(
                            "model `{name}` has no input tensor `{wanted}` (it has: {})",
                            names.join(", ")
                        ),
                        "set `input_name` to the model's input tensor",
                    ));
                    continue;
                };
                let datatype = model.datatype.as_deref().unwrap_or("FP64");
                if let Some(dt) = input.get("datatype").and_then(Value::as_str)
                    && dt != datatype
                {
                    out.push(finding(
                        format!("model `{name}` takes {dt}, the config sends {datatype}"),
                        "set `datatype` to the model's",
                    ));
                }
                let last = input
                    .get("shape")
                    .and_then(Value::as_array)
                    .and_then(|s| s.last())
                    .and_then(Value::as_i64);
                if let Some(n) = last
                    && n >= 0
                    && n as usize != model.inputs.len()
                {
                    out.push(finding(
                        format!(
                            "model `{name}` takes {n} features per row, the config lists {} `inputs`",
                            model.inputs.len()
                        ),
                        "list the model's features under `inputs`, in its order",
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_features_to_the_tensor_type() {
        assert_eq!(cast(&json!("1.5"), "FP32"), Some(json!(1.5)));
        assert_eq!(cast(&json!(3.0), "INT64"), Some(json!(3)));
        assert_eq!(cast(&json!(3.5), "INT64"), None);
        assert_eq!(cast(&json!(-1), "UINT8"), None);
        assert_eq!(cast(&json!(1), "BOOL"), Some(json!(true)));
        assert_eq!(cast(&json!(7), "BYTES"), Some(json!("7")));
        assert_eq!(cast(&json!(null), "FP64"), None);
    }

    #[test]
    fn splits_v2_tensors_by_row() {
        let answer = json!({"outputs": [
            {"name": "predict_proba", "shape": [2, 2], "datatype": "FP64", "data": [0.1, 0.9, 0.8, 0.2]},
            {"name": "predict", "shape": [2, 1], "datatype": "INT64", "data": [[1], [0]]}
        ]});
        let preds = v2_predictions(&answer, 2).unwrap();
        assert_eq!(preds[0], json!({"predict_proba": [0.1, 0.9], "predict": 1}));
        let outputs = vec![
            (
                "probability".to_owned(),
                OutputPath::parse("predict_proba[1]").unwrap(),
            ),
            ("class".to_owned(), OutputPath::parse("predict").unwrap()),
        ];
        assert_eq!(
            map_outputs(&outputs, preds[1].clone()).unwrap(),
            json!({"probability": 0.2, "class": 0})
        );
        assert!(v2_predictions(&answer, 3).is_err());
    }

    #[test]
    fn an_upstream_shape_that_overflows_is_an_invalid_answer_not_a_panic() {
        for shape in [
            json!([2, 9_223_372_036_854_775_808_u64]),
            json!([2, 4_294_967_296_u64, 4_294_967_296_u64]),
            json!([2, 0, 18_446_744_073_709_551_615_u64]),
        ] {
            let answer = json!({"outputs": [
                {"name": "p", "shape": shape, "datatype": "FP64", "data": [0.1, 0.9]}
            ]});
            let err = v2_predictions(&answer, 2).unwrap_err();
            assert!(
                err.contains("impossible shape") || err.contains("values for shape"),
                "{err}"
            );
        }
    }

    #[test]
    fn reads_mlflow_1_and_2_answers() {
        let v1 = predictions(ModelProtocol::Mlflow, &json!([0.2, 0.7]), 2).unwrap();
        let v2 = predictions(
            ModelProtocol::Mlflow,
            &json!({"predictions": [0.2, 0.7]}),
            2,
        )
        .unwrap();
        assert_eq!(v1, v2);
        let cols = predictions(
            ModelProtocol::TfServing,
            &json!({"outputs": {"score": [0.1, 0.2]}}),
            2,
        )
        .unwrap();
        assert_eq!(cols[1], json!({"score": 0.2}));
    }
}
