//! The `database` source type: named SQL operations from `database.yaml`, run through sqlx on
//! SQLite (feature `sqlite`), PostgreSQL (`postgres`) and MySQL/MariaDB (`mysql`).
//!
//! At build time (once per config version and domain scope) each connection becomes a lazy
//! sqlx pool, and each operation's `:name` placeholders are rewritten into the driver's
//! positional form. A fetch binds the step's params (never splices them), runs the statement
//! and turns the rows into JSON:
//!
//! | column type | JSON |
//! |---|---|
//! | integers (to 64 bits, unsigned too) | number |
//! | floats | number (NaN and infinities become null) |
//! | `NUMERIC` / `DECIMAL` (PostgreSQL, MySQL) | string with every digit, e.g. `"1234.50"` (declare `number` under `columns:` for a float) |
//! | text, `UUID`, enums | string |
//! | `BOOLEAN` (and MySQL `TINYINT(1)`, SQLite columns declared `BOOLEAN`) | boolean |
//! | `TIMESTAMPTZ`, MySQL `TIMESTAMP` | RFC 3339 in UTC: `"2024-01-15T10:30:00Z"` |
//! | `TIMESTAMP` / `DATETIME` (no zone) | `"2024-01-15T10:30:00"` (no offset: the database has none) |
//! | `DATE`, `TIME` | `"2024-01-15"`, `"10:30:00"` |
//! | `JSON`, `JSONB` | the document itself |
//! | `BLOB`, `BYTEA`, `BINARY` | base64 string |
//! | PostgreSQL arrays of the above scalars | array |
//! | `NULL` | null |
//!
//! What the database cannot say (JSON kept in a SQLite `TEXT` column or a MariaDB `JSON`
//! column, which MariaDB reports as text; an integer used as a flag) is declared per operation
//! under `columns:`. Errors become typed [`SourceError`]s naming the operation and connection;
//! their text is for logs and traces only.

mod value;

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tracing::Instrument as _;

use super::{
    DataSource, SourceCall, SourceError, SourceErrorKind, SourceFactory, in_key_order, key_text,
};
use crate::plan::{
    DbConnection, DbOperation, DbParam, Integrations, ReturnType, SqlDriver, SqlType,
};
use api_orchestrator_core::sql_text::{self, Style};
use value::Bind;

/// Connections wait this long for a pooled connection unless `acquire_timeout` says otherwise.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pool size unless `pool_size` says otherwise.
pub const DEFAULT_POOL_SIZE: u32 = 10;

/// A sqlx pool of one of the compiled-in drivers.
///
/// Hosts that already own a pool hand it to [`SqlFactory::with_pool`]; it is cheap to clone
/// (pools are reference-counted).
#[derive(Clone)]
#[non_exhaustive]
pub enum SqlPool {
    /// SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    /// MySQL or MariaDB.
    #[cfg(feature = "mysql")]
    MySql(sqlx::MySqlPool),
}

impl fmt::Debug for SqlPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SqlPool")
            .field(&self.driver().name())
            .finish()
    }
}

#[cfg(feature = "sqlite")]
impl From<sqlx::SqlitePool> for SqlPool {
    fn from(pool: sqlx::SqlitePool) -> Self {
        Self::Sqlite(pool)
    }
}

#[cfg(feature = "postgres")]
impl From<sqlx::PgPool> for SqlPool {
    fn from(pool: sqlx::PgPool) -> Self {
        Self::Postgres(pool)
    }
}

#[cfg(feature = "mysql")]
impl From<sqlx::MySqlPool> for SqlPool {
    fn from(pool: sqlx::MySqlPool) -> Self {
        Self::MySql(pool)
    }
}

