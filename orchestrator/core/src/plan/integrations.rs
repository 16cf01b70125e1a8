//! Integration definitions: database connections and named SQL operations, external APIs, Feast
//! feature servers and model servers. Each source type's operations live here, keyed by name.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::{CachePolicy, CircuitBreaker, NamedMap, Origin, RetryPolicy, Secret};

/// All integration definitions visible to one set of endpoints.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Integrations {
    /// `database.yaml`.
    pub database: DatabaseConfig,
    /// `integrations/api_sources.yaml`.
    pub api: ApiConfig,
    /// `integrations/feast_config.yaml`.
    pub feast: FeastConfig,
    /// `integrations/ml_config.yaml`.
    pub ml: MlConfig,
    /// `integrations/<kind>.yaml` of each host source type that declared its file
    /// (`config::IntegrationFile`): `<kind>.sources.<id>` by kind, then by id, each entry's
    /// keys checked and `${env:…}` resolved.
    pub host: BTreeMap<String, BTreeMap<String, Value>>,
}

impl Integrations {
    /// The settings a host source type's step reads from its integration file: the entry
    /// `source_id` names, or, without one, the file's only entry.
    pub fn host_settings(&self, kind: &str, source_id: Option<&str>) -> Option<&Value> {
        let entries = self.host.get(kind)?;
        match source_id {
            Some(id) => entries.get(id),
            None if entries.len() == 1 => entries.values().next(),
            None => None,
        }
    }

    /// The operation names a source type offers, with the integration entry (`source_id`) that
    /// defines each. `None` for types without named operations (`direct`, host types).
    pub fn operations_of(&self, kind: &str) -> Option<Vec<(&str, Option<&str>)>> {
        Some(match kind {
            "database" => self
                .database
                .operations
                .iter()
                .map(|(name, op)| (name.as_str(), op.source_id.as_deref()))
                .collect(),
            "api" => nested(&self.api.sources, |s| &s.operations),
            "feast" => nested(&self.feast.sources, |s| &s.operations),
            "ml" => nested(&self.ml.sources, |s| &s.models),
            _ => return None,
        })
    }

