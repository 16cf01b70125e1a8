//! The tables, one per mapping of the config format, in the order of the files.
//! (Unformatted: one line per key reads best.)

use super::Shape::{
    Any, Bool, Choice, ChoiceAnyCase, Duration, Either, Expr, List, Map, Number, Obj, Positive,
    Str, Strs, Uint,
};
use super::{Rule, Shape, Table, ignored, key};

const HTTP_METHODS: Shape = ChoiceAnyCase(crate::plan::HttpMethod::NAMES);

// ---------------------------------------------------------------- config.yaml

pub(crate) const SETTINGS: Table = table!(
    "config",
    "`config.yaml`: server, defaults, caching, tracking, telemetry and the original service's settings.",
    [
        key("server", Obj(&SERVER), "Where the server listens and how much it accepts."),
        key("defaults", Obj(&DEFAULTS), "Timeouts for endpoints and sources without their own."),
        key("tracking", Obj(&TRACKING), "Execution traces: the debug view, the admin records."),
        key("cache", Obj(&CACHE_SETTINGS), "The store of cached answers (memory or Redis)."),
        key("app", Obj(&APP), "The original service's `app:` settings."),
        key("logging", Obj(&LOGGING), "Log level, format and file."),
        key("performance", Obj(&PERFORMANCE), "The original service's `performance:` settings."),
        key("cors", Obj(&CORS), "Cross-origin requests."),
        key("auth", Obj(&AUTH_SETTINGS), "JWT authentication of clients (HS256)."),
        key("execution", Obj(&EXECUTION), "The original service's `execution:` defaults."),
        key("api", Obj(&API_SETTINGS), "The original service's routes and docs pages."),
        key("telemetry", Obj(&TELEMETRY), "OpenTelemetry export and Prometheus metrics."),
        key("limits", Obj(&LIMITS), "Bounds on expression and YAML nesting."),
    ]
);

pub(crate) const TRACKING: Table = table!(
    "tracking",
    "Execution traces.",
    [
        key("debug_view", Bool, "Serve a request's trace with `?debug=true`."),
        key("admin", Bool, "Serve the recent executions under the admin routes."),
        key("recent", Positive, "How many executions the admin routes keep."),
        key("server_timing", Bool, "Send a `Server-Timing` header per source."),
    ]
);

pub(crate) const DEFAULTS: Table = table!(
    "defaults",
    "Timeouts for endpoints and sources without their own.",
    [
        key("timeout", Duration, "An endpoint's whole execution."),
        key("source_timeout", Duration, "One source call."),
    ]
);

pub(crate) const LIMITS: Table = table!(
    "limits",
    "Bounds on what a config may nest (each 1 up to a built-in most).",
    [
        key("expression_nesting", Positive, "Nesting depth of one expression."),
        key("expression_operators", Positive, "Operators in one expression."),
        key("yaml_nesting", Positive, "Nesting depth of a YAML document."),
    ]
);

pub(crate) const SERVER: Table = table!(
    "server",
    "Where the server listens.",
    [
        key("host", Str, "The address to bind."),
        key("port", Uint, "The port to bind."),
        key("max_body_bytes", Uint, "The largest request body accepted."),
        key("workers", Uint, "Worker threads (the original's setting)."),
        key("log_level", Str, "The log level (`info`, `debug`…; Python's names are read too)."),
        key("use_https", Bool, "TLS is terminated in front of the server; `true` is reported."),
    ]
);

pub(crate) const EXECUTION: Table = table!(
    "execution",
    "The original service's execution defaults.",
    [
        key("timeout", Duration, "An endpoint's whole execution."),
        key("retries", Uint, "Retries of a failed source call."),
    ]
);

pub(crate) const APP: Table = table!(
    "app",
    "The original service's `app:` settings.",
    [
        key("name", Str, "The service's name (OpenAPI title)."),
        key("environment", Str, "The deployment's name."),
        key("debug", Bool, "Debug mode: traces on every response."),
        key("api_base_path", Str, "The mount path of the endpoints, e.g. `/api`."),
    ]
);