impl SqlPool {
    /// Which database this pool talks to.
    pub fn driver(&self) -> SqlDriver {
        match *self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => SqlDriver::Sqlite,
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => SqlDriver::Postgres,
            #[cfg(feature = "mysql")]
            Self::MySql(_) => SqlDriver::MySql,
        }
    }

    /// Connections open, and how many of them are idle.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    fn connections(&self) -> (u32, usize) {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(pool) => (pool.size(), pool.num_idle()),
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => (pool.size(), pool.num_idle()),
            #[cfg(feature = "mysql")]
            Self::MySql(pool) => (pool.size(), pool.num_idle()),
        }
    }

    /// A lazy pool for `conn`: no connection is opened until the first query.
    pub(crate) fn connect_lazy(name: &str, conn: &DbConnection) -> Result<Self, SourceError> {
        let config = |message: String| {
            SourceError::new(
                SourceErrorKind::Config,
                format!("database connection `{name}`: {message}"),
            )
        };
        let driver = conn.driver().ok_or_else(|| {
            config(format!(
                "`{}` is not a supported database URL",
                crate::redact::url(conn.url.expose())
            ))
        })?;
        let settings = PoolSettings {
            size: conn.pool_size.unwrap_or(DEFAULT_POOL_SIZE).max(1),
            acquire_timeout: conn.acquire_timeout.unwrap_or(DEFAULT_ACQUIRE_TIMEOUT),
            statement_timeout: conn.statement_timeout,
            max_lifetime: conn.max_lifetime,
        };
        let built = match driver {
            #[cfg(feature = "sqlite")]
            SqlDriver::Sqlite => {
                sqlite::connect_lazy(conn.url.expose(), &settings).map(Self::Sqlite)
            }
            #[cfg(feature = "postgres")]
            SqlDriver::Postgres => {
                postgres::connect_lazy(conn.url.expose(), &settings).map(Self::Postgres)
            }
            #[cfg(feature = "mysql")]
            SqlDriver::MySql => mysql::connect_lazy(conn.url.expose(), &settings).map(Self::MySql),
            #[allow(unreachable_patterns)]
            other => {
                return Err(config(format!(
                    "{} support is not compiled in; enable the `{}` feature of `orchestrator`",
                    other.name(),
                    match other {
                        SqlDriver::Sqlite => "sqlite",
                        SqlDriver::Postgres => "postgres",
                        SqlDriver::MySql => "mysql",
                    }
                )));
            }
        };
        built.map_err(|e| config(format!("invalid connection settings: {e}")))
    }

    async fn run<'a>(
        &self,
        sql: &Arc<str>,
        args: impl Iterator<Item = &'a Bind>,
        one: bool,
        max_rows: usize,
    ) -> Result<Vec<Row>, RunError> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(pool) => sqlite::run(pool, sql, args, one, max_rows).await,
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => postgres::run(pool, sql, args, one, max_rows).await,
            #[cfg(feature = "mysql")]
            Self::MySql(pool) => mysql::run(pool, sql, args, one, max_rows).await,
        }
    }

    /// The result columns of `query` (with `:name` placeholders for `params`), as the database
    /// describes the statement without running it.
    pub(crate) async fn describe(
        &self,
        query: &str,
        params: &[&str],
    ) -> Result<Vec<crate::snapshot::Column>, sqlx::Error> {
        let (sql, _) = sql_text::rewrite(query, params, style_of(self.driver()));
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(pool) => sqlite::describe(pool, &sql).await,
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => postgres::describe(pool, &sql).await,
            #[cfg(feature = "mysql")]
            Self::MySql(pool) => mysql::describe(pool, &sql).await,
        }
    }

    /// Runs `query` (with `:name` placeholders for `params`, untyped) and returns its first
    /// row. For generated statements such as the Feast database fallback.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) async fn first_row(
        &self,
        query: &str,
        params: &[(&str, &Value)],
    ) -> Result<Option<Row>, SourceError> {
        let names: Vec<&str> = params.iter().map(|(n, _)| *n).collect();
        let (sql, slots) = sql_text::rewrite(query, &names, style_of(self.driver()));
        let binds = params
            .iter()
            .map(|(n, v)| {
                Bind::from_json(v, None)
                    .map_err(|e| SourceError::new(SourceErrorKind::Rejected, format!("`{n}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sql: Arc<str> = sql.into();
        let mut rows = self
            .run(&sql, slots.iter().map(|&i| &binds[i]), true, 1)
            .await
            .map_err(|e| {
                let (kind, detail, _) = classify(e);
                SourceError::new(kind, detail)
            })?;
        Ok(rows.pop())
    }
}

/// Pool settings shared by the drivers.
#[derive(Debug, Clone)]
struct PoolSettings {
    size: u32,
    acquire_timeout: Duration,
    // SQLite has none (the validator rejects it there).
    #[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
    statement_timeout: Option<Duration>,
    /// `max_lifetime` / the original's `pool_recycle`.
    max_lifetime: Option<Duration>,
}

impl PoolSettings {
    /// sqlx pool options: connections are kept until they fail, or until `max_lifetime` when
    /// set (no idle reaping, so no background task is needed and the pool can be built outside
    /// a runtime; an in-memory SQLite database lives as long as its pool).
    fn options<DB: sqlx::Database>(&self) -> sqlx::pool::PoolOptions<DB> {
        sqlx::pool::PoolOptions::new()
            .max_connections(self.size)
            .acquire_timeout(self.acquire_timeout)
            .idle_timeout(None)
            .max_lifetime(self.max_lifetime)
    }
}

/// Runs a bound query: its first row when `one`, every row otherwise, failing as soon as there
/// are more than `max_rows` (the rest is never read).
///
/// When the caller stops waiting (the source's timeout, a client gone) or the rows are cut at
/// `max_rows`, the connection is taken out of the pool and dropped instead of returned:
/// returning it would wait for the abandoned statement to finish first, and the pool would
/// stay short of a connection meanwhile.
async fn fetch<'q, DB>(
    pool: &sqlx::Pool<DB>,
    query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    one: bool,
    max_rows: usize,
) -> Result<Vec<DB::Row>, RunError>
where
    DB: sqlx::Database,
    <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    use futures::TryStreamExt as _;
    let mut conn = CutOff(Some(pool.acquire().await?));
    let Some(c) = conn.0.as_deref_mut() else {
        unreachable!("set just above")
    };
    let rows = if one {
        (query.fetch_optional(c).await)
            .map(|r| r.into_iter().collect())
            .map_err(RunError::from)
    } else {
        let mut rows = Vec::new();
        let mut stream = query.fetch(c);
        loop {
            match stream.try_next().await {
                Ok(Some(_)) if rows.len() == max_rows => {
                    break Err(RunError::TooManyRows(max_rows));
                }
                Ok(Some(row)) => rows.push(row),
                Ok(None) => break Ok(rows),
                Err(e) => break Err(e.into()),
            }
        }
    };
    // Rows left unread keep the statement running: that connection leaves the pool too.
    if !matches!(rows, Err(RunError::TooManyRows(_))) {
        conn.finish();
    }
    rows
}

/// A pooled connection with a statement running on it: dropped before [`CutOff::finish`], it
/// leaves the pool (which opens a new one when needed) and is closed.
struct CutOff<DB: sqlx::Database>(Option<sqlx::pool::PoolConnection<DB>>);

impl<DB: sqlx::Database> CutOff<DB> {
    /// The statement is over: the connection goes back to the pool.
    fn finish(mut self) {
        drop(self.0.take());
    }
}

impl<DB: sqlx::Database> Drop for CutOff<DB> {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(conn.detach());
        }
    }
}

