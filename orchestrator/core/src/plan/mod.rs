//! The plan model: plain data describing endpoints, their data sources and the response mapping.
//!
//! A [`Plan`] is what both front-ends produce: the YAML loader ([`crate::config`]) and the
//! `orchestrate!` macro. It holds no clients and no runtime state; the engine compiles it into an
//! executable form once per config version.
//!
//! The types are `#[non_exhaustive]`, so that a new config key is not a breaking change: build
//! one from its `Default` and set its fields, then validate the plan
//! ([`ValidPlan::new`](crate::ValidPlan::new)):
//!
//! ```
//! use api_orchestrator_core::expr::Fields;
//! use api_orchestrator_core::plan::{Endpoint, Plan, SourceStep};
//! use api_orchestrator_core::{ValidPlan, validate::ValidateOptions};
//!
//! let mut step = SourceStep::default();
//! step.name = "hello".into();
//! step.kind = "direct".into();
//! step.params = Fields::default();
//! let mut endpoint = Endpoint::default();
//! endpoint.name = "hello".into();
//! endpoint.domain = Some("greetings".into());
//! endpoint.sources = vec![step];
//! let mut plan = Plan::default();
//! plan.endpoints.push(endpoint);
//! let plan = ValidPlan::new(plan, &ValidateOptions::default()).expect("valid");
//! assert_eq!(plan.endpoints[0].routes().len(), 4); // GET and POST, with and without an id
//! ```
//!
//! Enums the runtime must handle in full (protocols, SQL types, HTTP methods) stay exhaustive:
//! a new variant there comes with a new minor version.

mod integrations;
mod policy;
mod route;
mod secret;
mod serving;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::expr::{Expr, Fields, Template};

pub use integrations::{
    ApiAuth, ApiBatch, ApiConfig, ApiOperation, ApiService, DatabaseConfig, DbConnection,
    DbOperation, DbParam, FeastConfig, FeastOperation, FeastServer, FeatureFallback, HttpMethod,
    HttpSettings, Integrations, KeyedBatch, MlConfig, Model, ModelProtocol, ModelServer, OnMissing,
    OutputPath, OutputStep, ReturnType, ScopedIntegrations, Service, ServiceEntry, SqlBatch,
    SqlDriver, SqlType, placeholders,
};
pub use policy::{
    CachePolicy, CacheSettings, CacheStore, CircuitBreaker, InFlightLimit, OnDegraded, RateLimit,
    RateLimitKey,
};
pub use route::{ENTITY_ID, Route, RouteError, RouteTemplate, id_param_of};
pub use secret::Secret;
pub use serving::{
    AppSettings, AuthSettings, CorsSettings, DomainInfo, LogFile, LogFormat, LogRotation,
    LoggingSettings, TelemetrySettings,
};

/// Everything loaded from one config directory (or one macro invocation): settings, endpoints and
/// the integration definitions their sources refer to.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Plan {
    /// Global settings from `config.yaml`.
    pub settings: Settings,
    /// Endpoints in the order they were declared (domain files sorted by name).
    pub endpoints: Vec<Endpoint>,
    /// Integration definitions: the global files plus per-domain overrides.
    pub integrations: ScopedIntegrations,
    /// The domains that have a name or description (sorted by domain).
    pub domains: Vec<DomainInfo>,
    /// What the sources really return, when the config has a schema snapshot
    /// (`.orchestrator/schema.json`): the validator checks mappings against it and the
    /// OpenAPI document takes its types from it.
    pub snapshot: Option<std::sync::Arc<crate::snapshot::Snapshot>>,
}

impl Plan {
    /// The endpoint `name`: `domain/name`, or the bare name when no other domain has an
    /// endpoint of that name.
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoint_index(name).map(|i| &self.endpoints[i])
    }

    /// The position of endpoint `name` (see [`Plan::endpoint`]).
    pub fn endpoint_index(&self, name: &str) -> Option<usize> {
        if let Some((domain, bare)) = name.split_once('/') {
            return self
                .endpoints
                .iter()
                .position(|e| e.name == bare && e.domain.as_deref() == Some(domain));
        }
        let mut found = self
            .endpoints
            .iter()
            .enumerate()
            .filter(|(_, e)| e.name == name);
        match (found.next(), found.next()) {
            (Some((i, _)), None) => Some(i),
            _ => None,
        }
    }

    /// The integrations an endpoint's sources resolve against: its domain's overrides where the
    /// domain has them, the global files otherwise.
    pub fn integrations_for(&self, endpoint: &Endpoint) -> &Integrations {
        self.integrations.for_domain(endpoint.domain.as_deref())
    }
}