pub(crate) const API_SETTINGS: Table = table!(
    "api",
    "The original service's routes and docs pages.",
    [
        key("prefix", Str, "The mount path of the original service's routes."),
        key("docs_url", Str, "Where the docs page is served."),
        key("redoc_url", Str, "Where the ReDoc page would be served."),
    ]
);

pub(crate) const LOGGING: Table = table!(
    "logging",
    "Log level, format and file.",
    [
        key("level", Str, "The log level (`info`, `debug`…; Python's names are read too)."),
        key("format", Choice(crate::plan::LogFormat::NAMES), "Plain text or JSON lines."),
        key("log_to_file", Bool, "Write the log to `log_file_path` too."),
        key("log_file_path", Str, "The log file (with `log_to_file: true`)."),
        key("log_file_rotation", ChoiceAnyCase(crate::plan::LogRotation::NAMES), "How often the log file rolls over."),
    ]
);

pub(crate) const PERFORMANCE: Table = table!(
    "performance",
    "The original service's `performance:` settings.",
    [
        key("cache_enabled", Bool, "Cache every source's answers."),
        key("cache_ttl_seconds", Duration, "How long cached answers live."),
        key("response_compression", Bool, "Compress responses (gzip, brotli)."),
    ]
);

pub(crate) const CORS: Table = table!(
    "cors",
    "Cross-origin requests.",
    [
        key("enabled", Bool, "Answer cross-origin requests."),
        key("allow_origins", Strs, "Allowed origins (`*` for any)."),
        key("allow_methods", Strs, "Allowed methods."),
        key("allow_headers", Strs, "Allowed request headers."),
        key("allow_credentials", Bool, "Allow credentials (not with `*` origins)."),
    ]
);

pub(crate) const AUTH_SETTINGS: Table = table!(
    "auth_settings",
    "JWT authentication of clients.",
    [
        key("enabled", Bool, "Require a valid bearer token."),
        key("jwt_secret", Str, "The HS256 secret (write `${env:NAME}`)."),
        key("token_expiry_minutes", Uint, "The original's token lifetime (tokens carry `exp`)."),
        key("refresh_token_expiry_days", Uint, "The original's refresh lifetime."),
    ]
);

pub(crate) const TELEMETRY: Table = table!(
    "telemetry",
    "OpenTelemetry export and Prometheus metrics.",
    [
        key("service_name", Str, "The `service.name` of exported spans."),
        key("endpoint", Str, "The OTLP/HTTP collector URL."),
        key("sampling_ratio", Number, "The share of traces kept, 0 to 1."),
        key("metrics", Bool, "Serve Prometheus metrics at `/metrics`."),
    ]
);

pub(crate) const CACHE_SETTINGS: Table = table!(
    "cache_settings",
    "The store of cached answers.",
    [
        key("store", Choice(crate::plan::CacheStore::NAMES), "In this process or in Redis."),
        key("url", Str, "The Redis URL (`redis://host:6379/0`)."),
        key("default_ttl", Duration, "How long answers live unless a cache says otherwise."),
        key("max_entries", Positive, "The most answers kept in memory."),
        key("max_bytes", Positive, "The most bytes of answers kept in memory."),
        key("timeout", Duration, "How long one Redis call may take."),
    ]
);

// ---------------------------------------------------------------- domains/<d>.yaml

pub(crate) const DOMAIN_FILE: Table = table!(
    "domain_file",
    "`domains/<domain>.yaml`: the domain's endpoints.",
    [
        key("endpoints", Map(&Obj(&ENDPOINT)), "The endpoints, by name (each a route segment)."),
        key("domain_id", Str, "The original's domain id (the file names the domain)."),
        key("domain_name", Str, "The domain's title in the docs."),
        key("description", Str, "The domain's description in the docs."),
    ],
    required: ["endpoints"]
);