/// Fails at once with `Unavailable` when the pool has no connection and the database's TCP
/// port refuses connections: sqlx would retry until the acquire timeout, so a database that
/// is down would hold every request for that long. A pool with a live connection, a Unix
/// socket and a slow network are left to sqlx.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn refused(
    socket: Option<&std::path::PathBuf>,
    host: &str,
    port: u16,
) -> Result<(), RunError> {
    if socket.is_some() || host.starts_with('/') {
        return Ok(());
    }
    match tokio::net::TcpStream::connect((host, port)).await {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(RunError::Sqlx(sqlx::Error::Io(e)))
        }
        _ => Ok(()),
    }
}

/// One decoded row, columns in select order.
pub(crate) type Row = Map<String, Value>;

/// A failed statement.
#[derive(Debug)]
enum RunError {
    Sqlx(sqlx::Error),
    /// The query returned more rows than the operation's `max_rows`.
    TooManyRows(usize),
    /// A column whose type has no JSON form (SQLite has a JSON form for everything).
    #[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
    Column {
        column: String,
        type_name: String,
        message: String,
    },
}

impl From<sqlx::Error> for RunError {
    fn from(e: sqlx::Error) -> Self {
        Self::Sqlx(e)
    }
}

/// Builds the `database` source for each config version and domain scope. Registered by
/// [`Registry::new`](super::Registry::new) when a driver feature is on; register your own to
/// hand over pools the host already has:
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use api_orchestrator::source::{Registry, sql::SqlFactory};
///
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
/// let mut registry = Registry::new();
/// registry.register_factory("database", SqlFactory::new().with_pool("default", pool));
/// # Ok(()) }
/// ```
///
/// Pools are shared by every user of one factory (the `database` source and the Feast database
/// fallback of the same registry) and by every domain scope whose connection has the same URL
/// and pool settings.
#[derive(Debug, Clone, Default)]
pub struct SqlFactory {
    provided: HashMap<String, Tracked>,
    pools: Arc<std::sync::Mutex<HashMap<PoolKey, Tracked>>>,
}

