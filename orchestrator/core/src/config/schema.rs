//! Readers for each config document. Every key is declared here once; anything else is rejected.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::read::{Object, ValueReader};
use super::{keys, policy, serving};
use crate::diagnostic::{Code, Diagnostic, KeyPath};
use crate::expr::{Fields, Template};
use crate::plan::{
    ApiAuth, ApiBatch, ApiConfig, ApiOperation, ApiService, DatabaseConfig, DbConnection,
    DbOperation, DbParam, DomainInfo, Endpoint, EndpointType, Fallback, FeastConfig,
    FeastOperation, FeastServer, FeatureFallback, ForEach, HttpMethod, HttpSettings, InputField,
    InputSchema, InputType, Limits, MlConfig, Model, ModelProtocol, ModelServer, OnError,
    OnMissing, OnNotFound, Origin, OutputPath, RetryPolicy, ReturnType, RouteTemplate, Secret,
    Settings, SourceStep, SqlBatch, SqlType, TrackingSettings, Transform,
};

fn origin(cx: &ValueReader) -> Origin {
    Origin {
        file: cx.file.clone(),
    }
}

// ---------------------------------------------------------------- config.yaml

pub(crate) fn settings(cx: &mut ValueReader, doc: &Value) -> Settings {
    let mut settings = Settings::default();
    let Some(o) = cx.object(&KeyPath::root(), doc, &keys::SETTINGS) else {
        return settings;
    };
    if let Some(l) = o.get("limits") {
        settings.limits = limits(cx, &o.at("limits"), l);
    }
    serving::logging(cx, &o, &mut settings);
    serving::server(cx, &o, &mut settings);
    serving::execution(cx, &o, &mut settings);
    if let Some(t) = o
        .get("tracking")
        .and_then(|v| cx.object(&o.at("tracking"), v, &keys::TRACKING))
    {
        let defaults = TrackingSettings::default();
        settings.tracking = TrackingSettings {
            debug_view: t
                .opt(cx, "debug_view", ValueReader::boolean)
                .unwrap_or(defaults.debug_view),
            admin: t
                .opt(cx, "admin", ValueReader::boolean)
                .unwrap_or(defaults.admin),
            recent: t
                .opt(cx, "recent", ValueReader::uint)
                .filter(|&n: &usize| n > 0)
                .unwrap_or(defaults.recent),
            server_timing: t
                .opt(cx, "server_timing", ValueReader::boolean)
                .unwrap_or(defaults.server_timing),
        };
    }
    if let Some(d) = o
        .get("defaults")
        .and_then(|v| cx.object(&o.at("defaults"), v, &keys::DEFAULTS))
    {
        if let Some(t) = d.opt_duration(cx, "timeout") {
            settings.endpoint_timeout = t;
        }
        if let Some(t) = d.opt_duration(cx, "source_timeout") {
            settings.source_timeout = t;
        }
    }
    if let Some(c) = o.get("cache") {
        settings.cache = policy::cache_settings(cx, &o.at("cache"), c);
    }
    serving::app(cx, &o, &mut settings);
    serving::api(cx, &o, &mut settings);
    serving::performance(cx, &o, &mut settings);
    serving::cors(cx, &o, &mut settings);
    serving::auth(cx, &o, &mut settings);
    serving::telemetry(cx, &o, &mut settings);
    settings
}

// ---------------------------------------------------------------- domains/<d>.yaml

/// A domain file's `domain_name` and `description` (the original service's file-level keys;
/// `domain_id` is informational: the file names the domain).
pub(crate) fn domain_info(cx: &mut ValueReader, domain: &str, doc: &Value) -> Option<DomainInfo> {
    let o = doc.as_object()?;
    let root = KeyPath::root();
    let text = |cx: &mut ValueReader, key: &str| {
        o.get(key)
            .filter(|v| !v.is_null())
            .and_then(|v| cx.string(&root.key(key), v))
    };
    if let Some(id) = text(cx, "domain_id")
        && id != domain
    {
        cx.report(
            Diagnostic::warning(
                Code::InvalidValue,
                root.key("domain_id"),
                format!("`domain_id: {id}` differs from the file's name; the domain is `{domain}`"),
            )
            .with_help(format!("the file name names the domain (its routes are `/{domain}/…`): rename the file to `{id}.yaml`, or remove `domain_id`")),
        );
    }
    let title = text(cx, "domain_name");
    let description = text(cx, "description");
    (title.is_some() || description.is_some()).then(|| DomainInfo {
        name: domain.to_owned(),
        title,
        description,
    })
}

/// Reads a domain document (`endpoints:`) into endpoints.
pub(crate) fn endpoints(cx: &mut ValueReader, domain: Option<&str>, doc: &Value) -> Vec<Endpoint> {
    let Some(o) = cx.object(&KeyPath::root(), doc, &keys::DOMAIN_FILE) else {
        return Vec::new();
    };
    let Some(v) = o.get("endpoints") else {
        cx.report(
            Diagnostic::new(Code::MissingKey, KeyPath::root(), "missing key `endpoints`")
                .with_help(
                    "a domain file holds `endpoints:`, a mapping of endpoint names to definitions",
                ),
        );
        return Vec::new();
    };
    cx.entries(
        &o.at("endpoints"),
        v,
        "a mapping of endpoint names to definitions",
        |cx, name, path, v| Some(endpoint(cx, domain, name, path, v)),
    )
    .into_iter()
    .map(|(_, e)| e)
    .collect()
}

fn endpoint(
    cx: &mut ValueReader,
    domain: Option<&str>,
    name: &str,
    path: &KeyPath,
    v: &Value,
) -> Endpoint {
    let mut e = Endpoint {
        name: name.to_owned(),
        domain: domain.map(str::to_owned),
        description: None,
        tags: Vec::new(),
        endpoint_type: None,
        methods: Vec::new(),
        path: None,
        timeout: None,
        sources: Vec::new(),
        primary_source: None,
        response_mapping: None,
        input: InputSchema::default(),
        output: None,
        max_in_flight: None,
        rate_limit: None,
        on_degraded: Default::default(),
        origin: origin(cx),
    };
    if !crate::expr::is_identifier(name) {
        cx.report(
            Diagnostic::new(Code::InvalidValue, path.clone(), format!("endpoint name `{name}` is not an identifier"))
                .at_key()
                .with_help("use letters, digits and `_`, starting with a letter or `_`: it becomes a route segment"),
        );
    }
    let Some(o) = cx.object(path, v, &keys::ENDPOINT) else {
        return e;
    };
    e.description = o.opt_string(cx, "description");
    e.tags = o.opt(cx, "tags", ValueReader::strings).unwrap_or_default();
    e.endpoint_type = o.opt(cx, "endpoint_type", |cx, p, v| {
        cx.choice(p, v, EndpointType::NAMES, EndpointType::parse)
    });
    e.methods = o.opt(cx, "method", methods).unwrap_or_default();
    e.path = o.opt(cx, "path", |cx, p, v| {
        let s = cx.string(p, v)?;
        RouteTemplate::parse(&s)
            .map_err(|err| {
                cx.report(
                    Diagnostic::new(Code::Route, p.clone(), err.to_string())
                        .with_help("routes look like `/customers/{customer_id}/orders`: `/`-separated, captures are whole `{name}` segments"),
                );
            })
            .ok()
    });
    e.timeout = o.opt_duration(cx, "timeout");
    e.max_in_flight = o.opt(cx, "max_in_flight", policy::in_flight);
    e.rate_limit = o.opt(cx, "rate_limit", policy::rate_limit);
    e.on_degraded = o
        .opt(cx, "on_degraded", policy::on_degraded)
        .unwrap_or_default();
    o.ignored(
        cx,
        "response_type",
        "responses are JSON; describe their shape with `output_schema` (or `output`)",
    );
    e.primary_source = o.opt_string(cx, "primary_source");
    e.response_mapping = response(cx, &o);
    e.input = match (o.get("input"), o.get("input_schema")) {
        (Some(_), Some(_)) => {
            cx.report(
                Diagnostic::new(Code::InvalidValue, o.at("input_schema"), "`input` and `input_schema` both describe the inputs")
                    .at_key()
                    .with_help("keep one: `input_schema` (JSON Schema of the body) is read as `input: {body: …}`"),
            );
            InputSchema::default()
        }
        (_, Some(v)) => json_input_schema(cx, &o.at("input_schema"), v).unwrap_or_default(),
        _ => o.opt(cx, "input", input_schema).unwrap_or_default(),
    };
    let output_key = if o.get("output").is_none() && o.get("output_schema").is_some() {
        "output_schema"
    } else {
        "output"
    };
    if output_key == "output" && o.get("output_schema").is_some() {
        cx.report(
            Diagnostic::new(
                Code::InvalidValue,
                o.at("output_schema"),
                "`output` and `output_schema` both describe the response",
            )
            .at_key()
            .with_help("keep one of them"),
        );
    }
    e.output = o.opt(cx, output_key, |cx, p, v| match v {
        Value::Object(_) => Some(v.clone()),
        other => {
            cx.wrong_type(
                p,
                "a JSON Schema (a mapping such as `{type: object, properties: …}`)",
                other,
            );
            None
        }
    });
    match o.get("data_sources") {
        Some(Value::Array(items)) => {
            let base = o.at("data_sources");
            e.sources = items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| source(cx, &base.index(i), v))
                .collect();
        }
        Some(other) => cx.wrong_type(&o.at("data_sources"), "a list of data sources", other),
        // A static endpoint (`response:`) needs none.
        None if o.get("response").is_some() => {}
        None => cx.report(
            Diagnostic::new(Code::MissingKey, path.clone(), "missing key `data_sources`")
                .with_help(
                    "add `data_sources:`, a list of `{name, type, operation, params}` items",
                ),
        ),
    }
    e
}

