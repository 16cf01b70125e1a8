//! The OpenAPI 3.1 document of a plan (`GET <mount>/openapi.json`) and the Swagger UI that
//! renders it (`GET <mount>/docs/`), served from files compiled into the crate: the page
//! works with no internet access.
//!
//! One operation per endpoint route and method: the endpoint's description, its domain as tag,
//! path parameters (typed by `input.path`, text otherwise), query parameters from
//! `input.query`, a JSON request body for `POST`/`PUT`/`PATCH` (from `input.body`), the
//! response schema (the endpoint's `output:` JSON Schema, or one derived from its response
//! mapping: keys, nesting and literal types), and the problem+json error responses.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use utoipa::openapi::path::{
    HttpMethod as OaMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref,
    RefOr, Required, ResponseBuilder, Schema,
};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, LOCATION};
use http::{Response, StatusCode};

use super::Mounted;
use crate::expr::Template;
use crate::plan::{Endpoint, HttpMethod, InputField, Plan};

/// The OpenAPI 3.1 document of `plan`'s endpoints, paths relative to where they are mounted.
pub fn document(plan: &Plan) -> OpenApi {
    let mut paths = PathsBuilder::new();
    // Linear in the endpoints: a config of 20,000 took over a minute when each endpoint looked
    // through all the others.
    let mut items: Vec<(String, PathItem)> = Vec::new();
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut names: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for e in &plan.endpoints {
        *names.entry(e.name.as_str()).or_default() += 1;
    }
    for e in &plan.endpoints {
        let shared_name = names.get(e.name.as_str()).is_some_and(|&n| n > 1);
        // Once per endpoint: turning JSON into utoipa's schema type is the slow part.
        let output = output_schema(e);
        for route in e.routes() {
            let path = route.path.as_str().to_owned();
            let op = operation(
                e,
                shared_name,
                plan.settings.auth.is_some(),
                route.method,
                route.path.params().collect::<Vec<_>>().as_slice(),
                &output,
            );
            let method = match route.method {
                HttpMethod::Get => OaMethod::Get,
                HttpMethod::Post => OaMethod::Post,
                HttpMethod::Put => OaMethod::Put,
                HttpMethod::Patch => OaMethod::Patch,
                HttpMethod::Delete => OaMethod::Delete,
            };
            match at.get(&path) {
                Some(&i) => items[i].1.merge_operations(PathItem::new(method, op)),
                None => {
                    at.insert(path.clone(), items.len());
                    items.push((path, PathItem::new(method, op)));
                }
            }
        }
    }
    for (path, item) in items {
        paths = paths.path(path, item);
    }
    let problem: Schema = from_json(json!({
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
    }));
    let tags: Vec<_> = plan
        .domains
        .iter()
        .map(|d| {
            utoipa::openapi::tag::TagBuilder::new()
                .name(d.name.clone())
                .description(match (&d.title, &d.description) {
                    (Some(t), Some(desc)) => Some(format!("{t}: {desc}")),
                    (t, desc) => t.clone().or_else(|| desc.clone()),
                })
                .build()
        })
        .collect();
    OpenApiBuilder::new()
        .tags((!tags.is_empty()).then_some(tags))
        .info(
            InfoBuilder::new()
                .title(
                    plan.settings
                        .app
                        .name
                        .clone()
                        .unwrap_or_else(|| "orchestrator".into()),
                )
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("Endpoints served from the orchestrator plans."))
                .build(),
        )
        .paths(paths.build())
        .components(Some({
            let mut components = ComponentsBuilder::new().schema("Problem", problem);
            if plan.settings.auth.is_some() {
                use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
                components = components.security_scheme(
                    "bearer",
                    SecurityScheme::Http(
                        HttpBuilder::new()
                            .scheme(HttpAuthScheme::Bearer)
                            .bearer_format("JWT")
                            .build(),
                    ),
                );
            }
            components.build()
        }))
        .security(plan.settings.auth.as_ref().map(|_| {
            vec![utoipa::openapi::security::SecurityRequirement::new(
                "bearer",
                Vec::<String>::new(),
            )]
        }))
        .build()
}

fn from_json(v: Value) -> Schema {
    serde_json::from_value(v).unwrap_or_default()
}