    /// The HTTP integration service (API service, feature server or model server) a step of
    /// type `kind` calls for `operation`: the entry named `source_id`, or else the first that
    /// defines the operation. `None` for other types, or when nothing defines it.
    pub fn service_of(
        &self,
        kind: &str,
        operation: Option<&str>,
        source_id: Option<&str>,
    ) -> Option<Service<'_>> {
        fn find<'a, S>(
            sources: &'a NamedMap<S>,
            source_id: Option<&str>,
            has: impl Fn(&S) -> bool,
        ) -> Option<(&'a str, &'a S)> {
            match source_id {
                Some(id) => sources.get_key_value(id),
                None => sources.iter().find(|(_, s)| has(s)),
            }
            .map(|(id, s)| (id.as_str(), s))
        }
        let op = operation?;
        let (id, entry) = match kind {
            "api" => find(&self.api.sources, source_id, |s| {
                s.operations.contains_key(op)
            })
            .map(|(id, s)| (id, ServiceEntry::Api(s)))?,
            "feast" => find(&self.feast.sources, source_id, |s| {
                s.operations.contains_key(op)
            })
            .map(|(id, s)| (id, ServiceEntry::Feast(s)))?,
            "ml" => find(&self.ml.sources, source_id, |s| s.models.contains_key(op))
                .map(|(id, s)| (id, ServiceEntry::Ml(s)))?,
            _ => return None,
        };
        Some(Service { id, entry })
    }

    /// How the `database` or `api` operation a step of type `kind` calls takes many keys in
    /// one call (its `batch:`): `None` when nothing defines the operation (or `kind` has no
    /// such operations), `Some(None)` when the operation takes one key at a time.
    pub fn keyed_batch(
        &self,
        kind: &str,
        operation: Option<&str>,
        source_id: Option<&str>,
    ) -> Option<Option<KeyedBatch<'_>>> {
        let op = operation?;
        Some(match kind {
            "database" => self
                .database
                .operations
                .get(op)?
                .batch
                .as_ref()
                .map(|b| KeyedBatch {
                    param: &b.param,
                    max_size: None,
                }),
            "api" => {
                let svc = self.service_of(kind, Some(op), source_id)?;
                let o = self.api.sources.get(svc.id)?.operations.get(op)?;
                o.batch.as_ref().map(|b| KeyedBatch {
                    param: &b.param,
                    max_size: b.max_size,
                })
            }
            _ => return None,
        })
    }

    /// What a data source inherits from its integration: the per-call timeout and the retry
    /// policy of the API service, feature server or model server it calls (an API
    /// operation's own `retries` first; a service's `retries` only for idempotent methods).
    pub fn step_defaults(
        &self,
        kind: &str,
        operation: Option<&str>,
        source_id: Option<&str>,
    ) -> (Option<Duration>, Option<RetryPolicy>) {
        if kind == "database" {
            let op = operation.and_then(|o| self.database.operations.get(o));
            return (op.and_then(|o| o.timeout).or(self.database.timeout), None);
        }
        let (Some(service), Some(op)) = (self.service_of(kind, operation, source_id), operation)
        else {
            return (None, None);
        };
        let http = service.http();
        match service.entry {
            ServiceEntry::Api(svc) => svc.operations.get(op).map_or((None, None), |o| {
                let retry = o
                    .retries
                    .or_else(|| o.is_idempotent().then_some(http.retries).flatten());
                (http.timeout, retry)
            }),
            // With a database fallback the server's timeout bounds only the server call, so
            // the fallback still has time within the data source's own timeout.
            ServiceEntry::Feast(s) => {
                let fallback = s
                    .operations
                    .get(op)
                    .is_some_and(|o| o.database_fallback.is_some());
                ((!fallback).then_some(http.timeout).flatten(), http.retries)
            }
            ServiceEntry::Ml(s) => (
                s.models.get(op).and_then(|m| m.timeout).or(http.timeout),
                http.retries,
            ),
        }
    }

    /// The integration entries (`source_id` values) a source type defines.
    pub fn source_ids_of(&self, kind: &str) -> Vec<&str> {
        match kind {
            "database" => self.database.sources.keys().map(String::as_str).collect(),
            "api" => self.api.sources.keys().map(String::as_str).collect(),
            "feast" => self.feast.sources.keys().map(String::as_str).collect(),
            "ml" => self.ml.sources.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

/// An HTTP integration service a step calls ([`Integrations::service_of`]).
#[derive(Debug, Clone, Copy)]
pub struct Service<'a> {
    /// Its name (`source_id`).
    pub id: &'a str,
    /// Its definition.
    pub entry: ServiceEntry<'a>,
}

impl<'a> Service<'a> {
    /// Its timeout, headers, retries and policies.
    pub fn http(&self) -> &'a HttpSettings {
        match self.entry {
            ServiceEntry::Api(s) => &s.http,
            ServiceEntry::Feast(s) => &s.http,
            ServiceEntry::Ml(s) => &s.http,
        }
    }
}