/// The response shape: `response_mapping`, the original's `response_template` (`{source.path}`
/// placeholders) or a static `response:`.
fn response(cx: &mut ValueReader, o: &Object<'_>) -> Option<Template> {
    let present: Vec<&str> = ["response_mapping", "response_template", "response"]
        .into_iter()
        .filter(|k| o.get(k).is_some())
        .collect();
    if present.len() > 1 {
        cx.report(
            Diagnostic::new(
                Code::InvalidValue,
                o.at(present[1]),
                format!("`{}` and `{}` both shape the response", present[0], present[1]),
            )
            .at_key()
            .with_help("keep one of them (the original service's last version read only `response_template`)"),
        );
        return None;
    }
    match present.first().copied() {
        Some("response_template") => {
            let p = o.at("response_template");
            let v = o.get("response_template")?;
            Some(cx.template(&p, &from_placeholders(v)))
        }
        Some(key) => o.opt(cx, key, |cx, p, v| Some(cx.template(p, v))),
        None => None,
    }
}

/// The original's `response_template` as a mapping: a string that is exactly `{a.b}` becomes
/// `$a.b`; placeholders inside text become a concatenation in which a placeholder without a
/// value stays as written, as the original left it.
fn from_placeholders(v: &Value) -> Value {
    fn reference(inner: &str) -> Option<String> {
        let mut out = String::from("$");
        for (i, seg) in inner.split('.').enumerate() {
            if seg.is_empty() {
                return None;
            }
            if seg.bytes().all(|b| b.is_ascii_digit()) && i > 0 {
                out.push_str(&format!("[{seg}]"));
            } else if crate::expr::is_identifier(seg) {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(seg);
            } else if i > 0 {
                out.push_str(&format!(
                    "['{}']",
                    seg.replace('\\', "\\\\").replace('\'', "\\'")
                ));
            } else {
                return None;
            }
        }
        Some(out)
    }
    fn quoted(text: &str) -> String {
        format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
    }
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), from_placeholders(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(from_placeholders).collect()),
        Value::String(s) => {
            if let Some(inner) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))
                && let Some(r) = reference(inner)
            {
                return Value::String(r);
            }
            // Split into text and `{placeholder}` parts.
            let mut parts = Vec::new();
            let mut rest = s.as_str();
            let mut has_placeholder = false;
            while let Some(open) = rest.find('{') {
                let Some(close) = rest[open..].find('}').map(|c| open + c) else {
                    break;
                };
                let inner = &rest[open + 1..close];
                match reference(inner) {
                    Some(r) => {
                        if open > 0 {
                            parts.push(quoted(&rest[..open]));
                        }
                        let literal = quoted(&rest[open..=close]);
                        parts.push(format!("(string({r}) || {literal})"));
                        has_placeholder = true;
                    }
                    None => parts.push(quoted(&rest[..=close])),
                }
                rest = &rest[close + 1..];
            }
            if !has_placeholder {
                // Plain text; a leading `$` is literal.
                return Value::String(if s.starts_with('$') {
                    format!("${s}")
                } else {
                    s.clone()
                });
            }
            if !rest.is_empty() {
                parts.push(quoted(rest));
            }
            Value::String(format!("$= {}", parts.join(" + ")))
        }
        other => other.clone(),
    }
}

