//! The original Python service's URLs, so its clients keep working: below `api.prefix`
//! (default `/orchestrator`), every domain endpoint also answers
//! `{prefix}/{domain}/{operation}[/{entity_id}]`, the `predict` endpoint of a
//! `model_scoring_{model}` domain also `{prefix}/model_scoring/{model}[/{entity_id}]`, and two
//! listings are served: `{prefix}/domains` and `{prefix}/model_scoring`.

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{Map, Value, json};

use super::{Select, json_response};
use crate::plan::{Endpoint, Plan, id_param_of};

/// The domain prefix of the original's model-scoring domains.
const MODEL_SCORING: &str = "model_scoring_";

/// The original's extra routes of `e` below `prefix`, without the id segment (the caller adds
/// `/{id}` variants).
pub(super) fn routes_of(prefix: &str, e: &Endpoint) -> Vec<String> {
    let Some(domain) = e.domain.as_deref() else {
        return Vec::new();
    };
    let mut out = vec![format!("{prefix}/{domain}/{}", e.name)];
    if let Some(model) = domain.strip_prefix(MODEL_SCORING)
        && e.name == "predict"
    {
        out.push(format!("{prefix}/model_scoring/{model}"));
    }
    out
}

/// The id segment of an original route: the endpoint's own id param (so
/// `$request.path_params.entity_id` and `$request.<name>` both work).
pub(super) fn with_id(base: &str, e: &Endpoint) -> String {
    format!("{base}/{{{}}}", id_param_of(e))
}

/// `GET {prefix}/domains` and `GET {prefix}/model_scoring`, when `path` is one of them: of
/// the endpoints `select` picks (a subset mount lists only what it serves).
pub(super) fn serve(
    plan: &Plan,
    select: Option<&Select>,
    prefix: &str,
    path: &str,
    get: bool,
) -> Option<Response<Bytes>> {
    let rest = path.strip_prefix(prefix)?;
    if !get || !matches!(rest, "/domains" | "/model_scoring") {
        return None;
    }
    let served = || {
        plan.endpoints
            .iter()
            .filter(move |e| select.is_none_or(|s| s.matches(e)))
    };
    let mut domains: Vec<&str> = served().filter_map(|e| e.domain.as_deref()).collect();
    domains.sort_unstable();
    domains.dedup();
    if rest == "/domains" {
        return Some(json_response(StatusCode::OK, &json!(domains)));
    }
    let models: Vec<Value> = served()
        .filter(|e| e.name == "predict")
        .filter_map(|e| {
            let domain = e.domain.as_deref()?;
            let model = domain.strip_prefix(MODEL_SCORING)?;
            let description = e.description.clone().or_else(|| {
                plan.domains
                    .iter()
                    .find(|d| d.name == domain)
                    .and_then(|d| d.description.clone())
            });
            Some(json!({
                "model_name": model,
                "description": description,
                "input_schema": input_schema(e),
                "output_schema": e.output.clone().unwrap_or_else(|| json!({})),
                "endpoint": format!("{prefix}/model_scoring/{model}"),
            }))
        })
        .collect();
    let body = if models.is_empty() {
        json!({"models": [], "message": "no model scoring domains (`domains/model_scoring_<model>.yaml`) are configured"})
    } else {
        json!({ "models": models })
    };
    Some(json_response(StatusCode::OK, &body))
}

/// The endpoint's body inputs as the JSON Schema the original listed.
fn input_schema(e: &Endpoint) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for f in &e.input.body {
        let mut p = Map::new();
        p.insert("type".into(), Value::from(f.ty.as_str()));
        if let Some(d) = &f.description {
            p.insert("description".into(), Value::from(d.as_str()));
        }
        properties.insert(f.name.clone(), Value::Object(p));
        if f.required {
            required.push(Value::from(f.name.as_str()));
        }
    }
    let mut schema = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        schema["required"] = Value::Array(required);
    }
    schema
}