pub(crate) const ENDPOINT: Table = table!(
    "endpoint",
    "An endpoint: its sources, how they run, and the response they make.",
    [
        key("description", Str, "Shown in the docs."),
        key("tags", Strs, "Tags for the docs and for subset mounts."),
        key("endpoint_type", Choice(crate::plan::EndpointType::NAMES), "The kind of sources it may use."),
        key("method", Either(&[HTTP_METHODS, List(&HTTP_METHODS)]), "The HTTP method or methods (GET when absent)."),
        key("path", Str, "The route, e.g. `/customers/{customer_id}` (default: `/<domain>/<name>/{id}`)."),
        key("timeout", Duration, "The whole execution's deadline."),
        key("data_sources", List(&Obj(&SOURCE)), "The sources, run concurrently where the data allows."),
        key("primary_source", Str, "The source whose absence answers 404."),
        key("response_mapping", Any, "The response: a template of `$source.path` expressions."),
        key("input", Obj(&INPUT), "The typed inputs, by place."),
        key("output", Any, "A JSON Schema of the response (for the docs)."),
        key("max_in_flight", Either(&[Positive, Obj(&IN_FLIGHT)]), "How many executions may run at once."),
        key("rate_limit", Either(&[Str, Obj(&RATE_LIMIT)]), "How often the endpoint may be called: `100/s`, or `{rate, burst, key}`."),
        key("on_degraded", Choice(&["answer", "fail"]), "What a source that stood in a fallback does to the answer."),
        key("endpoint_id", Str, "The original's endpoint id (informational)."),
        key("input_schema", Any, "The original's JSON Schema of the body, read as `input: {body: …}`."),
        key("output_schema", Any, "The original's JSON Schema of the response."),
        key("response_template", Any, "The original's `{source.path}` template."),
        key("response", Any, "A static response (an endpoint without sources)."),
        ignored("response_type", "Responses are JSON; ignored."),
    ],
    rules: [Rule::AnyOf(&["data_sources", "response"])]
);

pub(crate) const INPUT: Table = table!(
    "input",
    "Typed inputs: path segments, query parameters, body fields.",
    [
        key("path", Map(&INPUT_FIELD), "Path captures."),
        key("query", Map(&INPUT_FIELD), "Query parameters."),
        key("body", Map(&INPUT_FIELD), "Fields of a JSON body."),
    ]
);

const INPUT_TYPE: Shape = Choice(crate::plan::InputType::NAMES);
const INPUT_FIELD: Shape = Either(&[INPUT_TYPE, Obj(&INPUT_FIELD_TABLE)]);

pub(crate) const INPUT_FIELD_TABLE: Table = table!(
    "input_field",
    "An input with its type, whether it is required and its description.",
    [
        key("type", INPUT_TYPE, "The JSON type."),
        key("required", Bool, "Whether the request must carry it (default true)."),
        key("description", Str, "Shown in the docs."),
    ],
    required: ["type"]
);

pub(crate) const SOURCE: Table = table!(
    "source",
    "A data source step of an endpoint.",
    [
        key("name", Str, "The step's name: its result is `$<name>`."),
        key("type", Str, "`database`, `api`, `feast`, `ml`, `direct` or a host source type."),
        key("operation", Str, "The operation (query, API operation, feature set, model) to run."),
        key("source_id", Str, "The connection or service, when the integration file has several."),
        key("params", Either(&[Str, Map(&Any)]), "The operation's params: templates of expressions, or one expression yielding them."),
        key("condition", Expr, "Run the step only when this holds."),
        key("depends_on", Strs, "Steps to wait for besides those its params name."),
        key("timeout", Duration, "One call's deadline."),
        key("retries", Either(&[Uint, Obj(&RETRIES)]), "Retries of a transient failure."),
        key("on_error", Choice(&["fail", "skip", "default"]), "What a failure does: fail the request, answer null, or `default`."),
        key("default", Any, "The value that stands in with `on_error: default`."),
        key("fallback", Obj(&FALLBACK), "Another source or a value that stands in on failure."),
        key("transform", Either(&[List(&Obj(&TRANSFORM)), Obj(&SELECT_FIELDS)]), "Steps applied to the result."),
        key("cache", Either(&[Bool, Choice(&["off"]), Duration, Obj(&CACHE_POLICY)]), "Cache the answers: a ttl, `{ttl, stale_if_error, error_ttl}`, or `false`."),
        key("required", Bool, "A missing result fails the request."),
        key("on_not_found", Either(&[Choice(crate::plan::OnNotFound::NAMES), Uint]), "What an empty result does: fail, answer empty, or respond 404."),
        key("for_each", Expr, "Run once per element of this list (`$item`, `$index`)."),
        key("concurrency", Positive, "Calls in flight with `for_each`."),
        key("batch", Obj(&ITEM_BATCH), "Group `for_each` elements into one call per batch."),
    ],
    required: ["name", "type"],
    rules: [Rule::When { key: "on_error", is: "default", needs: "default" }]
);

