//! Rust code that builds a validated plan: struct literals and expression ASTs, so nothing is
//! parsed when the program runs. Route templates are rebuilt with `RouteTemplate::parse` (they
//! were checked here; their fields are private).

use std::collections::BTreeMap;
use std::time::Duration;

use api_orchestrator_core::expr::{
    BinaryOp, Expr, Fields, Reference, RequestPart, Root, Segment, Template,
};
use api_orchestrator_core::plan::{
    ApiAuth, ApiBatch, ApiConfig, ApiOperation, ApiService, AppSettings, AuthSettings, CachePolicy,
    CacheSettings, CacheStore, CircuitBreaker, CorsSettings, DatabaseConfig, DbConnection,
    DbOperation, DbParam, DomainInfo, Endpoint, EndpointType, Fallback, FeastConfig,
    FeastOperation, FeastServer, FeatureFallback, ForEach, HttpMethod, HttpSettings, InFlightLimit,
    InputField, InputSchema, InputType, Integrations, Limits, LogFile, LogFormat, LogRotation,
    LoggingSettings, MlConfig, Model, ModelProtocol, ModelServer, OnDegraded, OnError, OnMissing,
    OnNotFound, Origin, Plan, RateLimit, RateLimitKey, RetryPolicy, ReturnType, RouteTemplate,
    ScopedIntegrations, Secret, ServerSettings, Settings, SourceStep, SqlBatch, SqlType,
    TelemetrySettings, TrackingSettings, Transform,
};
use proc_macro2::TokenStream;
use quote::quote;
use serde_json::Value;

/// Rust code that evaluates to an equal value.
pub(crate) trait Emit {
    fn emit(&self) -> TokenStream;
}

macro_rules! unit_enum {
    ($ty:ident: $($variant:ident),* $(,)?) => {
        impl Emit for $ty {
            fn emit(&self) -> TokenStream {
                match self {
                    $($ty::$variant => quote!(::api_orchestrator::plan::$ty::$variant),)*
                }
            }
        }
    };
}

/// Plan types are `#[non_exhaustive]`, so the expansion builds them as the default value with
/// each field set: a field this list forgets keeps its default, and the macro ≡ YAML
/// equivalence test catches it.
macro_rules! record {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        impl Emit for $ty {
            fn emit(&self) -> TokenStream {
                $(let $field = self.$field.emit();)*
                quote!({
                    let mut v = <::api_orchestrator::plan::$ty as ::core::default::Default>::default();
                    $(v.$field = #$field;)*
                    v
                })
            }
        }
    };
}

