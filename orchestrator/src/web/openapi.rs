//! The OpenAPI 3.1 document of a plan (`GET <mount>/openapi.json`) and the Swagger UI that
//! renders it (`GET <mount>/docs/`), served from files compiled into the crate: the page
//! works with no internet access.
//!
//! One operation per endpoint route and method: the endpoint's description, its domain as tag,
//! path parameters (typed by `input.path`, text otherwise), query parameters from
//! `input.query`, a JSON request body for `POST`/`PUT`/`PATCH` (from `input.body`), the
//! response schema (the endpoint's `output:` JSON Schema, or one derived from its response
//! mapping: keys, nesting and literal types, and with a schema snapshot the types of the
//! sources' fields), and the problem+json error responses.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, LOCATION};
use http::{Response, StatusCode};

use super::Mounted;
use crate::plan::{Endpoint, HttpMethod, InputField, Plan};

/// The OpenAPI 3.1 document of `plan`'s endpoints, paths relative to where they are mounted.
///
/// Built as JSON, not through a typed OpenAPI model: the schemas a config declares
/// (`input:`, `output:`) and the ones derived from response mappings go in exactly as they
/// are. Its one server is `.`, the mount point itself, resolved against the document's own
/// URL (`<mount>/openapi.json`): Swagger UI's "Try it out" calls `<mount>/<path>` wherever
/// the API is mounted.
pub fn document(plan: &Plan) -> Value {
    document_of(plan, |_| true)
}