pub(crate) const ITEM_BATCH: Table = table!(
    "for_each_batch",
    "How many `for_each` elements one call takes.",
    [key("size", Positive, "The most elements per call.")],
    required: ["size"]
);

pub(crate) const RETRIES: Table = table!(
    "retries",
    "Retries with backoff.",
    [
        key("max", Uint, "The most retries."),
        key("backoff", Duration, "The first wait, doubled each retry."),
        key("max_backoff", Duration, "The longest wait."),
    ],
    required: ["max"]
);

pub(crate) const FALLBACK: Table = table!(
    "fallback",
    "What stands in when the source fails: another source (`type`, `operation`) or a `value`.",
    [
        key("type", Str, "The other source's type."),
        key("operation", Str, "The other source's operation."),
        key("source_id", Str, "The other source's connection or service."),
        key("value", Any, "A literal that stands in."),
    ]
);

pub(crate) const SELECT_FIELDS: Table = table!(
    "select_fields",
    "The original's `transform: {type: select_fields, fields: […]}`.",
    [
        key("type", Choice(&["select_fields"]), "The only transform of the original."),
        key("fields", Strs, "The fields to keep."),
    ],
    required: ["type", "fields"]
);

pub(crate) const TRANSFORM: Table = table!(
    "transform",
    "One transform step: a mapping with one of these keys.",
    [
        key("select", Strs, "Keep these fields."),
        key("rename", Map(&Str), "Rename fields (old: new)."),
        key("defaults", Map(&Any), "Fill absent fields."),
        key("compute", Map(&Any), "Add fields from expressions over `$item`."),
        key("filter", Expr, "Keep the elements for which this holds."),
        key("map", Any, "Replace each element by this template over `$item`."),
        key("flatten", Bool, "Flatten one level of nested lists."),
        key("sort", Either(&[Str, Obj(&SORT)]), "Order by an expression over `$item`."),
        key("limit", Uint, "Keep the first n elements."),
        key("group_by", Expr, "Group elements by an expression over `$item`."),
        key("join", Obj(&JOIN), "Join another list by key."),
    ],
    rules: [Rule::OneKey]
);

pub(crate) const SORT: Table = table!(
    "sort",
    "Order by an expression.",
    [
        key("by", Expr, "The expression over `$item`."),
        key("order", Choice(&["asc", "desc"]), "Ascending (default) or descending."),
    ],
    required: ["by"]
);

pub(crate) const JOIN: Table = table!(
    "join",
    "Join another list by key.",
    [
        key("with", Expr, "The other list."),
        key("on", Either(&[Str, Obj(&JOIN_ON)]), "The key field, or `{left, right}`."),
        key("as", Str, "The field the match goes into."),
    ],
    required: ["with", "on", "as"]
);

pub(crate) const JOIN_ON: Table = table!(
    "join_on",
    "Key fields of the two lists.",
    [
        key("left", Str, "The field of this list."),
        key("right", Str, "The field of the other list."),
    ],
    required: ["left", "right"]
);

pub(crate) const IN_FLIGHT: Table = table!(
    "max_in_flight",
    "Executions at once, and how many may wait.",
    [
        key("limit", Positive, "The executions allowed at once."),
        key("queue", Uint, "How many may wait for a slot (default 0)."),
    ],
    required: ["limit"]
);

pub(crate) const RATE_LIMIT: Table = table!(
    "rate_limit",
    "A token bucket.",
    [
        key("rate", Str, "A rate such as `100/s`, `600/m` or `5/10s`."),
        key("burst", Positive, "The bucket's size (default: the rate's count)."),
        key("key", Str, "`client`, `global` or `header:<name>`."),
    ],
    required: ["rate"]
);