/// The definition of a [`Service`], by integration file.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum ServiceEntry<'a> {
    /// `api.sources.<id>`.
    Api(&'a ApiService),
    /// `feast.sources.<id>`.
    Feast(&'a FeastServer),
    /// `ml.sources.<id>`.
    Ml(&'a ModelServer),
}

fn nested<'a, S, T: 'a>(
    sources: &'a NamedMap<S>,
    ops: impl Fn(&'a S) -> &'a NamedMap<T>,
) -> Vec<(&'a str, Option<&'a str>)> {
    sources
        .iter()
        .flat_map(|(id, s)| {
            ops(s)
                .keys()
                .map(move |op| (op.as_str(), Some(id.as_str())))
        })
        .collect()
}

/// The global integrations plus the per-domain sets of domains that override a file.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct ScopedIntegrations {
    /// From the top-level `database.yaml` and `integrations/`.
    pub global: Integrations,
    /// For each domain with its own `domains/<d>/database.yaml` or `domains/<d>/integrations/*`:
    /// the global set with those files replaced by the domain's.
    pub domains: BTreeMap<String, Integrations>,
}

impl ScopedIntegrations {
    /// The set that applies to `domain`.
    pub fn for_domain(&self, domain: Option<&str>) -> &Integrations {
        domain
            .and_then(|d| self.domains.get(d))
            .unwrap_or(&self.global)
    }

    /// Every set with its domain (`None` for the global one).
    pub fn iter(&self) -> impl Iterator<Item = (Option<&str>, &Integrations)> {
        std::iter::once((None, &self.global))
            .chain(self.domains.iter().map(|(d, i)| (Some(d.as_str()), i)))
    }
}

// ---------------------------------------------------------------- database

/// `database.yaml`: connections and named SQL operations.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct DatabaseConfig {
    /// `database.sources.<id>`.
    pub sources: NamedMap<DbConnection>,
    /// `database.operations.<name>`.
    pub operations: NamedMap<DbOperation>,
    /// Timeout of every operation that sets none (`database.defaults.timeout`).
    pub timeout: Option<Duration>,
}

/// One database connection (`database.sources.<id>`).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct DbConnection {
    /// sqlx URL, translated from SQLAlchemy style where needed (`sqlite:///x.db` becomes
    /// `sqlite://x.db` resolved against the config directory, `postgresql+psycopg2://` becomes
    /// `postgres://`, `mysql+pymysql://` becomes `mysql://`).
    pub url: Secret,
    /// Maximum pool size (`pool_size`).
    pub pool_size: Option<u32>,
    /// How long to wait for a pooled connection (`acquire_timeout`).
    pub acquire_timeout: Option<Duration>,
    /// Server-side statement timeout where the driver has one (`statement_timeout`):
    /// PostgreSQL's `statement_timeout`, MariaDB's `max_statement_time`, MySQL's
    /// `max_execution_time`. SQLite has none; the source's `timeout` still applies.
    pub statement_timeout: Option<Duration>,
    /// Record bound parameter values in the query's tracing span (`log_parameters`, default
    /// false: values may be personal data).
    pub log_parameters: bool,
    /// Connections are closed and replaced after this long (`max_lifetime`, or the original's
    /// `pool_recycle` in seconds); `None`: kept until they fail.
    pub max_lifetime: Option<Duration>,
    /// Where it was declared.
    pub origin: Origin,
}

impl DbConnection {
    /// Which driver the URL names (`None` for a scheme no driver handles).
    pub fn driver(&self) -> Option<SqlDriver> {
        SqlDriver::of_url(self.url.expose())
    }
}

/// The database a connection URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlDriver {
    /// `sqlite:`
    Sqlite,
    /// `postgres:`
    Postgres,
    /// `mysql:` (MySQL and MariaDB)
    MySql,
}

impl SqlDriver {
    /// The driver of a (translated) sqlx URL.
    pub fn of_url(url: &str) -> Option<Self> {
        let scheme = url.split(':').next()?;
        Some(match scheme {
            "sqlite" => Self::Sqlite,
            "postgres" | "postgresql" => Self::Postgres,
            "mysql" | "mariadb" => Self::MySql,
            _ => return None,
        })
    }

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
            Self::MySql => "MySQL/MariaDB",
        }
    }
}