/// Global settings (`config.yaml`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Settings {
    /// Default endpoint budget when an endpoint sets no `timeout` (`defaults.timeout`, 30 s).
    pub endpoint_timeout: Duration,
    /// Default per-source timeout when a source sets none (`defaults.source_timeout`, 10 s).
    pub source_timeout: Duration,
    /// Bind address for the bundled server (`server.host` / `server.port`).
    pub server: ServerSettings,
    /// Execution tracking of the HTTP integrations (`tracking:`).
    pub tracking: TrackingSettings,
    /// The store of cached source answers (`cache:`).
    pub cache: CacheSettings,
    /// The cache of every source call that sets no `cache:` of its own
    /// (`performance: {cache_enabled: true, cache_ttl_seconds}`); `None`: only sources that
    /// opt in are cached.
    pub default_cache: Option<CachePolicy>,
    /// The retries of every source call that sets none (`execution.retries`).
    pub default_retry: Option<RetryPolicy>,
    /// The application and its mount prefix (`app:`, `api.prefix`).
    pub app: AppSettings,
    /// Log output of the bundled server (`logging:`).
    pub logging: LoggingSettings,
    /// gzip / brotli responses when the client accepts them
    /// (`performance.response_compression`).
    pub compression: bool,
    /// Cross-origin requests (`cors:`); `None`: no CORS headers.
    pub cors: Option<CorsSettings>,
    /// Bearer-token authentication of the orchestrated routes (`auth:`); `None`: open.
    pub auth: Option<AuthSettings>,
    /// Traces and metrics (`telemetry:`).
    pub telemetry: TelemetrySettings,
    /// How much nesting and how many operators a config may use (`limits:`).
    pub limits: Limits,
}

/// What a config may ask of the loader (`limits:` in `config.yaml`): the nesting and length
/// of one expression, and the nesting of `[` / `{` in a YAML file. They bound the recursion of
/// every later pass, so no config can overflow a thread's stack; raise them, up to
/// [`Limits::MAX`], only for a config that needs it. They apply to every file read after
/// `config.yaml` (which itself is read with the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// How deep parentheses, lists, calls and unary operators may nest in one expression
    /// (`expression_nesting`, default 32).
    pub expression_nesting: usize,
    /// How many operators one expression may have (`expression_operators`, default 256).
    pub expression_operators: usize,
    /// How deep flow collections (`[`, `{`) may nest in one YAML file (`yaml_nesting`,
    /// default 64); YAML parsers take time quadratic in it.
    pub yaml_nesting: usize,
}

impl Limits {
    /// The defaults.
    pub const DEFAULT: Self = Self {
        expression_nesting: crate::expr::MAX_NESTING,
        expression_operators: crate::expr::MAX_OPERATORS,
        yaml_nesting: crate::config::MAX_FLOW_NESTING,
    };

    /// The most a config may raise them to: still safe on a 2 MiB thread stack (and, for
    /// YAML, within the parser's own bound of 128 levels in all).
    pub const MAX: Self = Self {
        expression_nesting: 64,
        expression_operators: 1024,
        yaml_nesting: 100,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            endpoint_timeout: Duration::from_secs(30),
            source_timeout: Duration::from_secs(10),
            server: ServerSettings::default(),
            tracking: TrackingSettings::default(),
            cache: CacheSettings::default(),
            default_cache: None,
            default_retry: None,
            app: AppSettings::default(),
            logging: LoggingSettings::default(),
            compression: false,
            cors: None,
            auth: None,
            telemetry: TelemetrySettings::default(),
            limits: Limits::DEFAULT,
        }
    }
}

/// What the HTTP integrations expose about executions (`tracking:` in `config.yaml`). Debug
/// and admin views show traces (source names, timings, error texts): both are off unless
/// enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrackingSettings {
    /// Answer with `{"data": …, "trace": …}` when a request sends `x-debug-trace: 1`
    /// (`debug_view`, default false).
    pub debug_view: bool,
    /// Serve `GET <mount>/admin/executions`, the last executions with their traces (`admin`,
    /// default false).
    pub admin: bool,
    /// How many executions the admin route keeps (`recent`, default 100).
    pub recent: usize,
    /// Send a `Server-Timing` header with each source's duration (`server_timing`, default
    /// true). It tells every client the source names: turn it off where that matters.
    pub server_timing: bool,
}

