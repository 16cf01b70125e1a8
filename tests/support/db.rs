//! Real databases for the SQL suites: SQLite in memory and in a file (always), PostgreSQL and
//! MariaDB/MySQL when their environment variable holds a URL.
//!
//! Every [`TestDb`] is private to one test: a fresh SQLite database, a PostgreSQL schema or a
//! MySQL database with a unique name, dropped again when [`TestDb::run`] returns, also after a
//! failed assertion.

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use api_orchestrator::source::sql::{SqlFactory, SqlPool};
use futures::FutureExt as _;
use sqlx::{AssertSqlSafe, Executor as _};

/// `postgres://…` of a server the PostgreSQL suite may create schemas in.
pub const POSTGRES_ENV: &str = "ORCHESTRATOR_TEST_POSTGRES_URL";
/// `mysql://…` of a server the MySQL/MariaDB suite may create databases in.
pub const MYSQL_ENV: &str = "ORCHESTRATOR_TEST_MYSQL_URL";

/// How long a configured server may take to accept the first connection.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite::memory:`, seeded through the pool handed to the engine.
    SqliteMemory,
    /// A SQLite file in a temporary directory.
    SqliteFile,
    /// PostgreSQL from [`POSTGRES_ENV`].
    Postgres,
    /// MySQL or MariaDB from [`MYSQL_ENV`].
    MySql,
}

/// A database private to one test.
#[derive(Debug)]
pub struct TestDb {
    /// Which backend.
    pub backend: Backend,
    /// The URL to write into `database.yaml`.
    pub url: String,
    /// Unique name of this test's schema / database / file.
    pub name: String,
    /// Seeds and inspects the database (the engine's own pool for in-memory SQLite).
    pub admin: SqlPool,
    bootstrap: Option<SqlPool>,
    _dir: Option<tempfile::TempDir>,
}

fn unique_name() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "orch_t{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        nanos % 1_000_000
    )
}

/// Prints `skipped: <what>` on one line. Straight to stderr: the test harness captures
/// `eprintln!` of passing tests.
pub fn skipped(what: &str) {
    let _ = writeln!(std::io::stderr(), "skipped: {what}");
}

/// The URL in `var`, or `None` after printing one line that says what was skipped and how to
/// run it.
pub fn server_url(var: &str, suite: &str, example: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            skipped(&format!(
                "the {suite} suite (set {var}={example} to run it)"
            ));
            None
        }
    }
}