/// The OpenAPI document of the endpoints of `plan` that `keep` keeps (a subset mount's), and
/// of the domains they are in.
pub fn document_of(plan: &Plan, keep: impl Fn(&Endpoint) -> bool) -> Value {
    // Linear in the endpoints: a config of 20,000 took over a minute when each endpoint looked
    // through all the others.
    let mut paths = Map::new();
    let mut names: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for e in &plan.endpoints {
        *names.entry(e.name.as_str()).or_default() += 1;
    }
    let auth = plan.settings.auth.is_some();
    for e in plan.endpoints.iter().filter(|e| keep(e)) {
        let shared_name = names.get(e.name.as_str()).is_some_and(|&n| n > 1);
        let output = output_schema(plan, e);
        for route in e.routes() {
            let captures: Vec<&str> = route.path.params().collect();
            let op = operation(e, shared_name, auth, route.method, &captures, &output);
            let item = paths
                .entry(route.path.as_str().to_owned())
                .or_insert_with(|| json!({}));
            item[route.method.as_str().to_ascii_lowercase()] = op;
        }
    }
    let tags: Vec<Value> = plan
        .domains
        .iter()
        .filter(|d| {
            plan.endpoints
                .iter()
                .any(|e| e.domain.as_ref() == Some(&d.name) && keep(e))
        })
        .map(|d| {
            let mut tag = json!({"name": d.name});
            let description = match (&d.title, &d.description) {
                (Some(t), Some(desc)) => Some(format!("{t}: {desc}")),
                (t, desc) => t.clone().or_else(|| desc.clone()),
            };
            if let Some(description) = description {
                tag["description"] = json!(description);
            }
            tag
        })
        .collect();
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": plan.settings.app.name.as_deref().unwrap_or("orchestrator"),
            "description": "Endpoints served from the orchestrator plans.",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "servers": [{"url": ".", "description": "Where this document is served from"}],
        "paths": paths,
        "components": {"schemas": {"Problem": problem_schema()}},
    });
    if !tags.is_empty() {
        doc["tags"] = Value::Array(tags);
    }
    if auth {
        doc["components"]["securitySchemes"] =
            json!({"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}});
        doc["security"] = json!([{"bearer": []}]);
    }
    doc
}

/// RFC 9457 problem details, as every error response carries them.
fn problem_schema() -> Value {
    json!({
        "type": "object",
        "description": "An RFC 9457 problem; `detail` is written for clients.",
        "required": ["type", "title", "status", "request_id"],
        "properties": {
            "type": {"type": "string", "examples": ["urn:orchestrator:problem:source-failed"]},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "request_id": {"type": "string"},
            "errors": {
                "type": "array",
                "description": "For `invalid-input`: each missing or ill-typed input.",
                "items": {"type": "object", "properties": {
                    "in": {"type": "string", "enum": ["path", "query", "body"]},
                    "name": {"type": ["string", "null"]},
                    "problem": {"type": "string"}
                }}
            }
        }
    })
}

fn operation(
    e: &Endpoint,
    shared_name: bool,
    auth: bool,
    method: HttpMethod,
    captures: &[&str],
    output: &Value,
) -> Value {
    let id_route = !captures.is_empty() && e.path.is_none();
    // Qualified by the domain when another domain has an endpoint of this name (every
    // model-scoring domain has a `predict`).
    let qualified = match &e.domain {
        Some(d) if shared_name => format!("{d}_{}", e.name),
        _ => e.name.clone(),
    };
    let operation_id = format!(
        "{}_{}{}",
        qualified,
        method.as_str().to_ascii_lowercase(),
        if id_route { "_by_id" } else { "" }
    );
    let mut op = json!({
        "operationId": operation_id,
        "summary": e.description.clone().unwrap_or_else(|| e.name.replace('_', " ")),
    });
    if let Some(d) = &e.description {
        op["description"] = json!(d);
    }
    let tags: Vec<&String> = e.domain.iter().chain(&e.tags).collect();
    if !tags.is_empty() {
        op["tags"] = json!(tags);
    }
    let parameters = parameters(e, captures);
    if !parameters.is_empty() {
        op["parameters"] = Value::Array(parameters);
    }
    if matches!(
        method,
        HttpMethod::Post | HttpMethod::Put | HttpMethod::Patch
    ) {
        op["requestBody"] = request_body(e);
    }
    op["responses"] = responses(e, auth, output);
    op
}

/// The path parameters (typed by `input.path`, text otherwise) and `input.query`.
fn parameters(e: &Endpoint, captures: &[&str]) -> Vec<Value> {
    let mut out = Vec::new();
    for name in captures {
        let declared = e.input.path.iter().find(|f| f.name == *name);
        let mut p = json!({
            "name": name,
            "in": "path",
            "required": true,
            "schema": {"type": declared.map_or("string", |f| f.ty.as_str())},
        });
        if let Some(d) = declared.and_then(|f| f.description.as_ref()) {
            p["description"] = json!(d);
        }
        out.push(p);
    }
    for f in &e.input.query {
        let mut p = json!({
            "name": f.name,
            "in": "query",
            "required": f.required,
            "schema": field_json(f),
        });
        if let Some(d) = &f.description {
            p["description"] = json!(d);
        }
        out.push(p);
    }
    out
}

/// A JSON body: `input.body`, or an open object.
fn request_body(e: &Endpoint) -> Value {
    let body = if e.input.body.is_empty() {
        json!({"type": "object", "description": "Fields the endpoint reads as `$request.<name>`."})
    } else {
        let props: Map<String, Value> = e
            .input
            .body
            .iter()
            .map(|f| (f.name.clone(), field_json(f)))
            .collect();
        let required: Vec<&str> = e
            .input
            .body
            .iter()
            .filter(|f| f.required)
            .map(|f| f.name.as_str())
            .collect();
        json!({"type": "object", "properties": props, "required": required})
    };
    json!({
        "content": {"application/json": {"schema": body}},
        "required": e.input.body.iter().any(|f| f.required),
    })
}

/// The schema of an endpoint's answer: its `output`, or the type its `response_mapping` (or
/// primary source) has: the mapping's structure and literals, and with a schema snapshot the
/// sources' column, tensor and field types ([`crate::types::response_type`]).
fn output_schema(plan: &Plan, e: &Endpoint) -> Value {
    e.output
        .clone()
        .unwrap_or_else(|| match crate::types::response_type(plan, e) {
            Some(t) if !t.is_any() => t.to_schema(),
            _ => json!({"description": "The primary data source's result."}),
        })
}

/// 200 with the endpoint's `output` schema, and the problems.
fn responses(e: &Endpoint, auth: bool, output: &Value) -> Value {
    let mut out = Map::new();
    out.insert(
        "200".into(),
        json!({
            "description": "The endpoint's response.",
            "content": {"application/json": {"schema": output}},
        }),
    );
    let mut problems: Vec<(&str, &str)> = vec![
        (
            "400",
            "The body is not JSON, or a declared input is missing or ill-typed.",
        ),
        ("404", "No result for this request."),
        ("413", "The body is too large."),
        ("502", "A required data source failed."),
        ("504", "The endpoint's time budget ran out."),
    ];
    if auth {
        problems.push((
            "401",
            "The bearer token is missing, invalid or expired (`auth:` is on).",
        ));
    }
    if e.rate_limit.is_some() {
        problems.push((
            "429",
            "Past the endpoint's rate limit; `Retry-After` says when to try again.",
        ));
    }
    if e.max_in_flight.is_some() {
        problems.push((
            "503",
            "The endpoint is at its limit of requests in flight; `Retry-After` says when to try again.",
        ));
    }
    problems.sort_unstable();
    for (status, description) in problems {
        out.insert(
            status.into(),
            json!({
                "description": description,
                "content": {"application/problem+json": {
                    "schema": {"$ref": "#/components/schemas/Problem"}
                }},
            }),
        );
    }
    Value::Object(out)
}

fn field_json(f: &InputField) -> Value {
    let mut s = json!({"type": f.ty.as_str()});
    if let Some(d) = &f.description {
        s["description"] = json!(d);
    }
    s
}

/// `/openapi.json`, `/docs` and the Swagger UI files, or `None` for other paths.
pub(super) async fn serve(m: &Mounted, path: &str, get: bool) -> Option<Response<Bytes>> {
    if !get || !(path == "/openapi.json" || path == "/docs" || path.starts_with("/docs/")) {
        return None;
    }
    let with = |status: StatusCode, header: HeaderName, value: HeaderValue, body: Bytes| {
        let mut r = Response::new(body);
        *r.status_mut() = status;
        r.headers_mut().insert(header, value);
        r
    };
    if path == "/openapi.json" {
        // Built once per config version, on a blocking thread: for a large config it takes
        // seconds, which must not stall the requests sharing this worker.
        let plan = m.engine.shared_plan();
        let built = m
            .openapi
            .get_or_try_init(|| async move {
                let select = m.select.clone();
                tokio::task::spawn_blocking(move || {
                    let doc = match &select {
                        None => document(&plan),
                        Some(s) => document_of(&plan, |e| s.matches(e)),
                    };
                    Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
                })
                .await
            })
            .await;
        let Ok(body) = built.cloned() else {
            return Some(
                super::Problem::new(
                    503,
                    "unavailable",
                    "Service unavailable",
                    "the document could not be built; try again",
                )
                .into_response(""),
            );
        };
        return Some(with(
            StatusCode::OK,
            CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
            body,
        ));
    }
    if path == "/docs" {
        // Relative, so it works under any mount point.
        return Some(with(
            StatusCode::PERMANENT_REDIRECT,
            LOCATION,
            HeaderValue::from_static("docs/"),
            Bytes::new(),
        ));
    }
    // The page asks for `../openapi.json`: the document next to `docs/`, wherever mounted.
    let config = Arc::new(utoipa_swagger_ui::Config::new(["../openapi.json"]));
    match utoipa_swagger_ui::serve(&path["/docs/".len()..], config) {
        Ok(Some(file)) => Some(with(
            StatusCode::OK,
            CONTENT_TYPE,
            HeaderValue::try_from(file.content_type).ok()?,
            Bytes::from(file.bytes.into_owned()),
        )),
        _ => None,
    }
}
