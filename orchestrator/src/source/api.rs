//! The `api` source type: operations of external HTTP services (`integrations/api_sources.yaml`).
//!
//! `{name}` placeholders in the path, query values, header values and body are filled from the
//! data source's params. A path value is percent-encoded into its segment (a `/`, `?`, `#` or
//! `@` in it is data, and a segment that would read `.` or `..` is refused), query values are
//! form-encoded, header values with line breaks are refused: request data can never change the
//! scheme, host, port or path structure the config wrote. In the body, a string that is exactly
//! `"{name}"` becomes the param's JSON value (number, object, …); placeholders inside longer
//! strings are replaced by text. A query or header whose whole value is one placeholder with a
//! null value is left out.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use super::http::{HttpClient, Outgoing, encode_component, scalar_text};
use super::{
    DataSource, SourceCall, SourceError, SourceErrorKind, SourceFactory, in_key_order, key_text,
};
use crate::plan::{ApiAuth, ApiOperation, ApiService, Integrations, Secret, placeholders};

/// Builds the `api` source for each config version and domain scope: one client per service.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiFactory;

impl SourceFactory for ApiFactory {
    fn build(&self, integrations: &Integrations) -> Result<Arc<dyn DataSource>, SourceError> {
        let mut services = HashMap::new();
        for (id, svc) in &integrations.api.sources {
            let client = Arc::new(client(id, svc)?);
            let ops = svc
                .operations
                .iter()
                .map(|(name, op)| (name.clone(), Arc::new(op.clone())))
                .collect();
            services.insert(id.clone(), Service { client, ops });
        }
        Ok(Arc::new(ApiSource { services }))
    }
}

fn client(id: &str, svc: &ApiService) -> Result<HttpClient, SourceError> {
    let bad = |e: reqwest::header::InvalidHeaderValue| {
        SourceError::new(
            SourceErrorKind::Config,
            format!("service `{id}`: the auth value cannot be sent as a header: {e}"),
        )
    };
    let mut headers = Vec::new();
    let mut query = Vec::new();
    match &svc.auth {
        None => {}
        Some(ApiAuth::Bearer { token }) => {
            headers.push((
                AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(bad)?,
            ));
        }
        Some(ApiAuth::Basic { username, password }) => {
            let pair = format!(
                "{username}:{}",
                password.as_ref().map_or("", Secret::expose)
            );
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            headers.push((
                AUTHORIZATION,
                HeaderValue::from_str(&format!("Basic {encoded}")).map_err(bad)?,
            ));
        }
        Some(ApiAuth::ApiKey {
            header,
            query: q,
            key,
        }) => {
            if let Some(h) = header {
                let name = HeaderName::from_bytes(h.as_bytes()).map_err(|e| {
                    SourceError::new(
                        SourceErrorKind::Config,
                        format!("service `{id}`: header `{h}`: {e}"),
                    )
                })?;
                headers.push((name, HeaderValue::from_str(key.expose()).map_err(bad)?));
            }
            if let Some(q) = q {
                query.push((q.clone(), key.expose().to_owned()));
            }
        }
        Some(_) => {
            return Err(SourceError::new(
                SourceErrorKind::Config,
                format!("service `{id}`: this version cannot send its `auth` type"),
            ));
        }
    }
    HttpClient::new(id, svc.base_url.expose(), &svc.http, headers, query)
}

struct Service {
    client: Arc<HttpClient>,
    ops: HashMap<String, Arc<ApiOperation>>,
}

struct ApiSource {
    services: HashMap<String, Service>,
}

impl ApiSource {
    fn find(&self, op: &str, service: Option<&str>) -> Option<(&HttpClient, &ApiOperation)> {
        let found = match service {
            Some(id) => self
                .services
                .get(id)
                .and_then(|s| s.ops.get(op).map(|o| (s, o))),
            None => self
                .services
                .values()
                .find_map(|s| s.ops.get(op).map(|o| (s, o))),
        };
        found.map(|(s, o)| (&*s.client, &**o))
    }
}