pub(crate) const CACHE_POLICY: Table = table!(
    "cache_policy",
    "How answers are cached.",
    [
        key("ttl", Duration, "How long an answer is fresh."),
        key("stale_if_error", Duration, "How long a stale answer stands in for a failure."),
        key("error_ttl", Duration, "How long a failure is remembered."),
    ]
);

pub(crate) const CIRCUIT_BREAKER: Table = table!(
    "circuit_breaker",
    "Stop calling a failing service for a while.",
    [
        key("failures", Positive, "Consecutive failures that open the circuit."),
        key("open_for", Duration, "How long it stays open."),
        key("probes", Positive, "Calls let through while half open."),
    ]
);

// ---------------------------------------------------------------- database.yaml

pub(crate) const DATABASE_FILE: Table = table!(
    "database_file",
    "`database.yaml` (or `domains/<domain>/database.yaml`).",
    [key("database", Obj(&DATABASE), "Connections and SQL operations.")]
);

pub(crate) const DATABASE: Table = table!(
    "database",
    "Connections and SQL operations.",
    [
        key("sources", Map(&Obj(&DB_CONNECTION)), "Connections by id (`default` is used when a step names none)."),
        key("operations", Map(&Obj(&DB_OPERATION)), "SQL operations by name."),
        key("defaults", Obj(&DATABASE_DEFAULTS), "Defaults of every operation."),
    ]
);

pub(crate) const DATABASE_DEFAULTS: Table = table!(
    "database_defaults",
    "Defaults of every SQL operation.",
    [key("timeout", Duration, "One query's deadline.")]
);

pub(crate) const DB_CONNECTION: Table = table!(
    "database_connection",
    "A connection pool.",
    [
        key("connection_string", Str, "`sqlite://…`, `postgres://…` or `mysql://…`."),
        key("pool_size", Uint, "The most connections."),
        key("acquire_timeout", Duration, "How long a query waits for a connection."),
        key("statement_timeout", Duration, "The database's own limit per statement."),
        key("log_parameters", Bool, "Put bound values in query spans (off: they may be personal data)."),
        key("max_lifetime", Duration, "How long a connection lives."),
        key("type", Str, "The original's database type; must match the URL."),
        key("max_overflow", Uint, "SQLAlchemy's extra connections, added to `pool_size`."),
        key("pool_timeout", Duration, "SQLAlchemy's name of `acquire_timeout`."),
        key("pool_recycle", Duration, "SQLAlchemy's name of `max_lifetime`."),
        key("connect_args", Map(&Any), "SQLAlchemy's driver options (those sqlx takes go into the URL)."),
    ],
    required: ["connection_string"]
);

const SQL_TYPE: Shape = Choice(crate::plan::SqlType::NAMES);

pub(crate) const DB_OPERATION: Table = table!(
    "database_operation",
    "A SQL statement with `:name` parameters.",
    [
        key("query", Str, "The statement."),
        key("params", Either(&[List(&Str), Map(&SQL_TYPE)]), "Parameter names, or names with types, in query order."),
        key("return_type", Choice(crate::plan::ReturnType::NAMES), "One row, all rows, or the first column of the first row."),
        key("columns", Map(&SQL_TYPE), "Types of result columns."),
        key("source_id", Str, "The connection (default: `default`)."),
        key("timeout", Duration, "The query's deadline."),
        key("max_rows", Positive, "The most rows read."),
        key("batch", Obj(&SQL_BATCH), "How `for_each` elements are sent in one `IN (…)` query."),
    ],
    required: ["query"]
);

pub(crate) const SQL_BATCH: Table = table!(
    "database_batch",
    "A list parameter expanded into `IN (…)`, matched back by a key column.",
    [
        key("param", Str, "The list parameter."),
        key("key", Str, "The result column that matches an element."),
    ],
    required: ["param", "key"]
);

// ---------------------------------------------------------------- integrations/*.yaml