impl TestDb {
    /// A fresh database, or `None` when the backend's server is not configured.
    pub async fn open(backend: Backend) -> Option<Self> {
        let name = unique_name();
        Some(match backend {
            Backend::SqliteMemory => {
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(4)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect("sqlite::memory:")
                    .await
                    .expect("in-memory SQLite");
                Self {
                    backend,
                    url: "sqlite::memory:".into(),
                    name,
                    admin: pool.into(),
                    bootstrap: None,
                    _dir: None,
                }
            }
            Backend::SqliteFile => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join(format!("{name}.db"));
                let url = format!("sqlite:{}", path.display());
                let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
                    .await
                    .expect("SQLite file");
                Self {
                    backend,
                    url,
                    name,
                    admin: pool.into(),
                    bootstrap: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let base = server_url(
                    POSTGRES_ENV,
                    "PostgreSQL",
                    "postgres://postgres@127.0.0.1:5432/test",
                )?;
                let boot = sqlx::postgres::PgPoolOptions::new()
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect(&base)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{POSTGRES_ENV}={base} is set but unreachable: {e}")
                    });
                boot.execute(AssertSqlSafe(format!("CREATE SCHEMA {name}")))
                    .await
                    .expect("create schema");
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
                let admin = sqlx::PgPool::connect(&url)
                    .await
                    .expect("schema connection");
                Self {
                    backend,
                    url,
                    name,
                    admin: admin.into(),
                    bootstrap: Some(boot.into()),
                    _dir: None,
                }
            }
            Backend::MySql => {
                let base = server_url(
                    MYSQL_ENV,
                    "MySQL/MariaDB",
                    "mysql://root@127.0.0.1:3306/test",
                )?;
                let boot = sqlx::mysql::MySqlPoolOptions::new()
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect(&base)
                    .await
                    .unwrap_or_else(|e| panic!("{MYSQL_ENV}={base} is set but unreachable: {e}"));
                boot.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .expect("create database");
                let (server, query) = match base.split_once('?') {
                    Some((s, q)) => (s, format!("?{q}")),
                    None => (base.as_str(), String::new()),
                };
                let server = server.rsplit_once('/').map_or(server, |(s, _)| s);
                let url = format!("{server}/{name}{query}");
                let admin = sqlx::MySqlPool::connect(&url)
                    .await
                    .expect("database connection");
                Self {
                    backend,
                    url,
                    name,
                    admin: admin.into(),
                    bootstrap: Some(boot.into()),
                    _dir: None,
                }
            }
        })
    }

    /// Runs `body` against this database, then drops the database even if `body` panicked.
    pub async fn run(self, body: impl AsyncFnOnce(&TestDb)) {
        let outcome = std::panic::AssertUnwindSafe(body(&self))
            .catch_unwind()
            .await;
        self.close().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    /// Runs each statement of `sql` (separated by `;` at line ends) on the admin pool.
    pub async fn exec(&self, sql: &str) {
        for statement in sql.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
            let statement = statement.trim_end_matches(';').to_owned();
            let result = match &self.admin {
                SqlPool::Sqlite(p) => p.execute(AssertSqlSafe(statement.clone())).await.map(drop),
                SqlPool::Postgres(p) => p.execute(AssertSqlSafe(statement.clone())).await.map(drop),
                SqlPool::MySql(p) => p.execute(AssertSqlSafe(statement.clone())).await.map(drop),
                other => panic!("unexpected pool {other:?}"),
            };
            if let Err(e) = result {
                panic!("{:?}: {statement}\n{e}", self.backend);
            }
        }
    }

    /// Counts the rows of `table`, through the admin pool (not through the engine).
    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match &self.admin {
            SqlPool::Sqlite(p) => sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(p).await,
            SqlPool::Postgres(p) => sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(p).await,
            SqlPool::MySql(p) => sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(p).await,
            other => panic!("unexpected pool {other:?}"),
        }
        .unwrap_or_else(|e| panic!("{:?}: count {table}: {e}", self.backend))
    }

    /// The `database` source factory for this database: in-memory SQLite hands over the pool
    /// the test seeded; the others build theirs from the URL in `database.yaml`.
    pub fn factory(&self) -> SqlFactory {
        match self.backend {
            Backend::SqliteMemory => SqlFactory::new().with_pool("default", self.admin.clone()),
            _ => SqlFactory::new(),
        }
    }

    /// Which SQL dialect to write DDL in.
    pub fn is(&self, backend: Backend) -> bool {
        self.backend == backend
    }

    /// Drops the schema or database and closes the pools.
    async fn close(&self) {
        match (&self.bootstrap, self.backend) {
            (Some(SqlPool::Postgres(p)), _) => {
                let _ = p
                    .execute(AssertSqlSafe(format!("DROP SCHEMA {} CASCADE", self.name)))
                    .await;
                p.close().await;
            }
            (Some(SqlPool::MySql(p)), _) => {
                let _ = p
                    .execute(AssertSqlSafe(format!("DROP DATABASE {}", self.name)))
                    .await;
                p.close().await;
            }
            _ => {}
        }
        match &self.admin {
            SqlPool::Sqlite(p) => p.close().await,
            SqlPool::Postgres(p) => p.close().await,
            SqlPool::MySql(p) => p.close().await,
            _ => {}
        }
    }
}