#[async_trait::async_trait]
impl DataSource for ApiSource {
    async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
        let name = call.operation.unwrap_or_default();
        let (client, op) = self.find(name, call.source_id).ok_or_else(|| {
            SourceError::new(
                SourceErrorKind::Config,
                format!("unknown api operation `{name}`"),
            )
        })?;
        let fail = |e: String| {
            SourceError::new(
                SourceErrorKind::Rejected,
                format!("operation `{name}`: {e}"),
            )
        };
        // A batch's keys: its param's list, or the one key passed instead of a list.
        let list = op.batch.as_ref().map(|b| b.param.as_str());
        let keys = list.map(|param| match call.params.get(param) {
            Some(Value::Array(keys)) => (keys.as_slice(), true),
            Some(one) => (std::slice::from_ref(one), false),
            None => (std::slice::from_ref(&NULL), false),
        });
        let params = call.params;
        let out = Outgoing {
            method: reqwest::Method::from_bytes(op.method.as_str().as_bytes()).unwrap_or_default(),
            path: render_path(&op.path, params).map_err(|(param, e)| match param {
                Some(p) => fail(e).with_param(p),
                None => fail(e),
            })?,
            query: render_pairs(&op.query, params, list, true).map_err(fail)?,
            headers: render_pairs(&op.headers, params, list, false)
                .map_err(fail)?
                .into_iter()
                .map(|(k, v)| {
                    let name = HeaderName::from_bytes(k.as_bytes())
                        .map_err(|e| fail(format!("header `{k}`: {e}")))?;
                    let value = HeaderValue::from_str(&v).map_err(|_| {
                        fail(format!(
                            "header `{k}`: the value cannot be sent in a header"
                        ))
                    })?;
                    Ok((name, value))
                })
                .collect::<Result<_, SourceError>>()?,
            body: op.body.as_ref().map(|b| render_body(b, params, list)),
            absolute: None,
        };
        let mut value = client
            .send(&call, out)
            .await
            .map_err(|e| SourceError::new(e.kind, format!("operation `{name}`: {}", e.message)))?;
        let value = match &op.extract {
            None => value,
            Some(pointer) => match value.pointer_mut(pointer) {
                Some(part) => part.take(),
                None => {
                    return Err(SourceError::new(
                        SourceErrorKind::InvalidResponse,
                        format!("operation `{name}`: the response has nothing at `{pointer}`"),
                    ));
                }
            },
        };
        match (op.batch.as_ref(), keys) {
            (Some(b), Some((keys, list))) => {
                let mut results = per_key(value, keys, b.matched_by.as_deref()).map_err(|e| {
                    SourceError::new(
                        SourceErrorKind::InvalidResponse,
                        format!("operation `{name}`: {e}"),
                    )
                })?;
                Ok(if list {
                    Value::Array(results)
                } else {
                    results.pop().unwrap_or(Value::Null)
                })
            }
            _ => Ok(value),
        }
    }
}

static NULL: Value = Value::Null;

/// A batch call's answer as one result per key, in the keys' order: with `matched_by`, the
/// first item whose field holds the key (null when none does); without, the items by position.
fn per_key(answer: Value, keys: &[Value], matched_by: Option<&str>) -> Result<Vec<Value>, String> {
    let Value::Array(items) = answer else {
        return Err(format!(
            "a call for {} keys must answer with a list, got {}",
            keys.len(),
            kind_of(&answer)
        ));
    };
    let Some(field) = matched_by else {
        if items.len() != keys.len() {
            return Err(format!(
                "a call for {} keys was answered with {} items (without `batch.match`, one per key, in order)",
                keys.len(),
                items.len()
            ));
        }
        return Ok(items);
    };
    let mut by_key: HashMap<String, Value> = HashMap::with_capacity(items.len());
    for item in items {
        if let Some(k) = item.get(field).and_then(key_text) {
            by_key.entry(k).or_insert(item);
        }
    }
    Ok(in_key_order(keys.iter().map(key_text), by_key, || {
        Value::Null
    }))
}