/// A pool with the name it was first built for and the queries in flight on it (for the
/// metrics' pool gauges).
#[derive(Debug, Clone)]
struct Tracked {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    name: Arc<str>,
    pool: SqlPool,
    queries: Arc<std::sync::atomic::AtomicUsize>,
}

impl Tracked {
    fn new(name: &str, pool: SqlPool) -> Self {
        Self {
            name: name.into(),
            pool,
            queries: Arc::default(),
        }
    }
}

/// What makes two connections the same pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    url: crate::plan::Secret,
    /// In-memory SQLite databases are private to their connection name.
    memory_name: Option<String>,
    size: Option<u32>,
    acquire_timeout: Option<Duration>,
    statement_timeout: Option<Duration>,
    max_lifetime: Option<Duration>,
}

impl SqlFactory {
    /// Builds a pool per connection from `database.yaml`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The pool for connection `name`: the host's, an existing one with the same settings, or
    /// a new lazy one.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn pool(&self, name: &str, conn: &DbConnection) -> Result<SqlPool, SourceError> {
        self.tracked(name, conn).map(|t| t.pool)
    }

    fn tracked(&self, name: &str, conn: &DbConnection) -> Result<Tracked, SourceError> {
        if let Some(pool) = self.provided.get(name) {
            return Ok(pool.clone());
        }
        let key = PoolKey {
            url: conn.url.clone(),
            memory_name: conn
                .url
                .expose()
                .contains(":memory:")
                .then(|| name.to_owned()),
            size: conn.pool_size,
            acquire_timeout: conn.acquire_timeout,
            statement_timeout: conn.statement_timeout,
            max_lifetime: conn.max_lifetime,
        };
        let mut pools = self
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(pool) = pools.get(&key) {
            return Ok(pool.clone());
        }
        let pool = Tracked::new(name, SqlPool::connect_lazy(name, conn)?);
        pools.insert(key, pool.clone());
        Ok(pool)
    }

    /// Uses `pool` for every connection named `connection` (in every domain scope) instead of
    /// building one from its URL. The connection must still be declared in `database.yaml`;
    /// its pool settings are then the host pool's.
    #[must_use]
    pub fn with_pool(mut self, connection: impl Into<String>, pool: impl Into<SqlPool>) -> Self {
        let connection = connection.into();
        let pool = Tracked::new(&connection, pool.into());
        self.provided.insert(connection, pool);
        self
    }
}