impl Default for TrackingSettings {
    fn default() -> Self {
        Self {
            debug_view: false,
            admin: false,
            recent: 100,
            server_timing: true,
        }
    }
}

/// Where the bundled server listens (`server:` in `config.yaml`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerSettings {
    /// Host or IP address (`127.0.0.1`).
    pub host: String,
    /// TCP port (`8000`).
    pub port: u16,
    /// Largest accepted request body (`max_body_bytes`, default 1 MiB): larger ones get 413.
    pub max_body_bytes: u64,
    /// Tokio worker threads of the bundled server (`workers`); `None`: one per core.
    pub workers: Option<usize>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8000,
            max_body_bytes: 1 << 20,
            workers: None,
        }
    }
}

/// Where a plan item was declared. Provenance only: it never takes part in equality, so a plan
/// built by the macro equals the same plan loaded from YAML.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The file, relative to the config directory, or `None` for items built in code.
    pub file: Option<Arc<str>>,
}

impl Origin {
    /// An origin naming `file`.
    pub fn file(file: impl Into<Arc<str>>) -> Self {
        Self {
            file: Some(file.into()),
        }
    }
}

impl PartialEq for Origin {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The declared kind of an endpoint (`endpoint_type`), checked against its sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointType {
    /// Only `database` sources.
    Database,
    /// Only `api` sources.
    Api,
    /// Only `feast` sources.
    Feast,
    /// Only `ml` sources.
    Ml,
    /// Any mix of sources.
    Composite,
}

impl EndpointType {
    /// Every accepted spelling, for diagnostics.
    pub const NAMES: &'static [&'static str] = &["database", "api", "feast", "ml", "composite"];

    /// Parses the YAML spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "database" => Self::Database,
            "api" => Self::Api,
            "feast" => Self::Feast,
            "ml" => Self::Ml,
            "composite" => Self::Composite,
            _ => return None,
        })
    }

    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::Api => "api",
            Self::Feast => "feast",
            Self::Ml => "ml",
            Self::Composite => "composite",
        }
    }

    /// The source type an endpoint of this kind is limited to (`direct` sources are always
    /// allowed beside it), or `None` for `composite`.
    pub fn required_source_type(self) -> Option<&'static str> {
        match self {
            Self::Composite => None,
            other => Some(other.as_str()),
        }
    }
}

/// One endpoint: its sources, how they combine, and how it is routed.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Endpoint {
    /// Unique name (the key under `endpoints:`).
    pub name: String,
    /// The domain file it came from (`domains/<domain>.yaml`), used for default routes and for
    /// per-domain integration overrides.
    pub domain: Option<String>,
    /// Human description (OpenAPI summary).
    pub description: Option<String>,
    /// Labels (`tags:`): OpenAPI tags beside the domain, and what a host can select a subset
    /// mount by (`web::Select::tag`).
    pub tags: Vec<String>,
    /// Declared kind, checked against the sources.
    pub endpoint_type: Option<EndpointType>,
    /// Explicit methods (`method:`); empty means the defaults, `GET` and `POST`.
    pub methods: Vec<HttpMethod>,
    /// Explicit route (`path:`); `None` means the default routes.
    pub path: Option<RouteTemplate>,
    /// The endpoint's whole budget (`timeout:`); `None` means `defaults.timeout`.
    pub timeout: Option<Duration>,
    /// The data sources in declaration order.
    pub sources: Vec<SourceStep>,
    /// The source whose result is the response when `response_mapping` is null.
    pub primary_source: Option<String>,
    /// How the response is built; `None` (YAML `null` or absent) means the primary source's
    /// result.
    pub response_mapping: Option<Template>,
    /// Declared request inputs (`input:`), checked before any source runs.
    pub input: InputSchema,
    /// A JSON Schema of the response (`output:`), for the OpenAPI document.
    pub output: Option<serde_json::Value>,
    /// Executions at once, and how many may wait (`max_in_flight:`); `None`: unbounded.
    pub max_in_flight: Option<InFlightLimit>,
    /// Requests allowed per period (`rate_limit:`); `None`: unlimited.
    pub rate_limit: Option<RateLimit>,
    /// What a degraded answer (a source skipped, defaulted, fallen back or stale) becomes
    /// (`on_degraded:`).
    pub on_degraded: OnDegraded,
    /// Where it was declared.
    pub origin: Origin,
}

