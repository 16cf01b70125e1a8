//! Integration definitions: database connections and named SQL operations, external APIs, Feast
//! feature servers and model servers. Each source type's operations live here, keyed by name.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::{NamedMap, Origin};

/// All integration definitions visible to one set of endpoints.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Integrations {
    /// `database.yaml`.
    pub database: DatabaseConfig,
    /// `integrations/api_sources.yaml`.
    pub api: ApiConfig,
    /// `integrations/feast_config.yaml`.
    pub feast: FeastConfig,
    /// `integrations/ml_config.yaml`.
    pub ml: MlConfig,
}

impl Integrations {
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
pub struct DatabaseConfig {
    /// `database.sources.<id>`.
    pub sources: NamedMap<DbConnection>,
    /// `database.operations.<name>`.
    pub operations: NamedMap<DbOperation>,
}

/// One database connection (`database.sources.<id>`).
#[derive(Debug, Clone, PartialEq)]
pub struct DbConnection {
    /// sqlx URL, translated from SQLAlchemy style where needed (`sqlite:///x.db` becomes
    /// `sqlite://x.db` resolved against the config directory, `postgresql+psycopg2://` becomes
    /// `postgres://`, `mysql+pymysql://` becomes `mysql://`).
    pub url: String,
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
    /// Where it was declared.
    pub origin: Origin,
}

impl DbConnection {
    /// Which driver the URL names (`None` for a scheme no driver handles).
    pub fn driver(&self) -> Option<SqlDriver> {
        SqlDriver::of_url(&self.url)
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
#[derive(Debug, Clone, PartialEq)]
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
    /// Where it was declared.
    pub origin: Origin,
}

/// A declared SQL operation parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlType {
    /// Text (`string`).
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HttpMethod {
    /// GET
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
        Some(match s.to_ascii_uppercase().as_str() {
            "GET" => Self::Get,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "PATCH" => Self::Patch,
            "DELETE" => Self::Delete,
            _ => return None,
        })
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

/// `integrations/api_sources.yaml`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApiConfig {
    /// `api.sources.<id>`.
    pub sources: NamedMap<ApiService>,
}

/// One external HTTP service (`api.sources.<id>`).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiService {
    /// Base URL that operation paths are appended to.
    pub base_url: String,
    /// Per-call timeout (`timeout`, seconds or a duration string).
    pub timeout: Option<Duration>,
    /// Headers sent with every call.
    pub headers: BTreeMap<String, String>,
    /// Authentication.
    pub auth: Option<ApiAuth>,
    /// `api.sources.<id>.operations.<name>`.
    pub operations: NamedMap<ApiOperation>,
    /// Where it was declared.
    pub origin: Origin,
}

/// Authentication for an external API (`auth:`); secrets come from `${env:NAME}` references.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiAuth {
    /// `{type: bearer, token}`: `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
    /// `{type: api_key, header | query, key}`: the key in a header or a query parameter.
    ApiKey {
        /// Header name, when sent as a header.
        header: Option<String>,
        /// Query parameter name, when sent in the query.
        query: Option<String>,
        /// The key.
        key: String,
    },
    /// `{type: basic, username, password}`.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Option<String>,
    },
}

/// One operation of an external API.
#[derive(Debug, Clone, PartialEq)]
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
    /// Where it was declared.
    pub origin: Origin,
}

// ---------------------------------------------------------------- feast

/// `integrations/feast_config.yaml`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeastConfig {
    /// `feast.sources.<id>`.
    pub sources: NamedMap<FeastServer>,
}

/// One Feast feature server (`feast.sources.<id>`).
#[derive(Debug, Clone, PartialEq)]
pub struct FeastServer {
    /// Feature server URL (`url`, or `base_url` like the other integration files).
    pub url: String,
    /// Per-call timeout.
    pub timeout: Option<Duration>,
    /// Headers sent with every call.
    pub headers: BTreeMap<String, String>,
    /// `feast.sources.<id>.operations.<name>`.
    pub operations: NamedMap<FeastOperation>,
    /// Where it was declared.
    pub origin: Origin,
}

/// One feature lookup (`feast.sources.<id>.operations.<name>`).
#[derive(Debug, Clone, PartialEq)]
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
    /// Database lookup used when the feature server fails.
    pub database_fallback: Option<FeatureFallback>,
    /// Where it was declared.
    pub origin: Origin,
}

/// A database fallback for a feature lookup (`database_fallback:`).
#[derive(Debug, Clone, PartialEq)]
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
pub struct MlConfig {
    /// `ml.sources.<id>`.
    pub sources: NamedMap<ModelServer>,
}

/// One model server (`ml.sources.<id>`).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelServer {
    /// Base URL.
    pub base_url: String,
    /// Per-call timeout.
    pub timeout: Option<Duration>,
    /// Headers sent with every call.
    pub headers: BTreeMap<String, String>,
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

/// One model (`ml.sources.<id>.models.<name>`).
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Wire protocol (`json` by default).
    pub protocol: ModelProtocol,
    /// Path on the server; derived from protocol and model name when omitted.
    pub endpoint: Option<String>,
    /// Input feature names, in the model's order.
    pub inputs: Vec<String>,
    /// Tensor datatype (`FP64`, `FP32`, `INT64`, …) for protocols that need one.
    pub datatype: Option<String>,
    /// Output field → path into the model's output.
    pub outputs: BTreeMap<String, String>,
    /// Where it was declared.
    pub origin: Origin,
}