#[cfg(feature = "metrics")]
impl crate::telemetry::metrics::Probe for SqlFactory {
    fn pools(&self, out: &mut Vec<crate::telemetry::metrics::PoolStats>) {
        let built = self
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for t in self.provided.values().chain(built.values()) {
            let (size, idle) = t.pool.connections();
            out.push(crate::telemetry::metrics::PoolStats {
                name: t.name.clone(),
                size,
                idle,
                queries: t.queries.load(std::sync::atomic::Ordering::Relaxed),
            });
        }
    }
}

impl SourceFactory for SqlFactory {
    fn build(&self, integrations: &Integrations) -> Result<Arc<dyn DataSource>, SourceError> {
        let db = &integrations.database;
        let mut connections = HashMap::with_capacity(db.sources.len());
        for (name, conn) in &db.sources {
            let Tracked { pool, queries, .. } = self.tracked(name, conn)?;
            connections.insert(
                name.as_str(),
                Arc::new(Connection {
                    name: name.as_str().into(),
                    pool,
                    queries,
                    log_parameters: conn.log_parameters,
                }),
            );
        }
        let mut operations = HashMap::with_capacity(db.operations.len());
        for (name, op) in &db.operations {
            let conn = match &op.source_id {
                Some(id) => connections.get(id.as_str()),
                None => connections.values().next(),
            };
            let Some(conn) = conn else {
                // The validator rejects this; a plan built by hand may still get here.
                return Err(SourceError::new(
                    SourceErrorKind::Config,
                    format!("operation `{name}` names no known database connection"),
                ));
            };
            let names: Vec<&str> = op.params.iter().map(|p| p.name.as_str()).collect();
            let (sql, slots) = sql_text::rewrite(&op.query, &names, style_of(conn.pool.driver()));
            operations.insert(
                name.clone(),
                Statement {
                    name: name.as_str().into(),
                    connection: conn.clone(),
                    sql: sql.into(),
                    slots,
                    params: op.params.clone(),
                    return_type: op.return_type,
                    columns: op.columns.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                    max_rows: op.max_rows.unwrap_or(DbOperation::DEFAULT_MAX_ROWS),
                    batch: op.batch.as_ref().and_then(|b| {
                        Some(Batch {
                            query: op.query.clone(),
                            at: op.params.iter().position(|p| p.name == b.param)?,
                            key: b.key.clone(),
                            expanded: Mutex::default(),
                        })
                    }),
                },
            );
        }
        Ok(Arc::new(SqlSource { operations }))
    }
}

fn style_of(driver: SqlDriver) -> Style {
    match driver {
        SqlDriver::Postgres => Style::Dollar,
        SqlDriver::Sqlite => Style::NumberedQuestion,
        SqlDriver::MySql => Style::Question,
    }
}

struct Connection {
    name: Arc<str>,
    pool: SqlPool,
    /// Queries in flight on the pool (shared by every connection on it).
    queries: Arc<std::sync::atomic::AtomicUsize>,
    log_parameters: bool,
}

/// The database semantic-convention attributes of a query's client span: the system, the
/// operation's name and its SQL (placeholders, never values); the bound values only with
/// `log_parameters: true`.
#[cfg(feature = "otel")]
fn db_attributes(
    span: &crate::telemetry::otel::SpanRef<'_>,
    st: &Statement,
    driver: SqlDriver,
    binds: Option<&Vec<Bind>>,
) {
    use opentelemetry::KeyValue;
    let system = match driver {
        SqlDriver::Sqlite => "sqlite",
        SqlDriver::Postgres => "postgresql",
        SqlDriver::MySql => "mysql",
    };
    span.set_attributes([
        KeyValue::new("db.system.name", system),
        KeyValue::new("db.operation.name", st.name.to_string()),
        KeyValue::new("db.query.text", st.sql.to_string()),
        KeyValue::new("orchestrator.db.connection", st.connection.name.to_string()),
    ]);
    if let Some(binds) = binds {
        for (p, b) in st.params.iter().zip(binds) {
            span.set_attribute(KeyValue::new(
                format!("db.query.parameter.{}", p.name),
                format!("{b:?}"),
            ));
        }
    }
}