/// One named SQL operation (`database.operations.<name>`).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct DbOperation {
    /// SQL with `:name` placeholders, always bound, never spliced.
    pub query: String,
    /// Declared parameters (`params`: a list of names, or a mapping of names to types).
    pub params: Vec<DbParam>,
    /// Shape of the result (`return_type`, default `single`).
    pub return_type: ReturnType,
    /// Per-column conversions applied to each row (`columns`: name → type), for what the
    /// database cannot say itself (JSON stored as text, integers used as booleans).
    pub columns: BTreeMap<String, SqlType>,
    /// Which connection (`source_id`); the only one when omitted.
    pub source_id: Option<String>,
    /// Timeout of a call (`timeout`), unless the data source sets its own.
    pub timeout: Option<Duration>,
    /// The most rows a call may return (`max_rows`, default
    /// [`DbOperation::DEFAULT_MAX_ROWS`]); more fail the call, before they are all read.
    pub max_rows: Option<usize>,
    /// How a `for_each` source with `batch:` runs it for many elements at once (`batch:
    /// {param, key}`).
    pub batch: Option<SqlBatch>,
    /// Where it was declared.
    pub origin: Origin,
}

/// How an operation takes many keys in one call: [`Integrations::keyed_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyedBatch<'a> {
    /// The list parameter the keys go into (`batch.param`).
    pub param: &'a str,
    /// The most keys one call takes: an API operation's `batch.size`.
    pub max_size: Option<usize>,
}

/// A SQL operation that takes many keys in one call (`batch: {param, key}`): `param` is the
/// placeholder of an `IN (:param)` list, `key` the result column each row is matched back
/// to its element by.
///
/// Called for one element, `:param` is one value (`IN (?)`). Called for a batch, it expands
/// into one bound placeholder per element, the rows are grouped by `key`, and each element
/// gets what a call of its own would return (`single`: its row or null; `list`: its rows;
/// `value`: its row's first column).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SqlBatch {
    /// The list parameter.
    pub param: String,
    /// The column matched against each element's value.
    pub key: String,
}

impl SqlBatch {
    /// `IN (:param)`, matched back by `key`.
    pub fn new(param: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            param: param.into(),
            key: key.into(),
        }
    }
}

impl DbOperation {
    /// The row cap of an operation that sets no `max_rows`: an answer is one JSON document
    /// held in memory, and a query that returns a table by mistake must not take the process
    /// down with it.
    pub const DEFAULT_MAX_ROWS: usize = 10_000;
}

/// A declared SQL operation parameter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DbParam {
    /// The name used as `:name` in the query and as the step's param key.
    pub name: String,
    /// How the value is bound. `None` binds the JSON value as it is: numbers as numbers,
    /// strings (every path and query param) as text.
    pub ty: Option<SqlType>,
}

impl DbParam {
    /// An untyped parameter.
    pub fn untyped(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ty: None,
        }
    }
}

/// A value type for SQL parameters and column conversions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SqlType {
    /// Text (`string`).
    #[default]
    String,
    /// A 64-bit signed integer (`integer`); strings such as path params are parsed.
    Integer,
    /// A 64-bit float (`number`); decimal strings are parsed.
    Number,
    /// A boolean (`boolean`); `true`/`false`, `1`/`0` and numbers are accepted.
    Boolean,
    /// A JSON document (`json`): bound as JSON, or parsed from text in a column.
    Json,
}

impl SqlType {
    /// Accepted spellings.
    pub const NAMES: &'static [&'static str] = &["string", "integer", "number", "boolean", "json"];

    /// Parses the YAML spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => Self::String,
            "integer" => Self::Integer,
            "number" => Self::Number,
            "boolean" => Self::Boolean,
            "json" => Self::Json,
            _ => return None,
        })
    }

    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Json => "json",
        }
    }
}

/// Shape of a SQL operation's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReturnType {
    /// The first row as an object, or null when there is none (the default: lookups read
    /// naturally as `$profile.name`).
    #[default]
    Single,
    /// Every row, as an array of objects.
    List,
    /// The first column of the first row, or null.
    Value,
}

impl ReturnType {
    /// Accepted spellings.
    pub const NAMES: &'static [&'static str] = &["single", "list", "value"];

    /// Parses the YAML spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "single" => Self::Single,
            "list" => Self::List,
            "value" => Self::Value,
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------- api