/// The inputs an endpoint declares (`input: {path, query, body}`). Undeclared inputs are not
/// checked; declared ones are checked and converted to their type before any source runs.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct InputSchema {
    /// Path captures (`input.path`), always required.
    pub path: Vec<InputField>,
    /// Query parameters (`input.query`).
    pub query: Vec<InputField>,
    /// Fields of the JSON body (`input.body`).
    pub body: Vec<InputField>,
}

impl InputSchema {
    /// Whether nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.path.is_empty() && self.query.is_empty() && self.body.is_empty()
    }
}

/// One declared input: `name: type` or `name: {type, required, description}`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct InputField {
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: InputType,
    /// Whether it must be present (default true).
    pub required: bool,
    /// For the OpenAPI document.
    pub description: Option<String>,
}

impl Default for InputField {
    /// A required `string` input with no name yet.
    fn default() -> Self {
        Self {
            name: String::new(),
            ty: InputType::default(),
            required: true,
            description: None,
        }
    }
}

/// The type of a declared input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputType {
    /// Any text.
    #[default]
    String,
    /// A whole number (path and query text is parsed).
    Integer,
    /// Any number (path and query text is parsed).
    Number,
    /// `true` or `false` (path and query text is parsed).
    Boolean,
    /// A JSON object (body fields only).
    Object,
    /// A JSON array, or a repeated query parameter.
    Array,
}

impl InputType {
    /// Accepted spellings.
    pub const NAMES: &'static [&'static str] =
        &["string", "integer", "number", "boolean", "object", "array"];

    /// Parses the YAML spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => Self::String,
            "integer" => Self::Integer,
            "number" => Self::Number,
            "boolean" => Self::Boolean,
            "object" => Self::Object,
            "array" => Self::Array,
            _ => return None,
        })
    }

    /// The YAML (and JSON Schema) spelling.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

impl Endpoint {
    /// The source named `name`.
    pub fn source(&self, name: &str) -> Option<&SourceStep> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// The HTTP routes this endpoint answers, relative to where the plans are mounted.
    ///
    /// With an explicit `path`, that path with the explicit methods (`GET` by default). Otherwise
    /// `GET|POST /<domain>/<name>` and `GET|POST /<domain>/<name>/{id}`, where `{id}` is named
    /// after the one request input the endpoint reads (`$request.customer_id` gives
    /// `{customer_id}`), or `entity_id` when it reads none or several. On default routes the HTTP
    /// integrations expose the captured segment under both that name and `entity_id`.
    pub fn routes(&self) -> Vec<Route> {
        route::routes_of(self)
    }

    /// For each source (by index), the indices of the sources it waits for: those its params,
    /// condition and transform steps read, and its `depends_on`.
    pub fn dependencies(&self) -> Vec<Vec<usize>> {
        crate::validate::dependencies(self)
    }
}

/// One data source of an endpoint (an item of `data_sources:`).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct SourceStep {
    /// Name, unique in the endpoint; `$name` refers to its result.
    pub name: String,
    /// Source type: `database`, `api`, `feast`, `ml`, `direct` or a host-registered type.
    pub kind: String,
    /// The named operation (or model, for `ml`) of that type's integration config.
    pub operation: Option<String>,
    /// Which integration entry defines the operation, when several do.
    pub source_id: Option<String>,
    /// Parameters, evaluated against the request and earlier sources.
    pub params: Fields,
    /// When present, the source runs only if this evaluates truthy; otherwise it is skipped and
    /// its result is null.
    pub condition: Option<Expr>,
    /// Extra ordering edges beyond those implied by references.
    pub depends_on: Vec<String>,
    /// Per-attempt timeout; `None` means `defaults.source_timeout`. Always capped by what is left
    /// of the endpoint's budget.
    pub timeout: Option<Duration>,
    /// Retry policy for transient failures; `None` means a single attempt.
    pub retry: Option<RetryPolicy>,
    /// What a failure does to the execution.
    pub on_error: OnError,
    /// What a failure (after the retries) falls back to, before `on_error` applies.
    pub fallback: Option<Fallback>,
    /// Steps applied to the result before later sources and the mapping see it.
    pub transform: Vec<Transform>,
    /// Caching of the source's answers (`cache:`); `None` means its integration service's
    /// `cache:`, if any, or `performance.cache_enabled`.
    pub cache: Option<CachePolicy>,
    /// `cache: off`: never cached, whatever the service or the global default say.
    pub no_cache: bool,
    /// The whole params as one expression whose value is an object (`params: "$request.body"`,
    /// `params: "$request"`), instead of a mapping of params. A value that is not an object
    /// gives no params.
    pub params_from: Option<Expr>,
    /// The endpoint answers 404 when this source finds nothing (`required: true`): a null
    /// result, no row, an empty object, or skipped by its condition.
    pub required: bool,
    /// What an upstream's `404 Not Found` means (`on_not_found`): by default a failure like
    /// any other status.
    pub on_not_found: OnNotFound,
    /// `for_each:`: the source runs once per element of a list, and its result is the list of
    /// the per-element results, in order.
    pub for_each: Option<ForEach>,
}