pub(crate) const HTTP: Table = table!(
    "http_service",
    "Settings every HTTP service takes.",
    [
        key("timeout", Duration, "One call's deadline."),
        key("headers", Map(&Str), "Headers sent with every call (write secrets as `${env:NAME}`)."),
        key("retries", Either(&[Uint, Obj(&RETRIES)]), "Retries of a transient failure."),
        key("max_response_bytes", Positive, "The largest answer read."),
        key("cache", Either(&[Duration, Obj(&CACHE_POLICY)]), "Cache the service's answers."),
        key("circuit_breaker", Obj(&CIRCUIT_BREAKER), "Stop calling it while it fails."),
        key("max_concurrent", Positive, "Calls in flight at once."),
        key("forward_headers", Strs, "Headers of the inbound request relayed to it (`authorization`, `cookie`…)."),
    ]
);

pub(crate) const API_FILE: Table = table!(
    "api_sources_file",
    "`integrations/api_sources.yaml`: external HTTP APIs.",
    [key("api", Obj(&API_SOURCES), "The API services.")]
);

pub(crate) const API_SOURCES: Table = table!(
    "api_sources",
    "The API services, by id.",
    [key("sources", Map(&Obj(&API_SERVICE)), "Services by id (a step's `source_id`).")]
);

pub(crate) const API_SERVICE: Table = table!(
    "api_service",
    "An external HTTP API.",
    [
        key("base_url", Str, "`http(s)://host:port/prefix`; operation paths are appended."),
        key("auth", Obj(&API_AUTH), "Credentials sent with every call."),
        key("operations", Map(&Obj(&API_OPERATION)), "Operations by name."),
        key("openapi", Str, "The service's OpenAPI document (URL or file), checked against the operations."),
        key("retry_count", Either(&[Uint, Obj(&RETRIES)]), "The original's name of `retries`."),
        ignored("mock_response", "Answers are never mocked in the server; ignored."),
    ],
    required: ["base_url"],
    with: &HTTP
);

pub(crate) const API_AUTH: Table = table!(
    "api_auth",
    "`bearer` (`token`), `api_key` (`header` or `query`, `key`) or `basic` (`username`, `password`).",
    [
        key("type", Choice(&["bearer", "api_key", "basic"]), "The scheme."),
        key("token", Str, "The bearer token (`${env:NAME}`)."),
        key("header", Str, "The API key's header."),
        key("query", Str, "The API key's query parameter."),
        key("key", Str, "The API key (`${env:NAME}`)."),
        key("username", Str, "The basic user."),
        key("password", Str, "The basic password (`${env:NAME}`)."),
    ],
    required: ["type"]
);

pub(crate) const API_OPERATION: Table = table!(
    "api_operation",
    "One HTTP call: method, path template, query, headers and body from the step's params.",
    [
        key("method", HTTP_METHODS, "The HTTP method (GET when absent)."),
        key("path", Str, "The path template, e.g. `/customers/{customer_id}`."),
        key("query", Map(&Any), "Query parameters (`\"{param}\"` placeholders)."),
        key("headers", Map(&Any), "Headers of this operation."),
        key("body", Any, "The JSON body template."),
        key("extract", Str, "A JSON pointer into the answer (`/data/items`)."),
        key("retries", Either(&[Uint, Obj(&RETRIES)]), "Retries of this operation."),
        key("sample", Map(&Any), "A sample answer, for the docs."),
        key("batch", Obj(&API_BATCH), "How `for_each` elements are sent in one call and matched back."),
        ignored("mock", "Answers are never mocked in the server; ignored."),
        ignored("mock_response", "Answers are never mocked in the server; ignored."),
        ignored("path_params", "Path parameters are the `{name}` segments of `path`; ignored."),
        ignored("params", "Send query parameters with `query:` and a body with `body:`; ignored."),
    ],
    required: ["path"]
);

pub(crate) const API_BATCH: Table = table!(
    "api_batch",
    "Many `for_each` elements in one call.",
    [
        key("param", Str, "The placeholder the keys go into."),
        key("match", Str, "The field of an answer's element that matches a key."),
        key("size", Positive, "The most keys per call."),
    ],
    required: ["param"]
);

pub(crate) const FEAST_FILE: Table = table!(
    "feast_config_file",
    "`integrations/feast_config.yaml`: Feast feature servers.",
    [key("feast", Obj(&FEAST_SOURCES), "The feature servers.")]
);

pub(crate) const FEAST_SOURCES: Table = table!(
    "feast_sources",
    "The feature servers, by id.",
    [key("sources", Map(&Obj(&FEAST_SERVER)), "Servers by id (a step's `source_id`).")]
);