/// Counts a query in flight until dropped.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(n: &'a std::sync::atomic::AtomicUsize) -> Self {
        n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// An operation ready to run: driver SQL and the param index bound to each placeholder slot.
struct Statement {
    name: Arc<str>,
    connection: Arc<Connection>,
    sql: Arc<str>,
    slots: Vec<usize>,
    params: Vec<DbParam>,
    return_type: ReturnType,
    columns: Vec<(String, SqlType)>,
    max_rows: usize,
    /// For `batch: {param, key}`: how a list of keys runs.
    batch: Option<Batch>,
}

/// How a `batch: {param, key}` operation runs a list of keys: its list parameter expanded
/// into one placeholder per key.
struct Batch {
    /// The query as written.
    query: String,
    /// The list parameter's position among the operation's params.
    at: usize,
    /// The column rows are matched back to their keys by.
    key: String,
    /// The driver SQL and placeholder slots for each list length met so far (a source's
    /// batches mostly share one length), up to [`Batch::LENGTHS_KEPT`] of them.
    expanded: Mutex<HashMap<usize, Arc<Expanded>>>,
}

/// A batch query for one list length: driver SQL, and the bind index of each placeholder
/// (the other params first, then the keys).
struct Expanded {
    sql: Arc<str>,
    slots: Vec<usize>,
}

impl Batch {
    /// How many list lengths keep their expanded SQL.
    const LENGTHS_KEPT: usize = 32;

    /// The query for `n` keys, the operation's params being `params`.
    fn expanded(&self, params: &[DbParam], n: usize, style: Style) -> Arc<Expanded> {
        let list = params[self.at].name.as_str();
        let mut kept = self.expanded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = kept.get(&n) {
            return e.clone();
        }
        let mut names: Vec<String> = params
            .iter()
            .filter(|p| p.name != list)
            .map(|p| p.name.clone())
            .collect();
        names.extend((0..n).map(|i| sql_text::element_name(list, i)));
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let (sql, slots) =
            sql_text::rewrite(&sql_text::expand(&self.query, list, n), &names, style);
        let e = Arc::new(Expanded {
            sql: sql.into(),
            slots,
        });
        if kept.len() < Self::LENGTHS_KEPT {
            kept.insert(n, e.clone());
        }
        e
    }
}

/// The `database` source of one config version and scope.
struct SqlSource {
    operations: HashMap<String, Statement>,
}

impl SqlSource {
    /// `rows` with the operation's `columns:` conversions applied.
    fn converted(
        &self,
        st: &Statement,
        mut rows: Vec<Row>,
        fail: &dyn Fn(SourceErrorKind, String) -> SourceError,
    ) -> Result<Vec<Row>, SourceError> {
        for row in &mut rows {
            for (column, ty) in &st.columns {
                if let Some(v) = row.get_mut(column) {
                    value::convert_column(v, *ty).map_err(|e| {
                        fail(
                            SourceErrorKind::InvalidResponse,
                            format!("column `{column}` declared `{}`: {e}", ty.as_str()),
                        )
                    })?;
                }
            }
        }
        Ok(rows)
    }
}

/// A batch's rows as one result per key, in the keys' order, shaped as a call of its own
/// would return it.
fn per_key(return_type: ReturnType, key: &str, keys: &[Bind], rows: Vec<Row>) -> Value {
    let mut groups: HashMap<String, Vec<Row>> = HashMap::new();
    for row in rows {
        if let Some(k) = row.get(key).and_then(key_text) {
            groups.entry(k).or_default().push(row);
        }
    }
    let found = groups
        .into_iter()
        .map(|(k, rows)| {
            let shaped = match return_type {
                ReturnType::List => Value::Array(rows.into_iter().map(Value::Object).collect()),
                ReturnType::Single => rows.into_iter().next().map_or(Value::Null, Value::Object),
                ReturnType::Value => rows
                    .into_iter()
                    .next()
                    .and_then(|r| r.into_iter().next())
                    .map_or(Value::Null, |(_, v)| v),
            };
            (k, shaped)
        })
        .collect();
    let keys = keys.iter().map(|k| k.as_json().as_ref().and_then(key_text));
    Value::Array(in_key_order(keys, found, || match return_type {
        ReturnType::List => Value::Array(Vec::new()),
        ReturnType::Single | ReturnType::Value => Value::Null,
    }))
}