/// The original's `input_schema` (JSON-Schema-like, `{type: object, properties, required}`)
/// as body inputs: each property of a known type is an input, required when listed in
/// `required`.
fn json_input_schema(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> Option<InputSchema> {
    let Value::Object(schema) = v else {
        cx.wrong_type(path, "a JSON Schema (`{type: object, properties: …}`)", v);
        return None;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut body = Vec::new();
    if let Some(Value::Object(props)) = schema.get("properties") {
        for (name, prop) in props {
            let ty = prop.get("type").and_then(Value::as_str);
            match ty.and_then(InputType::parse) {
                Some(ty) => body.push(InputField {
                    name: name.clone(),
                    ty,
                    required: required.contains(&name.as_str()),
                    description: prop
                        .get("description")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                }),
                None => cx.report(
                    Diagnostic::warning(
                        Code::InvalidValue,
                        path.key("properties").key(name),
                        format!("input `{name}` has no type this reader knows; it is documented as any value and not checked"),
                    )
                    .with_help(format!("give it `type:` one of {}", InputType::NAMES.join(", "))),
                ),
            }
        }
    }
    Some(InputSchema {
        path: Vec::new(),
        query: Vec::new(),
        body,
    })
}

/// `input: {path: {id: integer}, query: {limit: {type: integer, required: false}}, body: …}`.
fn input_schema(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> Option<InputSchema> {
    let o = cx.object(path, v, &keys::INPUT)?;
    let mut fields = |part: &str, in_path: bool| -> Vec<InputField> {
        let Some(v) = o.get(part) else {
            return Vec::new();
        };
        cx.entries(
            &o.at(part),
            v,
            "a mapping of input names to types",
            |cx, name, p, v| {
                let ty = |cx: &mut ValueReader, p: &KeyPath, v: &Value| {
                    cx.choice(p, v, InputType::NAMES, InputType::parse)
                };
                let field = match v {
                    Value::String(_) => InputField {
                        name: name.to_owned(),
                        ty: ty(cx, p, v)?,
                        required: true,
                        description: None,
                    },
                    _ => {
                        let f = cx.object(p, v, &keys::INPUT_FIELD_TABLE)?;
                        InputField {
                            name: name.to_owned(),
                            ty: f.req(cx, "type", "the input's type", ty)?,
                            required: f.opt(cx, "required", ValueReader::boolean).unwrap_or(true),
                            description: f.opt_string(cx, "description"),
                        }
                    }
                };
                if in_path && !field.required {
                    cx.report(
                        Diagnostic::new(
                            Code::InvalidValue,
                            p.clone(),
                            "a path input is always required",
                        )
                        .with_help("remove `required: false`, or make it a query input"),
                    );
                }
                if in_path && matches!(field.ty, InputType::Object | InputType::Array) {
                    cx.report(
                        Diagnostic::new(
                            Code::InvalidValue,
                            p.clone(),
                            format!("a path input cannot be an {}", field.ty.as_str()),
                        )
                        .with_help("path segments are `string`, `integer`, `number` or `boolean`"),
                    );
                }
                Some(field)
            },
        )
        .into_iter()
        .map(|(_, f)| f)
        .collect()
    };
    let path_fields = fields("path", true);
    let query = fields("query", false);
    let body = fields("body", false);
    Some(InputSchema {
        path: path_fields,
        query,
        body,
    })
}

fn methods(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> Option<Vec<HttpMethod>> {
    let names = cx.strings(path, v)?;
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let p = if v.is_array() {
            path.index(i)
        } else {
            path.clone()
        };
        let m = cx.choice(
            &p,
            &Value::String(n.clone()),
            HttpMethod::NAMES,
            HttpMethod::parse,
        )?;
        if !out.contains(&m) {
            out.push(m);
        }
    }
    Some(out)
}

fn source(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> Option<SourceStep> {
    let o = cx.object(path, v, &keys::SOURCE)?;
    // Keep a step whenever it has a name, so one bad field does not turn every reference to it
    // into an "unknown source" error too.
    let name = o.req(cx, "name", "the source's name", ValueReader::string)?;
    let kind = o.req(
        cx,
        "type",
        "`database`, `api`, `feast`, `ml` or `direct`",
        ValueReader::string,
    );
    let mut step = SourceStep {
        name,
        kind: kind.unwrap_or_default(),
        operation: o.opt_string(cx, "operation"),
        source_id: o.opt_string(cx, "source_id"),
        params: Fields::default(),
        condition: o.opt(cx, "condition", ValueReader::expression),
        depends_on: o
            .opt(cx, "depends_on", ValueReader::strings)
            .unwrap_or_default(),
        timeout: o.opt_duration(cx, "timeout"),
        retry: o.opt(cx, "retries", retries),
        on_error: OnError::Fail,
        fallback: o.opt(cx, "fallback", fallback),
        transform: Vec::new(),
        cache: None,
        no_cache: false,
        params_from: None,
        required: o.opt(cx, "required", ValueReader::boolean).unwrap_or(false),
        on_not_found: o.opt(cx, "on_not_found", on_not_found).unwrap_or_default(),
        for_each: o
            .opt(cx, "for_each", ValueReader::expression)
            .map(ForEach::new),
    };
    if let Some(size) = o.opt(cx, "batch", |cx, p, v| {
        let b = cx.object(p, v, &keys::ITEM_BATCH)?;
        b.req(
            cx,
            "size",
            "the most elements one call takes, e.g. `batch: {size: 100}`",
            ValueReader::uint::<usize>,
        )
    }) {
        match &mut step.for_each {
            // (A size of 0 is the validator's, for plans built in code too.)
            Some(each) => each.batch = Some(size),
            None => cx.report(
                Diagnostic::new(Code::InvalidValue, o.at("batch"), "`batch` goes with `for_each`")
                    .at_key()
                    .with_help("add `for_each: \"$list\"` to call the source for the elements of a list, or remove `batch`"),
            ),
        }
    }
    if let Some(n) = o.opt(cx, "concurrency", ValueReader::uint::<usize>) {
        match &mut step.for_each {
            Some(_) if n == 0 => cx.report(
                Diagnostic::new(Code::InvalidValue, o.at("concurrency"), "`concurrency: 0` would never call the source")
                    .with_help("allow at least one call at once"),
            ),
            Some(each) => each.concurrency = n,
            None => cx.report(
                Diagnostic::new(Code::InvalidValue, o.at("concurrency"), "`concurrency` goes with `for_each`")
                    .at_key()
                    .with_help("add `for_each: \"$list\"` to call the source once per element, or remove `concurrency`"),
            ),
        }
    }
    match o.get("cache") {
        Some(Value::Bool(false)) => step.no_cache = true,
        Some(Value::String(off)) if off == "off" => step.no_cache = true,
        Some(_) => step.cache = o.opt(cx, "cache", policy::cache_policy),
        None => {}
    }
    match o.get("params") {
        Some(Value::String(text)) => {
            step.params_from = cx.expression(&o.at("params"), &Value::String(text.clone()));
        }
        Some(params) => {
            step.params = cx
                .entries(
                    &o.at("params"),
                    params,
                    "a mapping of param names to values",
                    |cx, _, p, v| Some(cx.template(p, v)),
                )
                .into();
        }
        None => {}
    }
    original_predict(cx, &o, &mut step);
    if step.kind == "direct" && step.operation.is_some() {
        step.operation = None;
        o.ignored(
            cx,
            "operation",
            "a `direct` source returns its params; remove `operation`",
        );
    }
    step.on_error = on_error(cx, &o);
    if let Some(t) = o.get("transform") {
        step.transform = transforms(cx, &o.at("transform"), t);
    }
    Some(step)
}

/// The original's ML call, `operation: predict` with params `model_id` (a literal) and
/// `features`: the model becomes the operation, and `{"features": …}` the posted body.
fn original_predict(cx: &mut ValueReader, o: &Object<'_>, step: &mut SourceStep) {
    if step.kind != "ml" || step.operation.as_deref() != Some("predict") {
        return;
    }
    let model = step
        .params
        .iter()
        .find(|(k, _)| k == "model_id")
        .map(|(_, t)| t.clone());
    let Some(model) = model else {
        return;
    };
    let Template::Literal(Value::String(model)) = model else {
        cx.report(
            Diagnostic::new(Code::InvalidValue, o.at("params").key("model_id"), "`model_id` must name the model")
                .with_help("write the model's name from the ML config (`model_id: credit_risk`); it picks the model when the config is loaded"),
        );
        return;
    };
    step.operation = Some(model);
    step.params = step
        .params
        .iter()
        .filter(|(k, _)| k != "model_id")
        .cloned()
        .collect();
}

fn retries(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> Option<RetryPolicy> {
    if v.is_number() {
        return cx.uint(path, v).map(RetryPolicy::new);
    }
    if !v.is_object() {
        cx.wrong_type(
            path,
            "a number of retries or `{max, backoff, max_backoff}`",
            v,
        );
        return None;
    }
    let o = cx.object(path, v, &keys::RETRIES)?;
    let mut policy =
        RetryPolicy::new(o.req(cx, "max", "the number of retries", ValueReader::uint)?);
    if let Some(b) = o.opt_duration(cx, "backoff") {
        policy.backoff = b;
    }
    if let Some(b) = o.opt_duration(cx, "max_backoff") {
        policy.max_backoff = b;
    }
    Some(policy)
}

/// `fallback: {type, operation, source_id}` (another source) or `fallback: {value: …}`.
fn fallback(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> Option<Fallback> {
    let o = cx.object(path, v, &keys::FALLBACK)?;
    match (o.get("value"), o.get("type")) {
        (Some(value), None) => {
            for key in ["operation", "source_id"] {
                if o.get(key).is_some() {
                    cx.report(
                        Diagnostic::new(
                            Code::InvalidValue,
                            o.at(key),
                            format!("`{key}` does not go with a literal fallback `value:`"),
                        )
                        .at_key()
                        .with_help(format!(
                            "remove `{key}:`, or `value:` to fall back to another source"
                        )),
                    );
                }
            }
            Some(Fallback::Value(value.clone()))
        }
        (None, Some(_)) => Some(Fallback::Source {
            kind: o.req(
                cx,
                "type",
                "the fallback's source type",
                ValueReader::string,
            )?,
            operation: o.opt_string(cx, "operation"),
            source_id: o.opt_string(cx, "source_id"),
        }),
        (Some(_), Some(_)) => {
            cx.report(
                Diagnostic::new(
                    Code::InvalidValue,
                    o.at("value"),
                    "a fallback is either another source (`type:`) or a literal (`value:`), not both",
                )
                .at_key()
                .with_help("keep `type:` (with `operation:`) or `value:`"),
            );
            None
        }
        (None, None) => {
            cx.report(
                Diagnostic::new(
                    Code::MissingKey,
                    path.clone(),
                    "a fallback needs `type:` (another source) or `value:` (a literal)",
                )
                .with_help(
                    "write `fallback: {type: database, operation: …}` or `fallback: {value: …}`",
                ),
            );
            None
        }
    }
}

/// `limits:` in `config.yaml`, each within 1 and [`Limits::MAX`].
fn limits(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> Limits {
    let mut out = Limits::DEFAULT;
    let Some(o) = cx.object(path, v, &keys::LIMITS) else {
        return out;
    };
    for (key, slot, most) in [
        (
            "expression_nesting",
            &mut out.expression_nesting,
            Limits::MAX.expression_nesting,
        ),
        (
            "expression_operators",
            &mut out.expression_operators,
            Limits::MAX.expression_operators,
        ),
        (
            "yaml_nesting",
            &mut out.yaml_nesting,
            Limits::MAX.yaml_nesting,
        ),
    ] {
        match o.opt(cx, key, ValueReader::uint) {
            Some(n) if (1..=most).contains(&n) => *slot = n,
            Some(n) => cx.report(
                Diagnostic::new(
                    Code::InvalidValue,
                    o.at(key),
                    format!("`{key}` is {n}; it may be 1 to {most}"),
                )
                .with_help(format!(
                    "deeper or longer than {most} risks a thread's stack: split the expression or the file instead"
                )),
            ),
            None => {}
        }
    }
    out
}

/// `on_not_found: fail | empty | 404` (`404` as a number or a string).
fn on_not_found(cx: &mut ValueReader, p: &KeyPath, v: &Value) -> Option<OnNotFound> {
    if v.as_u64() == Some(404) {
        return Some(OnNotFound::Respond);
    }
    cx.choice(p, v, OnNotFound::NAMES, OnNotFound::parse)
}

fn on_error(cx: &mut ValueReader, o: &Object<'_>) -> OnError {
    let mode = o.opt(cx, "on_error", |cx, p, v| {
        cx.choice(p, v, &["fail", "skip", "default"], |s| {
            Some(s.to_owned()).filter(|s| ["fail", "skip", "default"].contains(&s.as_str()))
        })
    });
    let default = o.map.get("default");
    match (mode.as_deref(), default) {
        (Some("default"), Some(v)) => OnError::Default(v.clone()),
        (Some("default"), None) => {
            cx.report(
                Diagnostic::new(
                    Code::MissingKey,
                    o.path.clone(),
                    "`on_error: default` needs a `default:` value",
                )
                .with_help(
                    "add `default:` with the value to use when the source fails (it may be `null`)",
                ),
            );
            OnError::Fail
        }
        (_, Some(_)) => {
            cx.report(
                Diagnostic::new(
                    Code::InvalidValue,
                    o.at("default"),
                    "`default:` is only used with `on_error: default`",
                )
                .at_key()
                .with_help("add `on_error: default`, or remove `default:`"),
            );
            OnError::Fail
        }
        (Some("skip"), None) => OnError::Skip,
        _ => OnError::Fail,
    }
}

fn transforms(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> Vec<Transform> {
    // The original's only transform: `{type: select_fields, fields: [...]}`.
    if let Value::Object(m) = v
        && m.contains_key("type")
    {
        let Some(o) = cx.object(path, v, &keys::SELECT_FIELDS) else {
            return Vec::new();
        };
        let kind = o.req(cx, "type", "`select_fields`", |cx, p, v| {
            cx.choice(p, v, &["select_fields"], |s| {
                (s == "select_fields").then_some(())
            })
        });
        let fields = o.req(cx, "fields", "the fields to keep", ValueReader::strings);
        return match (kind, fields) {
            (Some(()), Some(fields)) => vec![Transform::Select(fields)],
            _ => Vec::new(),
        };
    }
    let Value::Array(items) = v else {
        cx.wrong_type(path, "a list of transform steps", v);
        return Vec::new();
    };
    let before = cx.diags.len();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = path.index(i);
        let Some(o) = cx.object(&p, item, &keys::TRANSFORM) else {
            continue;
        };
        if o.map.len() != 1 {
            cx.report(
                Diagnostic::new(
                    Code::InvalidValue,
                    p.clone(),
                    "a transform step has exactly one key",
                )
                .with_help(format!(
                    "write one step per list item, one of: {}",
                    Transform::KEYS.join(", ")
                )),
            );
            continue;
        }
        let Some((key, v)) = o.map.iter().next() else {
            continue;
        };
        let kp = p.key(key);
        let step = match key.as_str() {
            "select" => cx.strings(&kp, v).map(Transform::Select),
            "rename" => Some(Transform::Rename(cx.entries(
                &kp,
                v,
                "a mapping of old to new names",
                |cx, _, p, v| cx.string(p, v),
            ))),
            "defaults" => Some(Transform::Defaults(cx.entries(
                &kp,
                v,
                "a mapping of fields to default values",
                |_, _, _, v| Some(v.clone()),
            ))),
            "compute" => Some(Transform::Compute(cx.entries(
                &kp,
                v,
                "a mapping of fields to expressions",
                |cx, _, p, v| Some(cx.template(p, v)),
            ))),
            "filter" => cx.expression(&kp, v).map(Transform::Filter),
            "map" => Some(Transform::Map(cx.template(&kp, v))),
            "flatten" => match cx.boolean(&kp, v) {
                Some(true) => Some(Transform::Flatten),
                Some(false) => {
                    cx.report(
                        Diagnostic::new(
                            Code::InvalidValue,
                            kp.clone(),
                            "`flatten: false` does nothing",
                        )
                        .with_help("remove the step, or write `flatten: true`"),
                    );
                    None
                }
                None => None,
            },
            "sort" => match v {
                Value::String(_) => cx.expression(&kp, v).map(|by| Transform::Sort {
                    by,
                    descending: false,
                }),
                Value::Array(_) => {
                    cx.report(
                        Diagnostic::new(
                            Code::WrongType,
                            kp.clone(),
                            "`sort` takes one expression, not a list",
                        )
                        .with_help(
                            "write `sort: \"$item.total\"`, or `sort: {by: \"$item.total\", order: desc}`; \
                             to order by several keys, sort by a list expression",
                        ),
                    );
                    None
                }
                _ => {
                    let Some(s) = cx.object(&kp, v, &keys::SORT) else {
                        continue;
                    };
                    let by = s.req(
                        cx,
                        "by",
                        "what to order by, e.g. `by: \"$item.amount\"`",
                        ValueReader::expression,
                    );
                    let descending = s
                        .opt(cx, "order", |cx, p, v| {
                            cx.choice(p, v, &["asc", "desc"], |o| Some(o == "desc"))
                        })
                        .unwrap_or(false);
                    by.map(|by| Transform::Sort { by, descending })
                }
            },
            "limit" => cx.uint(&kp, v).map(Transform::Limit),
            "group_by" => cx.expression(&kp, v).map(Transform::GroupBy),
            "join" => {
                let Some(j) = cx.object(&kp, v, &keys::JOIN) else {
                    continue;
                };
                let with = j.req(
                    cx,
                    "with",
                    "the other list, e.g. `with: \"$products\"`",
                    ValueReader::expression,
                );
                let on = j.req(
                    cx,
                    "on",
                    "the field both lists share, or `{left, right}`",
                    |cx, p, v| match v {
                        Value::String(f) => Some((f.clone(), f.clone())),
                        _ => {
                            let o = cx.object(p, v, &keys::JOIN_ON)?;
                            let left =
                                o.req(cx, "left", "the field of this list", ValueReader::string);
                            let right = o.req(
                                cx,
                                "right",
                                "the field of the other list",
                                ValueReader::string,
                            );
                            Some((left?, right?))
                        }
                    },
                );
                let into = j.req(
                    cx,
                    "as",
                    "the field the match goes into",
                    ValueReader::string,
                );
                match (with, on, into) {
                    (Some(with), Some((left, right)), Some(into)) => Some(Transform::Join {
                        with,
                        left,
                        right,
                        into,
                    }),
                    _ => None,
                }
            }
            _ => None,
        };
        out.extend(step);
    }
    // Later checks address steps by position: keep the list only when every step was read.
    if cx.diags.len() > before {
        Vec::new()
    } else {
        out
    }
}

// ---------------------------------------------------------------- database.yaml

pub(crate) fn database(cx: &mut ValueReader, doc: &Value, base_dir: &Path) -> DatabaseConfig {
    let Some(root) = cx.object(&KeyPath::root(), doc, &keys::DATABASE_FILE) else {
        return DatabaseConfig::default();
    };
    let Some(o) = root
        .get("database")
        .and_then(|v| cx.object(&root.at("database"), v, &keys::DATABASE))
    else {
        return DatabaseConfig::default();
    };
    let timeout = o
        .get("defaults")
        .and_then(|v| cx.object(&o.at("defaults"), v, &keys::DATABASE_DEFAULTS))
        .and_then(|d| d.opt_duration(cx, "timeout"));
    DatabaseConfig {
        timeout,
        sources: o.map_of(
            cx,
            "sources",
            "a mapping of connection names to settings",
            |cx, _, p, v| db_connection(cx, p, v, base_dir),
        ),
        operations: o.map_of(
            cx,
            "operations",
            "a mapping of operation names to definitions",
            db_operation,
        ),
    }
}

fn db_connection(
    cx: &mut ValueReader,
    path: &KeyPath,
    v: &Value,
    base_dir: &Path,
) -> Option<DbConnection> {
    let o = cx.object(path, v, &keys::DB_CONNECTION)?;
    let raw = o.req(
        cx,
        "connection_string",
        "a database URL",
        ValueReader::string,
    )?;
    let url = match translate_db_url(&raw, base_dir) {
        Ok(url) => url,
        Err(msg) => {
            cx.report(
                Diagnostic::new(Code::InvalidValue, o.at("connection_string"), msg)
                    .with_help("use `sqlite:///relative.db`, `sqlite://:memory:`, `postgresql://user@host/db` or `mysql://user@host/db`"),
            );
            return None;
        }
    };
    let url = connect_args(cx, &o, url);
    if let Some(kind) = o.opt_string(cx, "type") {
        let driver = crate::plan::SqlDriver::of_url(&url);
        let named = match kind.to_ascii_lowercase().as_str() {
            "sqlite" | "sqlite3" => Some(crate::plan::SqlDriver::Sqlite),
            "postgres" | "postgresql" => Some(crate::plan::SqlDriver::Postgres),
            "mysql" | "mariadb" => Some(crate::plan::SqlDriver::MySql),
            _ => None,
        };
        if named.is_none() || named != driver {
            cx.report(
                Diagnostic::new(
                    Code::InvalidValue,
                    o.at("type"),
                    format!("`type: {kind}` does not match the connection string"),
                )
                .with_help("the connection string names the database; remove `type`, or make it `sqlite`, `postgresql` or `mysql` as the URL says"),
            );
        }
    }
    let overflow: Option<u32> = o.opt(cx, "max_overflow", ValueReader::uint);
    let pool_size = match (o.opt(cx, "pool_size", ValueReader::uint), overflow) {
        (size, Some(extra)) => Some(size.unwrap_or(5u32).saturating_add(extra)),
        (size, None) => size,
    };
    let either = |cx: &mut ValueReader, ours: &str, theirs: &str| match (o.get(ours), o.get(theirs))
    {
        (Some(_), Some(_)) => {
            cx.report(
                Diagnostic::new(
                    Code::InvalidValue,
                    o.at(theirs),
                    format!("`{ours}` and `{theirs}` are the same setting"),
                )
                .at_key()
                .with_help("keep one of them"),
            );
            None
        }
        (Some(_), None) => o.opt_duration(cx, ours),
        (None, _) => o.opt_duration(cx, theirs),
    };
    let acquire_timeout = either(cx, "acquire_timeout", "pool_timeout");
    let max_lifetime = either(cx, "max_lifetime", "pool_recycle");
    Some(DbConnection {
        url: url.into(),
        pool_size,
        acquire_timeout,
        max_lifetime,
        statement_timeout: o.opt_duration(cx, "statement_timeout"),
        log_parameters: o
            .opt(cx, "log_parameters", ValueReader::boolean)
            .unwrap_or(false),
        origin: origin(cx),
    })
}

/// SQLAlchemy's `connect_args`: the driver options sqlx takes in the URL are added to it; the
/// others are reported as warnings.
fn connect_args(cx: &mut ValueReader, o: &Object<'_>, mut url: String) -> String {
    let Some(v) = o.get("connect_args") else {
        return url;
    };
    let path = o.at("connect_args");
    let Value::Object(args) = v else {
        cx.wrong_type(&path, "a mapping of driver options", v);
        return url;
    };
    let driver = crate::plan::SqlDriver::of_url(&url);
    for (key, value) in args {
        use crate::plan::SqlDriver::{MySql, Postgres};
        // (name in connect_args, name in the sqlx URL)
        let mapped = match (driver, key.as_str()) {
            (Some(Postgres), "sslmode" | "application_name" | "options" | "sslrootcert") => {
                Some(key.as_str())
            }
            (Some(MySql), "ssl_mode") => Some("ssl-mode"),
            (Some(MySql), "ssl_ca") => Some("ssl-ca"),
            (Some(MySql), "charset") => Some("charset"),
            _ => None,
        };
        let text = match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        match (mapped, text) {
            (Some(name), Some(text)) => {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(name);
                url.push('=');
                url.extend(form_urlencoded_component(&text));
            }
            _ => cx.report(
                Diagnostic::warning(Code::Ignored, path.key(key), format!("connect arg `{key}` has no effect here"))
                    .at_key()
                    .with_help("mapped are PostgreSQL `sslmode`, `sslrootcert`, `application_name`, `options` and MySQL `ssl_mode`, `ssl_ca`, `charset`; pool waits are `pool_timeout`, statement limits `statement_timeout`"),
            ),
        }
    }
    url
}

/// Percent-encodes a URL query value.
fn form_urlencoded_component(s: &str) -> impl Iterator<Item = char> + '_ {
    s.bytes().flat_map(|b| {
        let keep = b.is_ascii_alphanumeric() || b"-_.~".contains(&b);
        let hex = |n: u8| char::from(b"0123456789ABCDEF"[usize::from(n)]);
        let chars: [Option<char>; 3] = if keep {
            [Some(char::from(b)), None, None]
        } else {
            [Some('%'), Some(hex(b >> 4)), Some(hex(b & 15))]
        };
        chars.into_iter().flatten()
    })
}

/// Translates SQLAlchemy-style URLs into sqlx URLs; relative SQLite paths resolve against
/// `base_dir` (the config directory).
pub(crate) fn translate_db_url(raw: &str, base_dir: &Path) -> Result<String, String> {
    let (scheme, rest, authority) = match raw.split_once("://") {
        Some((scheme, rest)) => (scheme, rest, true),
        None => raw
            .split_once(':')
            .map(|(scheme, rest)| (scheme, rest, false))
            .ok_or_else(|| format!("`{}` is not a database URL", crate::redact::url(raw)))?,
    };
    let driver = scheme.split('+').next().unwrap_or(scheme);
    match driver {
        "sqlite" => {
            // SQLAlchemy: `sqlite://` (memory), `sqlite:///rel.db`, `sqlite:////abs.db`;
            // sqlx: `sqlite::memory:`, `sqlite:rel.db`, `sqlite:/abs.db`.
            let path = match authority {
                true => rest.strip_prefix('/').unwrap_or(rest),
                false => rest,
            };
            let path = path.split('?').next().unwrap_or(path);
            let query = rest.split_once('?').map(|(_, q)| q);
            if path.is_empty() || path == ":memory:" {
                return Ok("sqlite::memory:".into());
            }
            let full = if Path::new(path).is_absolute() {
                Path::new(path).to_path_buf()
            } else {
                base_dir.join(path)
            };
            let mut url = format!("sqlite://{}", full.display());
            if let Some(q) = query {
                url.push('?');
                url.push_str(q);
            }
            Ok(url)
        }
        "postgres" | "postgresql" => Ok(format!("postgres://{}", after_scheme(raw))),
        "mysql" | "mariadb" => Ok(format!("mysql://{}", after_scheme(raw))),
        other => Err(format!("unsupported database scheme `{other}`")),
    }
}

fn after_scheme(raw: &str) -> &str {
    raw.split_once("://").map_or("", |(_, r)| r)
}

fn db_operation(cx: &mut ValueReader, _: &str, path: &KeyPath, v: &Value) -> Option<DbOperation> {
    let o = cx.object(path, v, &keys::DB_OPERATION)?;
    Some(DbOperation {
        query: o.req(
            cx,
            "query",
            "the SQL text, with `:name` placeholders",
            ValueReader::string,
        )?,
        params: o.opt(cx, "params", db_params).unwrap_or_default(),
        return_type: o
            .opt(cx, "return_type", |cx, p, v| {
                cx.choice(p, v, ReturnType::NAMES, ReturnType::parse)
            })
            .unwrap_or_default(),
        columns: o.map_of(
            cx,
            "columns",
            "a mapping of column names to types",
            |cx, _, p, v| sql_type(cx, p, v),
        ),
        source_id: o.opt_string(cx, "source_id"),
        timeout: o.opt_duration(cx, "timeout"),
        max_rows: o
            .opt(cx, "max_rows", ValueReader::uint)
            .filter(|&n: &usize| {
                if n == 0 {
                    cx.report(
                        Diagnostic::new(
                            Code::InvalidValue,
                            o.at("max_rows"),
                            "`max_rows: 0` would fail every call",
                        )
                        .with_help(
                            "allow at least one row, or remove `max_rows` for the default of 10000",
                        ),
                    );
                }
                n > 0
            }),
        batch: o.opt(cx, "batch", |cx, p, v| {
            let b = cx.object(p, v, &keys::SQL_BATCH)?;
            let param = b.req(
                cx,
                "param",
                "the `IN (:param)` list parameter",
                ValueReader::string,
            );
            let key = b.req(
                cx,
                "key",
                "the result column each row is matched back by",
                ValueReader::string,
            );
            Some(SqlBatch::new(param?, key?))
        }),
        origin: origin(cx),
    })
}

fn sql_type(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> Option<SqlType> {
    cx.choice(path, v, SqlType::NAMES, SqlType::parse)
}

/// `params: [a, b]` (untyped) or `params: {a: integer, b: string}` (typed, in query order).
fn db_params(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> Option<Vec<DbParam>> {
    match v {
        Value::Object(_) => Some(
            cx.entries(
                path,
                v,
                "a mapping of parameter names to types",
                |cx, _, p, v| sql_type(cx, p, v),
            )
            .into_iter()
            .map(|(name, ty)| DbParam { name, ty: Some(ty) })
            .collect(),
        ),
        Value::Array(_) => Some(
            cx.strings(path, v)?
                .into_iter()
                .map(DbParam::untyped)
                .collect(),
        ),
        other => {
            cx.wrong_type(
                path,
                "a list of parameter names, or a mapping of names to types",
                other,
            );
            None
        }
    }
}

// ---------------------------------------------------------------- integrations/api_sources.yaml

pub(crate) fn api(cx: &mut ValueReader, doc: &Value, base_dir: &Path) -> ApiConfig {
    let sources = services(cx, doc, &keys::API_FILE, |cx, p, v| {
        let o = cx.object(p, v, &keys::API_SERVICE)?;
        o.ignored(
            cx,
            "mock_response",
            "answers are never mocked in the server: run a stub server for tests and point `base_url` at it",
        );
        let http = http_settings(cx, &o);
        let auth = o.opt(cx, "auth", auth);
        let auth_header = match &auth {
            Some(ApiAuth::Bearer { .. } | ApiAuth::Basic { .. }) => {
                Some("authorization".to_owned())
            }
            Some(ApiAuth::ApiKey {
                header: Some(h), ..
            }) => Some(h.to_ascii_lowercase()),
            _ => None,
        };
        if let Some(h) = auth_header.filter(|h| http.forward_headers.contains(h)) {
            cx.report(
                Diagnostic::new(
                    Code::InvalidValue,
                    o.at("forward_headers"),
                    format!("`{h}` is forwarded from the caller and also set by `auth`"),
                )
                .with_help("relay the caller's credentials or send the service's own, not both"),
            );
        }
        Some(ApiService {
            base_url: o
                .req(cx, "base_url", "the service's base URL", base_url)?
                .into(),
            http,
            auth,
            operations: o.map_of(
                cx,
                "operations",
                "a mapping of operation names to definitions",
                api_operation,
            ),
            // A file is read relative to the config directory, as SQLite paths are.
            openapi: o.opt_string(cx, "openapi").map(|doc| {
                if doc.contains("://") {
                    doc
                } else {
                    base_dir.join(doc).display().to_string()
                }
            }),
            origin: origin(cx),
        })
    });
    ApiConfig { sources }
}

/// The keys of [`HttpSettings`] plus `more`.
fn http_settings(cx: &mut ValueReader, o: &Object<'_>) -> HttpSettings {
    let retries = match (o.get("retries"), o.get("retry_count")) {
        (Some(_), Some(_)) => {
            cx.report(
                Diagnostic::new(
                    Code::InvalidValue,
                    o.at("retry_count"),
                    "`retries` and `retry_count` are the same setting",
                )
                .at_key()
                .with_help("keep `retries`"),
            );
            None
        }
        (None, Some(_)) => o.opt(cx, "retry_count", retries),
        _ => o.opt(cx, "retries", retries),
    };
    let headers = secrets(o.string_map(cx, "headers"));
    let forward_headers = o
        .opt(cx, "forward_headers", forward_headers)
        .unwrap_or_default();
    if let Some(name) = forward_headers
        .iter()
        .find(|f| headers.keys().any(|k| k.eq_ignore_ascii_case(f)))
    {
        cx.report(
            Diagnostic::new(
                Code::InvalidValue,
                o.at("forward_headers"),
                format!("`{name}` is forwarded from the caller and also set in `headers`"),
            )
            .with_help("keep one of the two"),
        );
    }
    HttpSettings {
        timeout: o.opt_duration(cx, "timeout"),
        headers,
        retries,
        max_response_bytes: o.opt(cx, "max_response_bytes", ValueReader::uint),
        cache: o.opt(cx, "cache", policy::cache_policy),
        circuit_breaker: o.opt(cx, "circuit_breaker", policy::circuit_breaker),
        max_concurrent: policy::max_concurrent(o, cx),
        forward_headers,
    }
}

/// `forward_headers: [authorization, x-tenant]`: names of request headers, stored lower-case;
/// never one the client writes itself.
fn forward_headers(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> Option<Vec<String>> {
    const OWN: [&str; 12] = [
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "x-request-id",
        "traceparent",
    ];
    let names = cx.strings(path, v)?;
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.into_iter().enumerate() {
        let lower = name.to_ascii_lowercase();
        let at = if v.is_array() {
            path.index(i)
        } else {
            path.clone()
        };
        if lower.is_empty()
            || !lower
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            cx.report(
                Diagnostic::new(
                    Code::InvalidValue,
                    at,
                    format!("`{name}` is not a header name"),
                )
                .with_help("list header names such as `authorization` or `x-tenant`"),
            );
        } else if OWN.contains(&lower.as_str()) {
            cx.report(
                Diagnostic::new(Code::InvalidValue, at, format!("`{lower}` is written by the client for every call"))
                    .with_help("forward the caller's own headers, such as `authorization`, `cookie` or `x-tenant`"),
            );
        } else if !out.contains(&lower) {
            out.push(lower);
        }
    }
    Some(out)
}

/// An absolute `http://` or `https://` URL (env references are already resolved).
fn base_url(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> Option<String> {
    let s = cx.string(path, v)?;
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !s.contains(['?', '#']) => {
            Some(s)
        }
        _ => {
            cx.report(
                Diagnostic::new(Code::InvalidValue, path.clone(), format!("`{}` is not an http(s) base URL", crate::redact::url(&s)))
                    .with_help("write `http://host:port/prefix` (no query or fragment; operation paths are appended)"),
            );
            None
        }
    }
}

/// The `<top>: {sources: {<id>: …}}` of an integration file (`file`, one key whose mapping has
/// `sources`), each entry read by `f`.
fn services<T>(
    cx: &mut ValueReader,
    doc: &Value,
    file: &'static keys::Table,
    f: impl FnMut(&mut ValueReader, &KeyPath, &Value) -> Option<T>,
) -> BTreeMap<String, T> {
    let (Some(top), Some(root)) = (file.keys.first(), cx.object(&KeyPath::root(), doc, file))
    else {
        return BTreeMap::new();
    };
    let keys::Shape::Obj(inner) = top.shape else {
        return BTreeMap::new();
    };
    match root
        .get(top.name)
        .and_then(|v| cx.object(&root.at(top.name), v, inner))
    {
        Some(o) => sources(cx, &o, f),
        None => BTreeMap::new(),
    }
}

/// The `sources:` entries of an integration file's top mapping.
fn sources<T>(
    cx: &mut ValueReader,
    o: &Object<'_>,
    mut f: impl FnMut(&mut ValueReader, &KeyPath, &Value) -> Option<T>,
) -> BTreeMap<String, T> {
    o.get("sources")
        .map(|v| {
            cx.entries(
                &o.at("sources"),
                v,
                "a mapping of integration names to settings",
                |cx, _, p, v| f(cx, p, v),
            )
            .into_iter()
            .collect()
        })
        .unwrap_or_default()
}

/// `integrations/<kind>.yaml` of a host source type (`<kind>: {sources: {<id>: …}}`): its
/// entries, keys checked against the host's.
pub(crate) fn host_integration(
    cx: &mut ValueReader,
    doc: &Value,
    file: &super::IntegrationFile,
) -> BTreeMap<String, Value> {
    let top = file.kind.as_str();
    let Some(root) = cx.object_with(&KeyPath::root(), doc, std::iter::once(top)) else {
        return BTreeMap::new();
    };
    let Some(o) = root
        .get(top)
        .and_then(|v| cx.object_with(&root.at(top), v, std::iter::once("sources")))
    else {
        return BTreeMap::new();
    };
    sources(cx, &o, |cx, p, v| {
        let o = cx.object_with(p, v, file.keys.iter().map(String::as_str))?;
        let mut complete = true;
        for name in &file.required {
            complete &= o
                .req(cx, name, "a value", |_, _, v| Some(v.clone()))
                .is_some();
        }
        complete.then(|| v.clone())
    })
}

fn auth(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> Option<ApiAuth> {
    let o = cx.object(path, v, &keys::API_AUTH)?;
    let kind = o.req(cx, "type", "`bearer`, `api_key` or `basic`", |cx, p, v| {
        cx.choice(p, v, &["bearer", "api_key", "basic"], |s| {
            ["bearer", "api_key", "basic"]
                .contains(&s)
                .then(|| s.to_owned())
        })
    })?;
    let allowed: &[&str] = match kind.as_str() {
        "bearer" => &["type", "token"],
        "api_key" => &["type", "header", "query", "key"],
        _ => &["type", "username", "password"],
    };
    for key in o.map.keys().filter(|k| !allowed.contains(&k.as_str())) {
        cx.report(
            Diagnostic::new(
                Code::UnknownKey,
                o.at(key),
                format!("`{key}` does not apply to `{kind}` auth"),
            )
            .at_key()
            .with_help(format!("`{kind}` auth takes: {}", allowed[1..].join(", "))),
        );
    }
    Some(match kind.as_str() {
        "bearer" => ApiAuth::Bearer {
            token: o
                .req(
                    cx,
                    "token",
                    "the token (use `${env:NAME}`)",
                    ValueReader::string,
                )?
                .into(),
        },
        "api_key" => {
            let header = o.opt_string(cx, "header");
            let query = o.opt_string(cx, "query");
            if header.is_some() == query.is_some() {
                cx.report(
                    Diagnostic::new(
                        Code::InvalidValue,
                        path.clone(),
                        "`api_key` auth needs exactly one of `header` or `query`",
                    )
                    .with_help("e.g. `header: X-API-Key`"),
                );
            }
            ApiAuth::ApiKey {
                header,
                query,
                key: o
                    .req(
                        cx,
                        "key",
                        "the key (use `${env:NAME}`)",
                        ValueReader::string,
                    )?
                    .into(),
            }
        }
        _ => ApiAuth::Basic {
            username: o.req(cx, "username", "the user name", ValueReader::string)?,
            password: o.opt_string(cx, "password").map(Secret::from),
        },
    })
}

fn api_operation(cx: &mut ValueReader, _: &str, path: &KeyPath, v: &Value) -> Option<ApiOperation> {
    let o = cx.object(path, v, &keys::API_OPERATION)?;
    o.ignored(
        cx,
        "path_params",
        "path parameters are the `{name}` segments of `path`, filled from the data source's params",
    );
    o.ignored(
        cx,
        "params",
        "send query parameters with `query: {name: \"{param}\"}` and a body with `body:`",
    );
    for key in ["mock", "mock_response"] {
        o.ignored(
            cx,
            key,
            "answers are never mocked in the server: run a stub server for tests and point `base_url` at it",
        );
    }
    Some(ApiOperation {
        method: o
            .opt(cx, "method", |cx, p, v| {
                cx.choice(p, v, HttpMethod::NAMES, HttpMethod::parse)
            })
            .unwrap_or(HttpMethod::Get),
        path: o.req(
            cx,
            "path",
            "the path template, e.g. `/customers/{customer_id}`",
            ValueReader::string,
        )?,
        query: o.value_map(cx, "query"),
        headers: o.value_map(cx, "headers"),
        body: o.get("body").cloned().filter(|b| !b.is_null()),
        extract: o.opt(cx, "extract", |cx, p, v| {
            let s = cx.string(p, v)?;
            if s.is_empty() || s.starts_with('/') {
                Some(s)
            } else {
                cx.report(
                    Diagnostic::new(
                        Code::InvalidValue,
                        p.clone(),
                        format!("`{s}` is not a JSON pointer"),
                    )
                    .with_help(format!(
                        "write it as `/{}` (RFC 6901: `/` before each key or index)",
                        s.replace('.', "/")
                    )),
                );
                None
            }
        }),
        retries: o.opt(cx, "retries", retries),
        sample: o.get("sample").is_some().then(|| o.value_map(cx, "sample")),
        batch: o.opt(cx, "batch", |cx, p, v| {
            let b = cx.object(p, v, &keys::API_BATCH)?;
            let param = b.req(
                cx,
                "param",
                "the placeholder the keys go into, e.g. `param: ids`",
                ValueReader::string,
            )?;
            Some(ApiBatch {
                param,
                matched_by: b.opt_string(cx, "match"),
                max_size: b.opt(cx, "size", policy::positive),
            })
        }),
        origin: origin(cx),
    })
}

// ---------------------------------------------------------------- integrations/feast_config.yaml

pub(crate) fn feast(cx: &mut ValueReader, doc: &Value) -> FeastConfig {
    let sources = services(cx, doc, &keys::FEAST_FILE, |cx, p, v| {
        let o = cx.object(p, v, &keys::FEAST_SERVER)?;
        // The Python SDK's settings: accepted and ignored.
        let sdk: Vec<&str> = keys::FEAST_SERVER
            .keys
            .iter()
            .filter(|k| k.ignored && o.map.contains_key(k.name))
            .map(|k| k.name)
            .collect();
        let server_help = "this reads from a Feast feature *server* over HTTP (`feast serve`, port 6566), not from a repository through the Python SDK: set `url: http://host:6566` and declare `operations:` with their `features` and `entity_key`";
        for key in &sdk {
            o.ignored(cx, key, server_help);
        }
        if !sdk.is_empty() && o.get("url").is_none() && o.get("base_url").is_none() {
            cx.report(
                Diagnostic::new(
                    Code::MissingKey,
                    p.clone(),
                    "this Feast source has Python SDK settings but no feature server `url`",
                )
                .with_help(server_help),
            );
            return None;
        }
        let url = match (o.get("url"), o.get("base_url")) {
            (Some(_), Some(_)) => {
                cx.report(
                    Diagnostic::new(
                        Code::InvalidValue,
                        o.at("base_url"),
                        "`url` and `base_url` are the same setting",
                    )
                    .at_key()
                    .with_help("keep one of them"),
                );
                None
            }
            (Some(_), None) => o.opt(cx, "url", base_url),
            (None, Some(_)) => o.opt(cx, "base_url", base_url),
            (None, None) => o.req(cx, "url", "the feature server URL", base_url),
        }?;
        Some(FeastServer {
            url: url.into(),
            http: http_settings(cx, &o),
            operations: o.map_of(
                cx,
                "operations",
                "a mapping of operation names to definitions",
                feast_operation,
            ),
            origin: origin(cx),
        })
    });
    FeastConfig { sources }
}

fn feast_operation(
    cx: &mut ValueReader,
    _: &str,
    path: &KeyPath,
    v: &Value,
) -> Option<FeastOperation> {
    let o = cx.object(path, v, &keys::FEAST_OPERATION)?;
    let features = o
        .opt(cx, "features", ValueReader::strings)
        .unwrap_or_default();
    let feature_service = o.opt_string(cx, "feature_service");
    if features.is_empty() == feature_service.is_none() {
        cx.report(
            Diagnostic::new(
                Code::InvalidValue,
                path.clone(),
                "a feature lookup needs exactly one of `features` or `feature_service`",
            )
            .with_help("list features as `view:feature`, or name a feature service"),
        );
    }
    Some(FeastOperation {
        features,
        feature_service,
        entity_keys: o.req(
            cx,
            "entity_key",
            "the join key name(s)",
            ValueReader::strings,
        )?,
        full_feature_names: o
            .opt(cx, "full_feature_names", ValueReader::boolean)
            .unwrap_or(false),
        on_missing: o
            .opt(cx, "on_missing", |cx, p, v| {
                cx.choice(p, v, OnMissing::NAMES, OnMissing::parse)
            })
            .unwrap_or_default(),
        database_fallback: o.opt(cx, "database_fallback", |cx, p, v| {
            let f = cx.object(p, v, &keys::FEAST_FALLBACK)?;
            Some(FeatureFallback {
                table: f.req(cx, "table", "the table name", sql_identifier)?,
                entity_key: f.req(cx, "entity_key", "the key column", sql_identifier)?,
                mapping: f.map_of(
                    cx,
                    "mapping",
                    "a mapping of feature names to columns",
                    |cx, _, p, v| sql_identifier(cx, p, v),
                ),
                source_id: f.opt_string(cx, "source_id"),
            })
        }),
        sample: o.get("sample").is_some().then(|| o.value_map(cx, "sample")),
        origin: origin(cx),
    })
}

/// A table or column name that is spliced into generated SQL: letters, digits and `_`, with
/// one optional `schema.` prefix. Anything else could change the statement.
fn sql_identifier(cx: &mut ValueReader, path: &KeyPath, v: &Value) -> Option<String> {
    let s = cx.string(path, v)?;
    let part = |p: &str| {
        p.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let ok = match s.split_once('.') {
        Some((schema, name)) => part(schema) && part(name),
        None => part(&s),
    };
    if ok {
        return Some(s);
    }
    cx.report(
        Diagnostic::new(Code::InvalidValue, path.clone(), format!("`{s}` is not a plain SQL identifier"))
            .with_help("use letters, digits and `_` (and one `schema.` prefix); names are checked because they are written into the fallback's SQL"),
    );
    None
}

// ---------------------------------------------------------------- integrations/ml_config.yaml

pub(crate) fn ml(cx: &mut ValueReader, doc: &Value) -> MlConfig {
    let sources = services(cx, doc, &keys::ML_FILE, |cx, p, v| {
        let o = cx.object(p, v, &keys::ML_SERVER)?;
        Some(ModelServer {
            base_url: o
                .req(cx, "base_url", "the model server's base URL", base_url)?
                .into(),
            http: http_settings(cx, &o),
            models: o.map_of(
                cx,
                "models",
                "a mapping of model names to definitions",
                model,
            ),
            origin: origin(cx),
        })
    });
    MlConfig { sources }
}

fn model(cx: &mut ValueReader, _: &str, path: &KeyPath, v: &Value) -> Option<Model> {
    let o = cx.object(path, v, &keys::MODEL)?;
    if let Some(m) = o.opt_string(cx, "method")
        && !m.eq_ignore_ascii_case("post")
    {
        cx.report(
            Diagnostic::new(
                Code::InvalidValue,
                o.at("method"),
                format!("models are called with POST, not `{m}`"),
            )
            .with_help("remove `method` (POST is the only method of every model protocol)"),
        );
    }
    o.ignored(
        cx,
        "source",
        "models are not started from the config (the original ran `startup_command` with a shell, or Docker/ECR images): start the model server yourself and point `base_url` or `endpoint` at it",
    );
    let protocol = o
        .opt(cx, "protocol", |cx, p, v| {
            cx.choice(p, v, ModelProtocol::NAMES, ModelProtocol::parse)
        })
        .unwrap_or_default();
    let endpoint = o.opt_string(cx, "endpoint");
    if protocol == ModelProtocol::Json && endpoint.is_none() {
        cx.report(
            Diagnostic::new(Code::MissingKey, path.clone(), "a `json` model needs an `endpoint`")
                .with_help("add `endpoint: /path/on/the/server` (the resolved params are POSTed there), or pick a `protocol` (`v2`, `tfserving`, `mlflow`)"),
        );
    }
    let format = o.opt(cx, "format", |cx, p, v| {
        let names = Model::formats(protocol);
        if names.is_empty() {
            cx.report(
                Diagnostic::new(
                    Code::InvalidValue,
                    p.clone(),
                    "`format` applies to `tfserving` and `mlflow` models only",
                )
                .at_key()
                .with_help("remove it"),
            );
            return None;
        }
        cx.choice(p, v, names, |s| names.contains(&s).then(|| s.to_owned()))
    });
    let datatype = o.opt(cx, "datatype", |cx, p, v| {
        cx.choice(p, v, TENSOR_DATATYPES, |s| {
            TENSOR_DATATYPES.contains(&s).then(|| s.to_owned())
        })
    });
    let outputs = o.string_map(cx, "outputs");
    for (field, spec) in &outputs {
        if OutputPath::parse(spec).is_err() {
            cx.report(
                Diagnostic::new(
                    Code::InvalidValue,
                    o.at("outputs").key(field),
                    format!("`{spec}` is not an output path"),
                )
                .with_help(
                    "write `name`, `name[1]` or `[1]` (for `v2`, `name` is the output tensor)",
                ),
            );
        }
    }
    Some(Model {
        protocol,
        endpoint,
        version: o.opt_string(cx, "version"),
        inputs: o
            .opt(cx, "inputs", ValueReader::strings)
            .unwrap_or_default(),
        datatype,
        input_name: o.opt_string(cx, "input_name"),
        format,
        outputs,
        timeout: o.opt_duration(cx, "timeout"),
        headers: secrets(o.string_map(cx, "headers")),
        origin: origin(cx),
    })
}

/// Open Inference Protocol tensor datatypes.
pub(crate) const TENSOR_DATATYPES: &[&str] = &[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16",
    "FP32", "FP64", "BYTES",
];

/// Header values: they may hold tokens.
fn secrets(map: BTreeMap<String, String>) -> BTreeMap<String, Secret> {
    map.into_iter().map(|(k, v)| (k, v.into())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_sqlalchemy_urls() {
        let base = Path::new("/cfg");
        for (sqlalchemy, sqlx) in [
            ("sqlite:///customer360.db", "sqlite:///cfg/customer360.db"),
            ("sqlite:////abs/x.db", "sqlite:///abs/x.db"),
            ("sqlite://", "sqlite::memory:"),
            ("sqlite::memory:", "sqlite::memory:"),
            ("sqlite:rel.db", "sqlite:///cfg/rel.db"),
            ("sqlite:/abs/x.db?mode=ro", "sqlite:///abs/x.db?mode=ro"),
            ("postgresql+psycopg2://u@h/db", "postgres://u@h/db"),
            (
                "mysql+pymysql://root@127.0.0.1/test",
                "mysql://root@127.0.0.1/test",
            ),
        ] {
            assert_eq!(
                translate_db_url(sqlalchemy, base).unwrap(),
                sqlx,
                "{sqlalchemy}"
            );
        }
        assert!(translate_db_url("oracle://x", base).is_err());
    }
}