/// HTTP methods an endpoint route or API operation may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum HttpMethod {
    /// GET
    #[default]
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

impl HttpMethod {
    /// Accepted spellings (case-insensitive in config).
    pub const NAMES: &'static [&'static str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

    /// Parses a method name, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        // Runs per request: compared in place, no upper-cased copy.
        [Self::Get, Self::Post, Self::Put, Self::Patch, Self::Delete]
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }

    /// Upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }
}

impl std::fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Settings every HTTP integration (API service, feature server, model server) shares.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct HttpSettings {
    /// Per-call timeout (`timeout`); the data source's own `timeout` wins, the endpoint's
    /// `defaults.source_timeout` applies when neither is set.
    pub timeout: Option<Duration>,
    /// Headers sent with every call (`headers`).
    pub headers: BTreeMap<String, Secret>,
    /// Retries for transient failures (`retries`) of the calls that may be repeated: every
    /// feature lookup and inference, and API operations with `GET`, `PUT` or `DELETE`. The data
    /// source's or the operation's own `retries` wins.
    pub retries: Option<RetryPolicy>,
    /// Largest accepted response body (`max_response_bytes`, default 8 MiB).
    pub max_response_bytes: Option<u64>,
    /// Caching of every call to the service (`cache:`); a data source's own `cache:` wins.
    pub cache: Option<CachePolicy>,
    /// A circuit breaker shared by every call to the service (`circuit_breaker:`).
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Calls to the service in flight at once, across endpoints (`max_concurrent`); a call
    /// past it fails at once as `unavailable` (a bulkhead).
    pub max_concurrent: Option<usize>,
    /// Headers of the incoming request relayed with every call (`forward_headers`, names
    /// lower-case): the caller's `authorization` or `cookie` (kept out of `$request.headers`,
    /// never logged or traced) or any other header it sent.
    pub forward_headers: Vec<String>,
}

impl HttpSettings {
    /// The response size limit when none is configured.
    pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 8 << 20;
}

/// `integrations/api_sources.yaml`.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct ApiConfig {
    /// `api.sources.<id>`.
    pub sources: NamedMap<ApiService>,
}

/// One external HTTP service (`api.sources.<id>`).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct ApiService {
    /// Base URL that operation paths are appended to.
    pub base_url: Secret,
    /// Timeout, headers, retries, response size limit.
    pub http: HttpSettings,
    /// Authentication.
    pub auth: Option<ApiAuth>,
    /// `api.sources.<id>.operations.<name>`.
    pub operations: NamedMap<ApiOperation>,
    /// The OpenAPI document the service publishes (`openapi:`, a URL or a file relative to the
    /// config directory), read when recording the schema snapshot.
    pub openapi: Option<String>,
    /// Where it was declared.
    pub origin: Origin,
}

/// Authentication for an external API (`auth:`); secrets come from `${env:NAME}` references.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ApiAuth {
    /// `{type: bearer, token}`: `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: Secret,
    },
    /// `{type: api_key, header | query, key}`: the key in a header or a query parameter.
    ApiKey {
        /// Header name, when sent as a header.
        header: Option<String>,
        /// Query parameter name, when sent in the query.
        query: Option<String>,
        /// The key.
        key: Secret,
    },
    /// `{type: basic, username, password}`.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Option<Secret>,
    },
}