/// A variant this version of the macro does not know: the core crate is pinned to the
/// macro's version, so only a core change without a macro change gets here, which the tests
/// catch.
fn unknown(value: &impl std::fmt::Debug) -> TokenStream {
    let message = format!(
        "orchestrate!: cannot emit {value:?}; api-orchestrator-macros and api-orchestrator-core differ"
    );
    quote!(::core::compile_error!(#message))
}

impl Emit for String {
    fn emit(&self) -> TokenStream {
        quote!(::api_orchestrator::__private::s(#self))
    }
}

impl Emit for Secret {
    fn emit(&self) -> TokenStream {
        let text = self.expose();
        quote!(::api_orchestrator::plan::Secret::new(#text))
    }
}

impl Emit for bool {
    fn emit(&self) -> TokenStream {
        quote!(#self)
    }
}

impl Emit for u16 {
    fn emit(&self) -> TokenStream {
        quote!(#self)
    }
}

impl Emit for u32 {
    fn emit(&self) -> TokenStream {
        quote!(#self)
    }
}

impl Emit for u64 {
    fn emit(&self) -> TokenStream {
        quote!(#self)
    }
}

impl Emit for usize {
    fn emit(&self) -> TokenStream {
        quote!(#self)
    }
}

impl Emit for f64 {
    fn emit(&self) -> TokenStream {
        let v = *self;
        quote!(#v)
    }
}

impl Emit for Duration {
    fn emit(&self) -> TokenStream {
        let (secs, nanos) = (self.as_secs(), self.subsec_nanos());
        quote!(::std::time::Duration::new(#secs, #nanos))
    }
}

impl<T: Emit> Emit for Option<T> {
    fn emit(&self) -> TokenStream {
        match self {
            Some(v) => {
                let v = v.emit();
                quote!(::std::option::Option::Some(#v))
            }
            None => quote!(::std::option::Option::None),
        }
    }
}

impl<T: Emit> Emit for Vec<T> {
    fn emit(&self) -> TokenStream {
        let items = self.iter().map(Emit::emit);
        quote!(::std::vec![#(#items),*])
    }
}

impl<T: Emit> Emit for Box<T> {
    fn emit(&self) -> TokenStream {
        let v = (**self).emit();
        quote!(::std::boxed::Box::new(#v))
    }
}

impl<A: Emit, B: Emit> Emit for (A, B) {
    fn emit(&self) -> TokenStream {
        let (a, b) = (self.0.emit(), self.1.emit());
        quote!((#a, #b))
    }
}

impl<V: Emit> Emit for BTreeMap<String, V> {
    fn emit(&self) -> TokenStream {
        let entries = self.iter().map(|(k, v)| {
            let (k, v) = (k.emit(), v.emit());
            quote!((#k, #v))
        });
        quote!(::std::collections::BTreeMap::from([#(#entries),*]))
    }
}

impl Emit for Value {
    fn emit(&self) -> TokenStream {
        let j = quote!(::api_orchestrator::__private::serde_json);
        match self {
            Value::Null => quote!(#j::Value::Null),
            Value::Bool(b) => quote!(#j::Value::Bool(#b)),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    quote!(#j::Value::from(#i))
                } else if let Some(u) = n.as_u64() {
                    quote!(#j::Value::from(#u))
                } else {
                    let f = n.as_f64().unwrap_or_default();
                    quote!(#j::Value::from(#f))
                }
            }
            Value::String(s) => quote!(::api_orchestrator::__private::js(#s)),
            Value::Array(items) => {
                let items = items.iter().map(Emit::emit);
                quote!(#j::Value::Array(::std::vec![#(#items),*]))
            }
            Value::Object(map) => {
                let inserts = map.iter().map(|(k, v)| {
                    let v = v.emit();
                    quote!(m.insert(::api_orchestrator::__private::s(#k), #v);)
                });
                quote!({
                    let mut m = #j::Map::new();
                    #(#inserts)*
                    #j::Value::Object(m)
                })
            }
        }
    }
}

// ---------------------------------------------------------------- expressions

impl Emit for Fields {
    fn emit(&self) -> TokenStream {
        let fields = self.to_vec().emit();
        quote!(::api_orchestrator::expr::Fields::new(#fields))
    }
}

impl Emit for Template {
    fn emit(&self) -> TokenStream {
        let t = quote!(::api_orchestrator::expr::Template);
        match self {
            Template::Literal(v) => {
                let v = v.emit();
                quote!(#t::Literal(#v))
            }
            Template::Expr(e) => {
                let e = e.emit();
                quote!(#t::Expr(#e))
            }
            Template::Object(fields) => {
                let fields = fields.emit();
                quote!(#t::Object(#fields))
            }
            Template::Array(items) => {
                let items = items.emit();
                quote!(#t::Array(#items))
            }
            other => unknown(other),
        }
    }
}

impl Emit for Expr {
    fn emit(&self) -> TokenStream {
        let x = quote!(::api_orchestrator::expr::Expr);
        match self {
            Expr::Literal(v) => {
                let v = v.emit();
                quote!(#x::Literal(#v))
            }
            Expr::Ref(r) => {
                let r = r.emit();
                quote!(#x::Ref(#r))
            }
            Expr::Fallback(items) => {
                let items = items.emit();
                quote!(#x::Fallback(#items))
            }
            Expr::Not(e) => {
                let e = e.emit();
                quote!(#x::Not(#e))
            }
            Expr::Neg(e) => {
                let e = e.emit();
                quote!(#x::Neg(#e))
            }
            Expr::Binary(op, a, b) => {
                let (op, a, b) = (op.emit(), a.emit(), b.emit());
                quote!(#x::Binary(#op, #a, #b))
            }
            Expr::Call(f, args) => {
                let name = f.name();
                let args = args.emit();
                quote!(#x::Call(
                    ::api_orchestrator::expr::Function::from_name(#name).expect("a function the macro checked"),
                    #args
                ))
            }
            Expr::List(items) => {
                let items = items.emit();
                quote!(#x::List(#items))
            }
            other => unknown(other),
        }
    }
}

impl Emit for BinaryOp {
    fn emit(&self) -> TokenStream {
        let v = match self {
            BinaryOp::Or => quote!(Or),
            BinaryOp::And => quote!(And),
            BinaryOp::Eq => quote!(Eq),
            BinaryOp::Ne => quote!(Ne),
            BinaryOp::Lt => quote!(Lt),
            BinaryOp::Le => quote!(Le),
            BinaryOp::Gt => quote!(Gt),
            BinaryOp::Ge => quote!(Ge),
            BinaryOp::In => quote!(In),
            BinaryOp::Add => quote!(Add),
            BinaryOp::Sub => quote!(Sub),
            BinaryOp::Mul => quote!(Mul),
            BinaryOp::Div => quote!(Div),
            BinaryOp::Rem => quote!(Rem),
            other => return unknown(other),
        };
        quote!(::api_orchestrator::expr::BinaryOp::#v)
    }
}

impl Emit for Reference {
    fn emit(&self) -> TokenStream {
        let (root, path) = (self.root.emit(), self.path.emit());
        quote!(::api_orchestrator::expr::Reference::new(#root, #path))
    }
}

impl Emit for Root {
    fn emit(&self) -> TokenStream {
        let r = quote!(::api_orchestrator::expr::Root);
        match self {
            Root::Request(part) => {
                let part = part.emit();
                quote!(#r::Request(#part))
            }
            Root::Source(name) => {
                let name = name.emit();
                quote!(#r::Source(#name))
            }
            Root::Item => quote!(#r::Item),
            Root::Index => quote!(#r::Index),
            other => unknown(other),
        }
    }
}

impl Emit for RequestPart {
    fn emit(&self) -> TokenStream {
        let v = match self {
            RequestPart::Any => quote!(Any),
            RequestPart::PathParams => quote!(PathParams),
            RequestPart::QueryParams => quote!(QueryParams),
            RequestPart::Body => quote!(Body),
            RequestPart::Headers => quote!(Headers),
            RequestPart::Auth => quote!(Auth),
            RequestPart::Context => quote!(Context),
            other => return unknown(other),
        };
        quote!(::api_orchestrator::expr::RequestPart::#v)
    }
}

impl Emit for Segment {
    fn emit(&self) -> TokenStream {
        let s = quote!(::api_orchestrator::expr::Segment);
        match self {
            Segment::Field(f) => {
                let f = f.emit();
                quote!(#s::Field(#f))
            }
            Segment::Index(i) => quote!(#s::Index(#i)),
            Segment::All => quote!(#s::All),
            other => unknown(other),
        }
    }
}

// ---------------------------------------------------------------- plan

/// One function per endpoint (and one for the integrations) instead of one giant expression:
/// the optimizer's time grows faster than linearly with a function's size, so this keeps
/// release builds of many endpoints fast.
impl Emit for Plan {
    fn emit(&self) -> TokenStream {
        let settings = self.settings.emit();
        let integrations = self.integrations.emit();
        let domains = self.domains.emit();
        // The snapshot as its JSON text, read back when the program starts (it serves the
        // OpenAPI types; the checks that need it ran at compile time).
        let snapshot = match &self.snapshot {
            Some(s) => {
                let text = s.to_json();
                quote!(::api_orchestrator::__private::snapshot(#text))
            }
            None => quote!(::core::option::Option::None),
        };
        let names: Vec<proc_macro2::Ident> = (0..self.endpoints.len())
            .map(|i| quote::format_ident!("__orchestrate_endpoint_{}", i))
            .collect();
        let bodies = self.endpoints.iter().map(Emit::emit);
        quote!({
            #(
                #[inline(never)]
                fn #names() -> ::api_orchestrator::plan::Endpoint { #bodies }
            )*
            #[inline(never)]
            fn __orchestrate_integrations() -> ::api_orchestrator::plan::ScopedIntegrations { #integrations }
            let mut plan = ::api_orchestrator::plan::Plan::default();
            plan.settings = #settings;
            plan.endpoints = ::std::vec![#(#names()),*];
            plan.integrations = __orchestrate_integrations();
            plan.domains = #domains;
            plan.snapshot = #snapshot;
            plan
        })
    }
}

record!(Settings {
    endpoint_timeout,
    source_timeout,
    server,
    tracking,
    cache,
    default_cache,
    default_retry,
    app,
    logging,
    compression,
    cors,
    auth,
    telemetry,
    limits,
});
record!(Limits {
    expression_nesting,
    expression_operators,
    yaml_nesting
});
record!(TelemetrySettings {
    service_name,
    endpoint,
    sampling_ratio,
    metrics
});
record!(AppSettings {
    name,
    environment,
    debug,
    base_path,
    original_routes
});
record!(LoggingSettings {
    level,
    format,
    file
});
unit_enum!(LogFormat: Text, Json);
record!(LogFile { path, rotation });
unit_enum!(LogRotation: Never, Minutely, Hourly, Daily);
record!(CorsSettings {
    allow_origins,
    allow_methods,
    allow_headers,
    allow_credentials
});
record!(DomainInfo {
    name,
    title,
    description
});

impl Emit for AuthSettings {
    fn emit(&self) -> TokenStream {
        let secret = self.jwt_secret.expose();
        quote!(::api_orchestrator::plan::AuthSettings::hs256(#secret))
    }
}
record!(CacheSettings {
    store,
    default_ttl,
    max_entries,
    max_bytes,
    timeout
});
record!(CachePolicy {
    ttl,
    stale_if_error,
    error_ttl
});
record!(CircuitBreaker {
    failures,
    open_for,
    probes
});
record!(InFlightLimit { limit, queue });
record!(RateLimit {
    requests,
    per,
    burst,
    key
});
unit_enum!(OnDegraded: Answer, Fail);

impl Emit for CacheStore {
    fn emit(&self) -> TokenStream {
        let c = quote!(::api_orchestrator::plan::CacheStore);
        match self {
            CacheStore::Memory => quote!(#c::Memory),
            CacheStore::Redis { url } => {
                let url = url.emit();
                quote!(#c::Redis { url: #url })
            }
            other => unknown(other),
        }
    }
}

impl Emit for RateLimitKey {
    fn emit(&self) -> TokenStream {
        let k = quote!(::api_orchestrator::plan::RateLimitKey);
        match self {
            RateLimitKey::Client => quote!(#k::Client),
            RateLimitKey::Global => quote!(#k::Global),
            RateLimitKey::Header(h) => {
                let h = h.emit();
                quote!(#k::Header(#h))
            }
            other => unknown(other),
        }
    }
}
record!(ServerSettings {
    host,
    port,
    max_body_bytes,
    workers
});
record!(TrackingSettings {
    debug_view,
    admin,
    recent,
    server_timing
});
record!(Endpoint {
    name,
    domain,
    description,
    tags,
    endpoint_type,
    methods,
    path,
    timeout,
    sources,
    primary_source,
    response_mapping,
    input,
    output,
    max_in_flight,
    rate_limit,
    on_degraded,
    origin,
});
record!(SourceStep {
    name,
    kind,
    operation,
    source_id,
    params,
    condition,
    depends_on,
    timeout,
    retry,
    on_error,
    fallback,
    transform,
    cache,
    no_cache,
    params_from,
    required,
    on_not_found,
    for_each,
});
record!(ForEach {
    items,
    concurrency,
    batch
});
unit_enum!(OnNotFound: Fail, Empty, Respond);
record!(RetryPolicy {
    max_retries,
    backoff,
    max_backoff
});
record!(InputSchema { path, query, body });
record!(InputField {
    name,
    ty,
    required,
    description
});
unit_enum!(InputType: String, Integer, Number, Boolean, Object, Array);
unit_enum!(EndpointType: Database, Api, Feast, Ml, Composite);
unit_enum!(HttpMethod: Get, Post, Put, Patch, Delete);

impl Emit for Origin {
    fn emit(&self) -> TokenStream {
        match &self.file {
            Some(f) => {
                let f: &str = f;
                quote!(::api_orchestrator::plan::Origin::file(#f))
            }
            None => quote!(::api_orchestrator::plan::Origin::default()),
        }
    }
}

impl Emit for RouteTemplate {
    fn emit(&self) -> TokenStream {
        let raw = self.as_str();
        quote!(::api_orchestrator::plan::RouteTemplate::parse(#raw).expect("a route the macro checked"))
    }
}

impl Emit for OnError {
    fn emit(&self) -> TokenStream {
        let o = quote!(::api_orchestrator::plan::OnError);
        match self {
            OnError::Fail => quote!(#o::Fail),
            OnError::Skip => quote!(#o::Skip),
            OnError::Default(v) => {
                let v = v.emit();
                quote!(#o::Default(#v))
            }
            other => unknown(other),
        }
    }
}

impl Emit for Fallback {
    fn emit(&self) -> TokenStream {
        let f = quote!(::api_orchestrator::plan::Fallback);
        match self {
            Fallback::Source {
                kind,
                operation,
                source_id,
            } => {
                let (kind, operation, source_id) =
                    (kind.emit(), operation.emit(), source_id.emit());
                quote!(#f::Source { kind: #kind, operation: #operation, source_id: #source_id })
            }
            Fallback::Value(v) => {
                let v = v.emit();
                quote!(#f::Value(#v))
            }
            other => unknown(other),
        }
    }
}

impl Emit for Transform {
    fn emit(&self) -> TokenStream {
        let t = quote!(::api_orchestrator::plan::Transform);
        match self {
            Transform::Select(f) => {
                let f = f.emit();
                quote!(#t::Select(#f))
            }
            Transform::Rename(f) => {
                let f = f.emit();
                quote!(#t::Rename(#f))
            }
            Transform::Defaults(f) => {
                let f = f.emit();
                quote!(#t::Defaults(#f))
            }
            Transform::Compute(f) => {
                let f = f.emit();
                quote!(#t::Compute(#f))
            }
            Transform::Filter(e) => {
                let e = e.emit();
                quote!(#t::Filter(#e))
            }
            Transform::Map(m) => {
                let m = m.emit();
                quote!(#t::Map(#m))
            }
            Transform::Flatten => quote!(#t::Flatten),
            Transform::Sort { by, descending } => {
                let by = by.emit();
                quote!(#t::Sort { by: #by, descending: #descending })
            }
            Transform::Limit(n) => {
                let n = n.emit();
                quote!(#t::Limit(#n))
            }
            Transform::GroupBy(e) => {
                let e = e.emit();
                quote!(#t::GroupBy(#e))
            }
            Transform::Join {
                with,
                left,
                right,
                into,
            } => {
                let (with, left, right, into) =
                    (with.emit(), left.emit(), right.emit(), into.emit());
                quote!(#t::Join { with: #with, left: #left, right: #right, into: #into })
            }
            other => unknown(other),
        }
    }
}

// ---------------------------------------------------------------- integrations

record!(ScopedIntegrations { global, domains });
record!(Integrations {
    database,
    api,
    feast,
    ml,
    host
});
record!(DatabaseConfig {
    sources,
    operations,
    timeout
});
record!(DbConnection {
    url,
    pool_size,
    acquire_timeout,
    statement_timeout,
    log_parameters,
    max_lifetime,
    origin,
});
record!(DbOperation {
    query,
    params,
    return_type,
    columns,
    source_id,
    timeout,
    max_rows,
    batch,
    origin
});
record!(SqlBatch { param, key });
record!(DbParam { name, ty });
unit_enum!(SqlType: String, Integer, Number, Boolean, Json);
unit_enum!(ReturnType: Single, List, Value);
record!(ApiConfig { sources });
record!(HttpSettings {
    timeout,
    headers,
    retries,
    max_response_bytes,
    cache,
    circuit_breaker,
    max_concurrent,
    forward_headers
});
record!(ApiService {
    base_url,
    http,
    auth,
    operations,
    openapi,
    origin
});
record!(ApiOperation {
    method,
    path,
    query,
    headers,
    body,
    extract,
    retries,
    sample,
    batch,
    origin
});
record!(ApiBatch {
    param,
    matched_by,
    max_size
});
record!(FeastConfig { sources });
record!(FeastServer {
    url,
    http,
    operations,
    origin
});
record!(FeastOperation {
    features,
    feature_service,
    entity_keys,
    full_feature_names,
    on_missing,
    database_fallback,
    sample,
    origin,
});
unit_enum!(OnMissing: Null, Error);
record!(FeatureFallback {
    table,
    entity_key,
    mapping,
    source_id
});
record!(MlConfig { sources });
record!(ModelServer {
    base_url,
    http,
    models,
    origin
});
record!(Model {
    protocol,
    endpoint,
    version,
    inputs,
    datatype,
    input_name,
    format,
    outputs,
    timeout,
    headers,
    origin,
});
unit_enum!(ModelProtocol: V2, TfServing, Mlflow, Json);

impl Emit for ApiAuth {
    fn emit(&self) -> TokenStream {
        let a = quote!(::api_orchestrator::plan::ApiAuth);
        match self {
            ApiAuth::Bearer { token } => {
                let token = token.emit();
                quote!(#a::Bearer { token: #token })
            }
            ApiAuth::ApiKey { header, query, key } => {
                let (header, query, key) = (header.emit(), query.emit(), key.emit());
                quote!(#a::ApiKey { header: #header, query: #query, key: #key })
            }
            ApiAuth::Basic { username, password } => {
                let (username, password) = (username.emit(), password.emit());
                quote!(#a::Basic { username: #username, password: #password })
            }
            other => unknown(other),
        }
    }
}