/// `template` with each `{name}` replaced by its param, percent-encoded into its segment.
/// The path with its placeholders replaced; on failure, the parameter at fault (when one is)
/// and why.
fn render_path(
    template: &str,
    params: &Map<String, Value>,
) -> Result<String, (Option<String>, String)> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut last = 0;
    let mut substituted = false;
    for (name, range) in placeholders(template) {
        substituted = true;
        out.push_str(&template[last..range.start]);
        last = range.end;
        let value = params.get(name).unwrap_or(&Value::Null);
        let text = scalar_text(value).ok_or_else(|| {
            (
                Some(name.to_owned()),
                format!(
                    "path parameter `{name}` must be a string or number, got {}",
                    kind_of(value)
                ),
            )
        })?;
        if text.is_empty() {
            return Err((
                Some(name.to_owned()),
                format!("path parameter `{name}` is empty"),
            ));
        }
        if text == "." || text == ".." {
            return Err((
                Some(name.to_owned()),
                format!("path parameter `{name}` would make a `{text}` path segment"),
            ));
        }
        out.push_str(&encode_component(&text));
    }
    out.push_str(&template[last..]);
    // Only a param can bring in such a segment: the template is the config's own.
    if substituted && out.split('/').any(|seg| seg == "." || seg == "..") {
        return Err((
            None,
            "a path parameter would make a `.` or `..` path segment".into(),
        ));
    }
    if !out.is_empty() && !out.starts_with('/') {
        out.insert(0, '/');
    }
    Ok(out)
}

/// Query or header pairs with placeholders replaced by text. A pair whose value is exactly one
/// placeholder whose param is null or missing is left out. The batch's `list` param, when it is
/// a pair's whole value and `repeat` is set (a query), makes one pair per key.
fn render_pairs(
    templates: &std::collections::BTreeMap<String, Value>,
    params: &Map<String, Value>,
    list: Option<&str>,
    repeat: bool,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::with_capacity(templates.len());
    for (key, template) in templates {
        let text = match template {
            Value::String(s) => {
                let mut holes = placeholders(s);
                if let Some((name, range)) = holes.next()
                    && range == (0..s.len())
                {
                    match params.get(name) {
                        None | Some(Value::Null) => continue,
                        Some(Value::Array(keys)) if repeat && list == Some(name) => {
                            for k in keys {
                                let text = scalar_text(k).ok_or_else(|| {
                                    format!(
                                        "a key of `{name}` must be a string or number, got {}",
                                        kind_of(k)
                                    )
                                })?;
                                out.push((key.clone(), text));
                            }
                            continue;
                        }
                        Some(_) => {}
                    }
                }
                interpolate(s, params, list)?
            }
            other => {
                scalar_text(other).ok_or_else(|| format!("`{key}` must be a string or number"))?
            }
        };
        out.push((key.clone(), text));
    }
    Ok(out)
}

/// `s` with placeholders replaced by their params as text; the batch's `list` param as its
/// keys joined by commas.
fn interpolate(s: &str, params: &Map<String, Value>, list: Option<&str>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for (name, range) in placeholders(s) {
        out.push_str(&s[last..range.start]);
        last = range.end;
        let value = params.get(name).unwrap_or(&Value::Null);
        match value {
            Value::Null => {}
            Value::Array(keys) if list == Some(name) => {
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&scalar_text(k).ok_or_else(|| {
                        format!(
                            "a key of `{name}` must be a string or number, got {}",
                            kind_of(k)
                        )
                    })?);
                }
            }
            v => out.push_str(&scalar_text(v).ok_or_else(|| {
                format!(
                    "`{name}` must be a string or number here, got {}",
                    kind_of(v)
                )
            })?),
        }
    }
    out.push_str(&s[last..]);
    Ok(out)
}