/// One operation of an external API.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct ApiOperation {
    /// HTTP method (`GET` by default).
    pub method: HttpMethod,
    /// Path template appended to the base URL; `{name}` segments are filled from params.
    pub path: String,
    /// Query parameters; string values may hold `{name}` placeholders.
    pub query: BTreeMap<String, Value>,
    /// Extra headers; values may hold `{name}` placeholders.
    pub headers: BTreeMap<String, Value>,
    /// JSON body template; `None` sends no body.
    pub body: Option<Value>,
    /// A JSON pointer (RFC 6901, `/data/score`) to the part of the response to return.
    pub extract: Option<String>,
    /// Retries for this operation, whatever its method (`retries`).
    pub retries: Option<RetryPolicy>,
    /// Params to call it with when recording the schema snapshot (`sample:`): the answer's
    /// shape is recorded when the service publishes no OpenAPI document.
    pub sample: Option<BTreeMap<String, Value>>,
    /// How it takes many keys in one call (`batch: {param, match, size}`), for a `for_each`
    /// source with `batch:`.
    pub batch: Option<ApiBatch>,
    /// Where it was declared.
    pub origin: Origin,
}

/// An API operation that takes many keys in one call (`batch: {param, match, size}`).
///
/// `param` is the placeholder the keys go into: a whole query value is repeated once per key
/// (`?id=1&id=2`), a placeholder inside longer text (a query value, a header) gets the keys
/// joined by commas (`ids=1,2`), and a body string that is exactly `"{param}"` becomes the
/// JSON array of the keys. It cannot be in the path.
///
/// The answer (after `extract`) must be a list. With `match`, each element gets the first item
/// whose field `match` equals its key (as text: `"7"` matches `7`), or null when none does, so
/// the service may answer in any order and leave out keys it does not know; without it, the
/// list must have one item per key, in the keys' order. Called with one key rather than a
/// list, the operation answers with that key's item alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ApiBatch {
    /// The placeholder the keys go into.
    pub param: String,
    /// The field of each answer item that holds its key (`match`); `None` matches by
    /// position.
    pub matched_by: Option<String>,
    /// The most keys the service takes in one call (`size`); a source's larger `batch: {size}`
    /// is split to fit.
    pub max_size: Option<usize>,
}

impl ApiBatch {
    /// Keys in `param`, answers matched back by position.
    pub fn new(param: impl Into<String>) -> Self {
        Self {
            param: param.into(),
            matched_by: None,
            max_size: None,
        }
    }

    /// Answers matched back by their field `field`.
    #[must_use]
    pub fn matched_by(mut self, field: impl Into<String>) -> Self {
        self.matched_by = Some(field.into());
        self
    }

    /// At most `n` keys per call.
    #[must_use]
    pub fn with_max_size(mut self, n: usize) -> Self {
        self.max_size = Some(n);
        self
    }
}

impl ApiOperation {
    /// The `{name}` placeholders of the path, query values, header values and body strings,
    /// sorted and without duplicates: the params a data source must pass.
    pub fn placeholders(&self) -> std::collections::BTreeSet<&str> {
        fn walk<'a>(v: &'a Value, out: &mut std::collections::BTreeSet<&'a str>) {
            match v {
                Value::String(s) => out.extend(placeholders(s).map(|(name, _)| name)),
                Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
                Value::Object(map) => map.values().for_each(|i| walk(i, out)),
                _ => {}
            }
        }
        let mut out: std::collections::BTreeSet<&str> =
            placeholders(&self.path).map(|(name, _)| name).collect();
        for v in self.query.values().chain(self.headers.values()) {
            walk(v, &mut out);
        }
        if let Some(body) = &self.body {
            walk(body, &mut out);
        }
        out
    }

    /// Whether repeating the call is harmless by HTTP semantics (`GET`, `PUT`, `DELETE`).
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self.method,
            HttpMethod::Get | HttpMethod::Put | HttpMethod::Delete
        )
    }
}

/// The `{name}` placeholders in a template string, with the byte range of each (braces
/// included). A name is an identifier; other braces are text.
pub fn placeholders(s: &str) -> impl Iterator<Item = (&str, std::ops::Range<usize>)> {
    let mut from = 0;
    std::iter::from_fn(move || {
        loop {
            let open = from + s[from..].find('{')?;
            let close = open + s[open..].find('}')?;
            let name = &s[open + 1..close];
            from = open + 1;
            let ident = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if ident {
                from = close + 1;
                return Some((name, open..close + 1));
            }
        }
    })
}