/// A data source run once per element of a list (`for_each: "$orders[*]"`, with
/// `concurrency:`).
///
/// Each element is `$item` (and its position `$index`) in the source's `params` and
/// `condition`; the result is the list of per-element results in input order, null for an
/// element whose condition is false. Elements whose params are identical are fetched once.
/// A per-element failure follows `on_error` for that element: `fail` fails the request,
/// `skip` leaves its place null, `default` puts the default there. A null list is an empty
/// one.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ForEach {
    /// The list.
    pub items: Expr,
    /// How many calls may be in flight at once (`concurrency:`).
    pub concurrency: usize,
    /// `batch: {size}`: up to this many elements share one call, for source types that take
    /// many keys at once (`feast`: several entities; `ml`: several rows of one tensor;
    /// `database`: an operation with `batch: {param, key}`, an `IN` list; `api`: an operation
    /// with `batch: {param, match}`); the answer is split back per element, in order.
    pub batch: Option<usize>,
}

impl ForEach {
    /// Calls in flight at once unless `concurrency:` says otherwise: enough to hide an
    /// upstream's latency, few enough not to flood it from one request.
    pub const DEFAULT_CONCURRENCY: usize = 16;
    /// Up to this many elements, the execution trace notes each element that failed; above
    /// it, only the counts.
    pub const ITEM_NOTES_UP_TO: usize = 10;

    /// One call per element of `items`, [`ForEach::DEFAULT_CONCURRENCY`] at once.
    pub fn new(items: Expr) -> Self {
        Self {
            items,
            concurrency: Self::DEFAULT_CONCURRENCY,
            batch: None,
        }
    }

    /// At most `n` calls in flight.
    #[must_use]
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Up to `size` elements per call.
    #[must_use]
    pub fn with_batch(mut self, size: usize) -> Self {
        self.batch = Some(size);
        self
    }

    /// The source types whose calls take many elements at once.
    pub const BATCHING_TYPES: &'static [&'static str] = &["api", "database", "feast", "ml"];
}

impl Default for ForEach {
    /// Over no elements (for building a plan field by field).
    fn default() -> Self {
        Self::new(Expr::Literal(serde_json::Value::Null))
    }
}

/// What an upstream's `404 Not Found` means for a data source (`on_not_found:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnNotFound {
    /// A failure like any other status (`fail`, the default): `on_error` applies, else 502.
    #[default]
    Fail,
    /// Nothing found (`empty`): the result is null, and `required: true` answers 404.
    Empty,
    /// The endpoint answers 404 `no-result` naming the source (`404`), as the upstream did.
    Respond,
}

impl OnNotFound {
    /// Accepted spellings (`404` may be written as a number).
    pub const NAMES: &'static [&'static str] = &["fail", "empty", "404"];

    /// Parses the YAML spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "fail" => Self::Fail,
            "empty" => Self::Empty,
            "404" => Self::Respond,
            _ => return None,
        })
    }
}

/// Retries with exponential backoff and full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub max_retries: u32,
    /// Backoff before the first retry; doubles each time.
    pub backoff: Duration,
    /// Upper bound of one backoff.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// No retries.
    fn default() -> Self {
        Self::new(0)
    }
}