/// The body template with `"{name}"` strings replaced by the params' JSON values.
fn render_body(template: &Value, params: &Map<String, Value>, list: Option<&str>) -> Value {
    match template {
        Value::String(s) => {
            let mut holes = placeholders(s);
            match holes.next() {
                None => template.clone(),
                Some((name, range)) if range == (0..s.len()) => {
                    match params.get(name) {
                        // The batch's keys are a list, even when one key was passed.
                        Some(one) if list == Some(name) && !one.is_array() => {
                            Value::Array(vec![one.clone()])
                        }
                        v => v.cloned().unwrap_or(Value::Null),
                    }
                }
                Some(_) => interpolate(s, params, list).map_or_else(|_| Value::Null, Value::String),
            }
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| render_body(i, params, list)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), render_body(v, params, list)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn path_values_stay_in_their_segment() {
        let t = "/customers/{id}/credit-score";
        let p = |v: Value| render_path(t, &params(json!({ "id": v })));
        assert_eq!(p(json!(42)).unwrap(), "/customers/42/credit-score");
        assert_eq!(
            p(json!("../admin")).unwrap(),
            "/customers/..%2Fadmin/credit-score"
        );
        assert_eq!(
            p(json!("a?b=c#d")).unwrap(),
            "/customers/a%3Fb%3Dc%23d/credit-score"
        );
        assert_eq!(
            p(json!("@evil.com")).unwrap(),
            "/customers/%40evil.com/credit-score"
        );
        assert_eq!(
            p(json!("http://evil")).unwrap(),
            "/customers/http%3A%2F%2Fevil/credit-score"
        );
        assert_eq!(p(json!("..")).unwrap_err().0.as_deref(), Some("id"));
        assert!(p(json!(".")).is_err());
        assert!(p(json!(null)).is_err());
        assert!(p(json!({"a": 1})).is_err());
    }

    #[test]
    fn bodies_keep_json_types() {
        let body = json!({"id": "{id}", "note": "customer {id}", "tags": ["{tag}"], "fixed": 1});
        assert_eq!(
            render_body(&body, &params(json!({"id": 7, "tag": {"a": true}})), None),
            json!({"id": 7, "note": "customer 7", "tags": [{"a": true}], "fixed": 1})
        );
    }

    #[test]
    fn optional_query_values_are_left_out() {
        let q = [
            ("a".to_owned(), json!("{a}")),
            ("b".to_owned(), json!("x-{b}")),
            ("c".to_owned(), json!(5)),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            render_pairs(&q, &params(json!({"a": null, "b": "1"})), None, true).unwrap(),
            [
                ("b".to_owned(), "x-1".to_owned()),
                ("c".to_owned(), "5".to_owned())
            ]
        );
    }

    #[test]
    fn a_batch_of_keys_is_repeated_joined_or_a_json_list() {
        let p = params(json!({"ids": [1, "b", 3], "other": [1]}));
        let q = [
            ("id".to_owned(), json!("{ids}")),
            ("filter".to_owned(), json!("id in ({ids})")),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            render_pairs(&q, &p, Some("ids"), true).unwrap(),
            [
                ("filter".to_owned(), "id in (1,b,3)".to_owned()),
                ("id".to_owned(), "1".to_owned()),
                ("id".to_owned(), "b".to_owned()),
                ("id".to_owned(), "3".to_owned()),
            ]
        );
        // In a header the keys are one comma-separated value.
        let h = [("x-ids".to_owned(), json!("{ids}"))].into_iter().collect();
        assert_eq!(
            render_pairs(&h, &p, Some("ids"), false).unwrap(),
            [("x-ids".to_owned(), "1,b,3".to_owned())]
        );
        // Only the batch's param is a list of keys; another list stays an error.
        let o = [("o".to_owned(), json!("{other}"))].into_iter().collect();
        assert!(render_pairs(&o, &p, Some("ids"), true).is_err());
        let nested = params(json!({"ids": [[1]]}));
        assert!(render_pairs(&q, &nested, Some("ids"), true).is_err());
        assert_eq!(
            render_body(&json!({"ids": "{ids}"}), &p, Some("ids")),
            json!({"ids": [1, "b", 3]})
        );
        // One key passed instead of a list is sent as a list of one.
        assert_eq!(
            render_body(
                &json!({"ids": "{ids}"}),
                &params(json!({"ids": 7})),
                Some("ids")
            ),
            json!({"ids": [7]})
        );
    }

    #[test]
    fn batch_answers_are_matched_back_per_key() {
        let keys = [json!(1), json!("2"), json!(3), json!(1)];
        let answer = json!([{"id": "3", "n": "c"}, {"id": 1, "n": "a"}, {"id": 1, "n": "dup"}]);
        assert_eq!(
            per_key(answer.clone(), &keys, Some("id")).unwrap(),
            [
                json!({"id": 1, "n": "a"}),
                Value::Null,
                json!({"id": "3", "n": "c"}),
                json!({"id": 1, "n": "a"})
            ]
        );
        // By position: one item per key, or the call fails.
        assert!(per_key(answer.clone(), &keys, None).is_err());
        assert_eq!(per_key(answer, &keys[..3], None).unwrap().len(), 3);
        assert!(per_key(json!({"id": 1}), &keys, Some("id")).is_err());
    }
}