#[async_trait::async_trait]
impl DataSource for SqlSource {
    async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
        let name = call.operation.unwrap_or_default();
        let st = self.operations.get(name).ok_or_else(|| {
            SourceError::new(
                SourceErrorKind::Config,
                format!("unknown database operation `{name}`"),
            )
        })?;
        let conn = &st.connection;
        let fail = |kind, detail: String| {
            SourceError::new(
                kind,
                format!(
                    "operation `{}` on connection `{}`: {detail}",
                    st.name, conn.name
                ),
            )
        };
        let bind = |p: &DbParam, v: &Value| {
            Bind::from_json(v, p.ty).map_err(|e| {
                fail(
                    SourceErrorKind::Rejected,
                    format!("parameter `{}`: {e}", p.name),
                )
                .with_param(&p.name)
            })
        };
        // A list for a batch operation's list parameter: one lookup for each of its values.
        if let Some(batch) = &st.batch
            && let Some(Value::Array(values)) = call.params.get(&st.params[batch.at].name)
        {
            let list = &st.params[batch.at];
            let keys = values
                .iter()
                .map(|v| bind(list, v))
                .collect::<Result<Vec<_>, _>>()?;
            if keys.is_empty() {
                return Ok(Value::Array(Vec::new()));
            }
            // The other params first, then the keys: the order `Batch::expanded` names them.
            let mut binds: Vec<Bind> = Vec::with_capacity(st.params.len() + keys.len());
            for (i, p) in st.params.iter().enumerate() {
                if i != batch.at {
                    binds.push(bind(p, call.params.get(&p.name).unwrap_or(&Value::Null))?);
                }
            }
            binds.extend(keys.iter().cloned());
            let query = batch.expanded(&st.params, keys.len(), style_of(conn.pool.driver()));
            let _in_flight = InFlight::new(&conn.queries);
            let rows = conn
                .pool
                .run(
                    &query.sql,
                    query.slots.iter().map(|&i| &binds[i]),
                    false,
                    st.max_rows,
                )
                .await
                .map_err(|e| {
                    let (kind, detail, cause) = classify(e);
                    let err = fail(kind, detail);
                    match cause {
                        Some(cause) => err.with_cause(cause),
                        None => err,
                    }
                })?;
            let rows = self.converted(st, rows, &fail)?;
            return Ok(per_key(st.return_type, &batch.key, &keys, rows));
        }
        let binds = st
            .params
            .iter()
            .map(|p| bind(p, call.params.get(&p.name).unwrap_or(&Value::Null)))
            .collect::<Result<Vec<_>, _>>()?;

        #[cfg(feature = "otel")]
        crate::telemetry::otel::annotate(|span| {
            db_attributes(
                span,
                st,
                conn.pool.driver(),
                conn.log_parameters.then_some(&binds),
            );
        });
        let one = st.return_type != ReturnType::List;
        let args = st.slots.iter().map(|&i| &binds[i]);
        let _in_flight = InFlight::new(&conn.queries);
        let query = conn.pool.run(&st.sql, args, one, st.max_rows);
        // A span costs to build and to record into even when nobody listens: only at DEBUG.
        let span = tracing::enabled!(tracing::Level::DEBUG).then(|| {
            let span = tracing::debug_span!(
                "sql",
                operation = %st.name,
                connection = %conn.name,
                rows = tracing::field::Empty,
                duration_us = tracing::field::Empty,
                params = tracing::field::Empty,
            );
            if conn.log_parameters {
                span.record("params", tracing::field::debug(&binds));
            }
            span
        });
        let result = match &span {
            Some(span) => {
                let start = std::time::Instant::now();
                let result = query.instrument(span.clone()).await;
                span.record("duration_us", start.elapsed().as_micros() as u64);
                result
            }
            None => query.await,
        };
        let rows = match result {
            Ok(rows) => rows,
            Err(e) => {
                let (kind, detail, cause) = classify(e);
                if let Some(span) = &span {
                    tracing::debug!(parent: span, error = %detail, "query failed");
                }
                let err = fail(kind, detail);
                return Err(match cause {
                    Some(cause) => err.with_cause(cause),
                    None => err,
                });
            }
        };
        if let Some(span) = &span {
            span.record("rows", rows.len());
        }
        let mut rows = self.converted(st, rows, &fail)?;
        Ok(match st.return_type {
            ReturnType::List => Value::Array(rows.into_iter().map(Value::Object).collect()),
            ReturnType::Single => rows.pop().map_or(Value::Null, Value::Object),
            ReturnType::Value => rows
                .pop()
                .and_then(|r| r.into_iter().next())
                .map_or(Value::Null, |(_, v)| v),
        })
    }
}