// ---------------------------------------------------------------- feast

/// `integrations/feast_config.yaml`.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct FeastConfig {
    /// `feast.sources.<id>`.
    pub sources: NamedMap<FeastServer>,
}

/// One Feast feature server (`feast.sources.<id>`).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct FeastServer {
    /// Feature server URL (`url`, or `base_url` like the other integration files).
    pub url: Secret,
    /// Timeout, headers, retries, response size limit.
    pub http: HttpSettings,
    /// `feast.sources.<id>.operations.<name>`.
    pub operations: NamedMap<FeastOperation>,
    /// Where it was declared.
    pub origin: Origin,
}

/// One feature lookup (`feast.sources.<id>.operations.<name>`).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct FeastOperation {
    /// Features as `view:feature` (exclusive with `feature_service`).
    pub features: Vec<String>,
    /// A feature service name (exclusive with `features`).
    pub feature_service: Option<String>,
    /// Join keys whose values come from the data source's params (`entity_key`, one name or a
    /// list).
    pub entity_keys: Vec<String>,
    /// Ask for `view__feature` names (`full_feature_names`, default false).
    pub full_feature_names: bool,
    /// What a feature the server reports as `NOT_FOUND` or `OUTSIDE_MAX_AGE` becomes
    /// (`on_missing`, default `null`).
    pub on_missing: OnMissing,
    /// Database lookup used when the feature server fails.
    pub database_fallback: Option<FeatureFallback>,
    /// Entity keys to look up when recording the schema snapshot (`sample:`): the features'
    /// value types are read off the answer.
    pub sample: Option<BTreeMap<String, Value>>,
    /// Where it was declared.
    pub origin: Origin,
}

/// What a missing feature value becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnMissing {
    /// `null` in the result; the status is noted in the trace (the default).
    #[default]
    Null,
    /// The source fails (`invalid_response`).
    Error,
}

impl OnMissing {
    /// Accepted spellings.
    pub const NAMES: &'static [&'static str] = &["null", "error"];

    /// Parses the YAML spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "null" => Self::Null,
            "error" => Self::Error,
            _ => return None,
        })
    }
}

/// A database fallback for a feature lookup (`database_fallback:`).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct FeatureFallback {
    /// Table to read.
    pub table: String,
    /// Column holding the entity key.
    pub entity_key: String,
    /// Feature name → column.
    pub mapping: BTreeMap<String, String>,
    /// Which database connection (`source_id`).
    pub source_id: Option<String>,
}

// ---------------------------------------------------------------- ml

/// `integrations/ml_config.yaml`.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct MlConfig {
    /// `ml.sources.<id>`.
    pub sources: NamedMap<ModelServer>,
}

/// One model server (`ml.sources.<id>`).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct ModelServer {
    /// Base URL.
    pub base_url: Secret,
    /// Timeout, headers, retries, response size limit.
    pub http: HttpSettings,
    /// `ml.sources.<id>.models.<name>`.
    pub models: NamedMap<Model>,
    /// Where it was declared.
    pub origin: Origin,
}

/// Wire protocol of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelProtocol {
    /// Open Inference Protocol V2 (KServe, Triton, MLServer).
    V2,
    /// TensorFlow Serving REST `:predict`.
    TfServing,
    /// MLflow `/invocations`.
    Mlflow,
    /// Plain JSON POST of the resolved params (the original service's behaviour; the default).
    #[default]
    Json,
}

impl ModelProtocol {
    /// Accepted spellings.
    pub const NAMES: &'static [&'static str] = &["v2", "tfserving", "mlflow", "json"];

    /// Parses the YAML spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "v2" => Self::V2,
            "tfserving" => Self::TfServing,
            "mlflow" => Self::Mlflow,
            "json" => Self::Json,
            _ => return None,
        })
    }
}