pub(crate) const FEAST_SERVER: Table = table!(
    "feast_server",
    "A Feast feature server (`feast serve`).",
    [
        key("url", Str, "The feature server, `http://host:6566`."),
        key("base_url", Str, "Another name of `url`."),
        key("operations", Map(&Obj(&FEAST_OPERATION)), "Feature sets by name."),
        ignored("repo_path", "A Python SDK setting; ignored."),
        ignored("project", "A Python SDK setting; ignored."),
        ignored("registry", "A Python SDK setting; ignored."),
        ignored("entity_key_serialization_version", "A Python SDK setting; ignored."),
        ignored("feature_services", "A Python SDK setting; ignored."),
        ignored("default_iris_features", "A Python SDK setting; ignored."),
        ignored("default_customer_features", "A Python SDK setting; ignored."),
        ignored("feature_server_type", "A Python SDK setting; ignored."),
        ignored("database_fallback", "A Python SDK setting; ignored."),
    ],
    with: &HTTP,
    rules: [Rule::AnyOf(&["url", "base_url"])]
);

pub(crate) const FEAST_OPERATION: Table = table!(
    "feast_operation",
    "A feature lookup.",
    [
        key("features", Strs, "`view:feature` references."),
        key("feature_service", Str, "A feature service instead of `features`."),
        key("entity_key", Strs, "The entity key or keys, filled from the step's params."),
        key("full_feature_names", Bool, "Answer `view__feature` names."),
        key("on_missing", Choice(crate::plan::OnMissing::NAMES), "What a missing entity is: null or an error."),
        key("database_fallback", Obj(&FEAST_FALLBACK), "A table read when the server fails."),
        key("sample", Map(&Any), "A sample answer, for the docs."),
    ],
    required: ["entity_key"]
);

pub(crate) const FEAST_FALLBACK: Table = table!(
    "feast_fallback",
    "A table that stands in for the feature server.",
    [
        key("table", Str, "The table."),
        key("entity_key", Str, "The key column."),
        key("mapping", Map(&Str), "Feature name to column."),
        key("source_id", Str, "The connection."),
    ],
    required: ["table", "entity_key"]
);

pub(crate) const ML_FILE: Table = table!(
    "ml_config_file",
    "`integrations/ml_config.yaml` (or the original's `ml.yaml`): model servers.",
    [key("ml", Obj(&ML_SOURCES), "The model servers.")]
);

pub(crate) const ML_SOURCES: Table = table!(
    "ml_sources",
    "The model servers, by id.",
    [key("sources", Map(&Obj(&ML_SERVER)), "Servers by id (a step's `source_id`).")]
);

pub(crate) const ML_SERVER: Table = table!(
    "ml_server",
    "A model server.",
    [
        key("base_url", Str, "`http(s)://host:port`."),
        key("models", Map(&Obj(&MODEL)), "Models by name (a step's `operation`)."),
    ],
    required: ["base_url"],
    with: &HTTP
);

pub(crate) const MODEL: Table = table!(
    "model",
    "A model and how it is called.",
    [
        key("protocol", Choice(crate::plan::ModelProtocol::NAMES), "Open Inference Protocol (`v2`), TF Serving, MLflow, or plain JSON."),
        key("endpoint", Str, "The model's path, when not the protocol's default."),
        key("version", Str, "The model version."),
        key("inputs", Strs, "The feature names, in tensor column order."),
        key("datatype", Choice(crate::config::schema::TENSOR_DATATYPES), "The tensor's datatype (`v2`)."),
        key("input_name", Str, "The input tensor's name (`v2`)."),
        key("format", Str, "The request format (TF Serving: `instances`…; MLflow: `dataframe_split`…)."),
        key("outputs", Map(&Str), "Named values picked out of the prediction (`proba[1]`)."),
        key("timeout", Duration, "One call's deadline."),
        key("headers", Map(&Str), "Headers sent with every call."),
        key("method", ChoiceAnyCase(&["POST"]), "The original's method; models are called with POST."),
        ignored("source", "Models are not started from the config; ignored."),
    ]
);