impl RetryPolicy {
    /// Default first backoff (100 ms).
    pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(100);
    /// Default backoff cap (2 s).
    pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(2);

    /// `max_retries` retries with the default backoff.
    pub fn new(max_retries: u32) -> Self {
        Self {
            max_retries,
            backoff: Self::DEFAULT_BACKOFF,
            max_backoff: Self::DEFAULT_MAX_BACKOFF,
        }
    }

    /// The upper bound of the wait before retry number `retry` (1-based): `backoff * 2^(retry-1)`,
    /// capped at `max_backoff`. The engine waits a uniformly random time between half of this
    /// bound and all of it.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// What a source failure does (`on_error:`).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub enum OnError {
    /// The execution fails, naming the source (the default).
    #[default]
    Fail,
    /// The source's result is null; the failure is recorded in the trace.
    Skip,
    /// The source's result is this value; the failure is recorded in the trace.
    Default(Value),
}

/// What a failed source falls back to (`fallback:`), tried after its retries and before its
/// `on_error` policy; the trace records the source's own error and the outcome `fallback`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Fallback {
    /// Another source, called with the step's params (`fallback: {type, operation,
    /// source_id}`): a database copy of a feature store, a second model server. It has the
    /// step's timeout and no retries.
    Source {
        /// Its source type.
        kind: String,
        /// Its operation (or model).
        operation: Option<String>,
        /// Which integration entry defines the operation, when several do.
        source_id: Option<String>,
    },
    /// A literal result (`fallback: {value: …}`).
    Value(Value),
}

/// One `transform:` step, applied to a source's result. Record steps (`select`, `rename`,
/// `defaults`, `compute`) apply to the result when it is an object and to each element when it is
/// an array.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Transform {
    /// Keep only these fields.
    Select(Vec<String>),
    /// Rename fields (`old: new`).
    Rename(Vec<(String, String)>),
    /// Fill missing or null fields with these values.
    Defaults(Vec<(String, Value)>),
    /// Add or replace fields with computed values; `$item` is the record.
    Compute(Vec<(String, Template)>),
    /// Keep the array elements for which the expression is truthy; `$item` is the element.
    Filter(Expr),
    /// Replace each array element (or the object itself) by the template; `$item` is the element.
    Map(Template),
    /// Flatten an array of arrays by one level.
    Flatten,
    /// Order a list by an expression of `$item` (`sort: "$item.amount"`, or `sort: {by,
    /// order: desc}`): numbers by value, strings by text, nulls (and values of another type)
    /// last; stable.
    Sort {
        /// What each element is ordered by.
        by: Expr,
        /// Largest first.
        descending: bool,
    },
    /// Keep the first `n` elements of a list (`limit: 10`).
    Limit(usize),
    /// A list into an object of lists (`group_by: "$item.status"`): one key per distinct
    /// value of the expression (its text; `null` for null), in the order first seen.
    GroupBy(Expr),
    /// Each element of a list gets the first element of another list whose `right` field
    /// equals its `left` field, under `into`, or null (`join: {with: "$products", on:
    /// product_id, as: product}`; `on: {left, right}` when the names differ).
    Join {
        /// The other list.
        with: Expr,
        /// The field of this list's elements.
        left: String,
        /// The field of the other list's elements.
        right: String,
        /// Where the match goes.
        into: String,
    },
}

impl Transform {
    /// The YAML key of each step kind.
    pub const KEYS: &'static [&'static str] = &[
        "select", "rename", "defaults", "compute", "filter", "map", "flatten", "sort", "limit",
        "group_by", "join",
    ];

    /// The YAML key of this step.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Select(_) => "select",
            Self::Rename(_) => "rename",
            Self::Defaults(_) => "defaults",
            Self::Compute(_) => "compute",
            Self::Filter(_) => "filter",
            Self::Map(_) => "map",
            Self::Flatten => "flatten",
            Self::Sort { .. } => "sort",
            Self::Limit(_) => "limit",
            Self::GroupBy(_) => "group_by",
            Self::Join { .. } => "join",
        }
    }
}

/// Names that cannot be used for sources because expressions reserve them.
pub const RESERVED_SOURCE_NAMES: &[&str] = &["request", "item", "index", "system"];

/// Sorted map used for named integration entries.
pub type NamedMap<T> = BTreeMap<String, T>;