/// One model (`ml.sources.<id>.models.<name>`; the key is the model's name on the server).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Model {
    /// Wire protocol (`json` by default).
    pub protocol: ModelProtocol,
    /// Path on the server (`endpoint`); derived from the protocol, name and version when
    /// omitted. Required for `json`.
    pub endpoint: Option<String>,
    /// Model version in derived paths (`version`).
    pub version: Option<String>,
    /// Input feature names, in the model's order (`inputs`).
    pub inputs: Vec<String>,
    /// Tensor datatype (`datatype`: `FP64` by default for `v2`; `FP32`, `INT64`, `BOOL`, …).
    pub datatype: Option<String>,
    /// Name of the V2 input tensor (`input_name`, default `input-0`).
    pub input_name: Option<String>,
    /// Request body layout (`format`): `instances` (default), `instances_named` or `inputs`
    /// for `tfserving`; `dataframe_split` (default), `dataframe_records` or `inputs` for
    /// `mlflow`.
    pub format: Option<String>,
    /// Output field → where it is in a row's prediction (`outputs`): `tensor[k]` for `v2`,
    /// `[k]`, `key` or `key[k]` for the others; empty returns predictions as they are.
    pub outputs: BTreeMap<String, String>,
    /// Timeout of a call to this model (`timeout`), before the server's.
    pub timeout: Option<Duration>,
    /// Headers sent with each call to this model (`headers`), besides the server's.
    pub headers: BTreeMap<String, Secret>,
    /// Where it was declared.
    pub origin: Origin,
}

impl Model {
    /// Accepted `format` values for a protocol (empty: `format` does not apply).
    pub fn formats(protocol: ModelProtocol) -> &'static [&'static str] {
        match protocol {
            ModelProtocol::TfServing => &["instances", "instances_named", "inputs"],
            ModelProtocol::Mlflow => &["dataframe_split", "dataframe_records", "inputs"],
            ModelProtocol::V2 | ModelProtocol::Json => &[],
        }
    }
}

/// A path into a model's prediction (`outputs:` values): keys and indexes, `proba[1]`,
/// `scores.churn`, `[0]`. The empty path is the whole prediction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutputPath(pub Vec<OutputStep>);

/// One step of an [`OutputPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputStep {
    /// An object key (for `v2`, the first key names the output tensor).
    Key(String),
    /// An array index.
    Index(usize),
}

impl OutputPath {
    /// Parses `a.b[1][2]`, `[0]`, `name`; an empty string is the empty path.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut steps = Vec::new();
        let mut rest = spec;
        let mut expect_key = true;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('[') {
                let (n, r) = r
                    .split_once(']')
                    .ok_or_else(|| format!("unclosed `[` in `{spec}`"))?;
                steps.push(OutputStep::Index(
                    n.trim()
                        .parse()
                        .map_err(|_| format!("`[{n}]` is not an index in `{spec}`"))?,
                ));
                rest = r;
                expect_key = false;
            } else if let Some(r) = rest.strip_prefix('.').filter(|_| !steps.is_empty()) {
                rest = r;
                expect_key = true;
            } else if expect_key {
                let end = rest.find(['.', '[', ']']).unwrap_or(rest.len());
                if end == 0 {
                    return Err(format!("empty key in `{spec}`"));
                }
                steps.push(OutputStep::Key(rest[..end].to_owned()));
                rest = &rest[end..];
                expect_key = false;
            } else {
                return Err(format!("unexpected `{rest}` in `{spec}`"));
            }
        }
        if expect_key && !steps.is_empty() {
            return Err(format!("`{spec}` ends with `.`"));
        }
        Ok(Self(steps))
    }

    /// The value at this path.
    pub fn get<'v>(&self, mut v: &'v Value) -> Option<&'v Value> {
        for step in &self.0 {
            v = match step {
                OutputStep::Key(k) => v.get(k)?,
                OutputStep::Index(i) => v.get(*i)?,
            };
        }
        Some(v)
    }
}