/// The kind of a failure, a message for logs and traces, and the sqlx error as the cause.
fn classify(e: RunError) -> (SourceErrorKind, String, Option<sqlx::Error>) {
    use SourceErrorKind as K;
    let e = match e {
        RunError::Sqlx(e) => e,
        RunError::Column {
            column,
            type_name,
            message,
        } => {
            return (
                K::InvalidResponse,
                format!("column `{column}` of type `{type_name}`: {message}"),
                None,
            );
        }
        RunError::TooManyRows(max) => {
            return (
                K::InvalidResponse,
                format!(
                    "the query returned more than {max} rows (raise the operation's `max_rows` if that many are meant)"
                ),
                None,
            );
        }
    };
    let kind = match &e {
        sqlx::Error::PoolTimedOut => {
            return (
                K::Unavailable,
                "no connection became free within the acquire timeout (pool exhausted, or the database is unreachable)".into(),
                Some(e),
            );
        }
        sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => K::Unavailable,
        sqlx::Error::Database(db) => database_error_kind(db.as_ref()),
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::TypeNotFound { .. } => K::InvalidResponse,
        sqlx::Error::Encode(_) | sqlx::Error::InvalidArgument(_) => K::Rejected,
        sqlx::Error::Configuration(_) => K::Config,
        _ => K::Internal,
    };
    (kind, e.to_string(), Some(e))
}

/// Statement timeouts are [`SourceErrorKind::Timeout`]; lost connections, server overload and
/// lock contention are [`SourceErrorKind::Unavailable`]; the rest (syntax, constraints, types)
/// are [`SourceErrorKind::Rejected`].
fn database_error_kind(db: &dyn sqlx::error::DatabaseError) -> SourceErrorKind {
    use SourceErrorKind as K;
    let code = db.code().unwrap_or_default();
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return match my.number() {
            // ER_QUERY_TIMEOUT (MySQL), ER_STATEMENT_TIMEOUT (MariaDB)
            3024 | 1969 => K::Timeout,
            // too many connections, lock wait timeout, deadlock, server shutdown
            1040 | 1205 | 1213 | 1053 | 2006 | 2013 => K::Unavailable,
            _ => K::Rejected,
        };
    }
    #[cfg(feature = "sqlite")]
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // SQLITE_BUSY and SQLITE_LOCKED, with their extended codes (low byte 5 or 6), and
        // SQLITE_CANTOPEN (14): the file may be back (a volume remounted, a permission fixed).
        return match code.parse::<i32>().map(|c| c & 0xff) {
            Ok(5 | 6 | 14) => K::Unavailable,
            _ => K::Rejected,
        };
    }
    match code.as_ref() {
        // query_canceled (statement_timeout)
        "57014" => K::Timeout,
        // connection exceptions, insufficient resources, operator intervention, lock timeout
        c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") => K::Unavailable,
        "55P03" | "40P01" | "40001" => K::Unavailable,
        _ => K::Rejected,
    }
}