fn operation(
    e: &Endpoint,
    shared_name: bool,
    auth: bool,
    method: HttpMethod,
    captures: &[&str],
    output: &Schema,
) -> utoipa::openapi::path::Operation {
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
    let mut op = OperationBuilder::new()
        .operation_id(Some(operation_id))
        .summary(
            e.description
                .clone()
                .or_else(|| Some(e.name.replace('_', " "))),
        )
        .description(e.description.clone());
    if let Some(domain) = &e.domain {
        op = op.tag(domain.clone());
    }
    op = parameters(op, e, captures);
    if matches!(
        method,
        HttpMethod::Post | HttpMethod::Put | HttpMethod::Patch
    ) {
        op = request_body(op, e);
    }
    responses(op, e, auth, output).build()
}

/// The path parameters (typed by `input.path`, text otherwise) and `input.query`.
fn parameters(mut op: OperationBuilder, e: &Endpoint, captures: &[&str]) -> OperationBuilder {
    for name in captures {
        let declared = e.input.path.iter().find(|f| f.name == *name);
        op = op.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(declared.and_then(|f| f.description.clone()))
                .schema(Some(from_json(
                    json!({"type": declared.map_or("string", |f| f.ty.as_str())}),
                ))),
        );
    }
    for f in &e.input.query {
        op = op.parameter(
            ParameterBuilder::new()
                .name(&f.name)
                .parameter_in(ParameterIn::Query)
                .required(if f.required {
                    Required::True
                } else {
                    Required::False
                })
                .description(f.description.clone())
                .schema(Some(field_schema(f))),
        );
    }
    op
}

/// A JSON body: `input.body`, or an open object.
fn request_body(op: OperationBuilder, e: &Endpoint) -> OperationBuilder {
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
    op.request_body(Some(
        RequestBodyBuilder::new()
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(from_json(body))).build(),
            )
            .required(Some(if e.input.body.iter().any(|f| f.required) {
                Required::True
            } else {
                Required::False
            }))
            .build(),
    ))
}

/// The schema of an endpoint's answer: its `output`, or what its `response_mapping` shows.
fn output_schema(e: &Endpoint) -> Schema {
    from_json(
        e.output
            .clone()
            .unwrap_or_else(|| match &e.response_mapping {
                Some(t) => template_schema(t),
                None => json!({"description": "The primary data source's result."}),
            }),
    )
}

/// 200 with the endpoint's `output` schema, and the problems.
fn responses(
    mut op: OperationBuilder,
    e: &Endpoint,
    auth: bool,
    output: &Schema,
) -> OperationBuilder {
    op = op.response(
        "200",
        ResponseBuilder::new()
            .description("The endpoint's response.")
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(output.clone())).build(),
            )
            .build(),
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
        op = op.response(
            status,
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(RefOr::Ref(Ref::from_schema_name("Problem"))))
                        .build(),
                )
                .build(),
        );
    }
    op
}

fn field_json(f: &InputField) -> Value {
    let mut s = json!({"type": f.ty.as_str()});
    if let Some(d) = &f.description {
        s["description"] = json!(d);
    }
    s
}

fn field_schema(f: &InputField) -> Schema {
    from_json(field_json(f))
}

/// A schema from a response mapping: objects and arrays keep their shape, literals their type,
/// expressions are left open.
fn template_schema(t: &Template) -> Value {
    match t {
        Template::Literal(v) => literal_schema(v),
        Template::Object(fields) => {
            let props: Map<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.clone(), template_schema(v)))
                .collect();
            json!({"type": "object", "properties": props})
        }
        Template::Array(items) => match items.first() {
            Some(first) => json!({"type": "array", "items": template_schema(first)}),
            None => json!({"type": "array"}),
        },
        // An expression (or a template kind newer than this function): left open.
        _ => json!({}),
    }
}

fn literal_schema(v: &Value) -> Value {
    match v {
        Value::Null => json!({"type": "null"}),
        Value::Bool(_) => json!({"type": "boolean"}),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({"type": "integer"}),
        Value::Number(_) => json!({"type": "number"}),
        Value::String(_) => json!({"type": "string"}),
        Value::Array(_) => json!({"type": "array"}),
        Value::Object(_) => json!({"type": "object"}),
    }
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
                tokio::task::spawn_blocking(move || {
                    Bytes::from(serde_json::to_vec(&document(&plan)).unwrap_or_default())
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
