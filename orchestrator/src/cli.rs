//! What the `api-orchestrator` binary does (feature `cli`), for hosts that want the same from
//! code: check a config directory, record its schema snapshot, print its OpenAPI document,
//! and serve it.
//!
//! ```text
//! cargo install api-orchestrator --features cli
//! api-orchestrator check   CONFIG_DIR                 # diagnostics, then the endpoints and their DAGs
//! api-orchestrator prepare CONFIG_DIR [--check]       # write (or compare) .orchestrator/schema.json
//! api-orchestrator openapi CONFIG_DIR                 # the OpenAPI 3.1 document, on stdout
//! api-orchestrator serve   CONFIG_DIR [--bind ADDR]   # serve it, reloading on edits
//! api-orchestrator schema  [--file PATH]              # the config format's JSON Schema, for editors
//! ```
//!
//! Exit codes: 0 on success, 1 when the config (or the snapshot) has an error, 2 when a
//! directory cannot be read or the command line is wrong.
//!
//! [`serve`] honours the serving settings of `config.yaml` (the original Python service's
//! keys): `app.api_base_path` (the mount prefix, `/api` by default), `server.host` / `port` /
//! `workers`, `logging` (level, `format: json|text`, a rotating file), `cors`,
//! `performance.response_compression` and `auth`; and `telemetry:` (OpenTelemetry traces
//! over OTLP/HTTP when an endpoint is configured or `OTEL_EXPORTER_OTLP_ENDPOINT` is set,
//! Prometheus metrics at `/metrics` unless `telemetry.metrics: false`). Beside the plans it
//! answers `GET /health`, and the operator routes below `<base>/admin` (keep the listener
//! private, or put authentication in front of it).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigFiles, LoadError, Loader};
use crate::plan::{LogFormat, LogRotation, Plan, Settings};
use crate::snapshot::{SNAPSHOT_FILE, Snapshot, Sources};
use crate::telemetry::{Metrics, Tracing};
use crate::web::{Api, ClientAddr, layers};
use crate::{Orchestrator, OrchestratorBuilder};

/// An error of [`serve`] or [`logging`], for the operator.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Looks up `${env:NAME}` references; the process environment by default.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Loads `dir` and prints its diagnostics (exit 1 on an error, 2 when it cannot be read), or
/// its warnings and then each endpoint with its routes and source DAG (exit 0).
pub fn check(dir: &Path, loader: &Loader) -> ExitCode {
    match loader.load_dir(dir) {
        Ok(plan) => {
            if !plan.warnings().is_empty() {
                eprintln!("{}\n", plan.warnings());
            }
            print!("{}", describe(&plan));
            let against = if plan.snapshot.is_some() {
                " (mappings checked against .orchestrator/schema.json)"
            } else {
                ""
            };
            println!(
                "ok: {} endpoint(s) in `{}`{against}",
                plan.endpoints.len(),
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => failed(e),
    }
}

/// Prints the OpenAPI 3.1 document of `dir`'s endpoints (exit 1 when the config has an error).
pub fn openapi(dir: &Path, loader: &Loader) -> ExitCode {
    match loader.load_dir(dir) {
        Ok(plan) => {
            let doc = crate::web::openapi::document(&plan);
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => failed(e),
    }
}

/// Prints the JSON Schema of the config files ([`crate::config::json_schema`]), or of the one
/// at `file` (a path in a config directory, `domains/shop.yaml`); exit 2 for a path the
/// loader reads no file at.
///
/// For VS Code's YAML extension (yaml-language-server), write it next to the config and map
/// it in `.vscode/settings.json`:
///
/// ```text
/// api-orchestrator schema > config/.orchestrator/config.schema.json
/// "yaml.schemas": { "config/.orchestrator/config.schema.json": "config/**/*.yaml" }
/// ```
pub fn schema(file: Option<&str>) -> ExitCode {
    let doc = match file {
        None => crate::config::json_schema(),
        Some(path) => match crate::config::json_schema_for(path.trim_start_matches("./")) {
            Some(doc) => doc,
            None => {
                eprintln!(
                    "error: the loader reads no file at `{path}`: config files are config.yaml, database.yaml, domains/<domain>.yaml, domains/<domain>/database.yaml and integrations/{{api_sources,feast_config,ml_config}}.yaml (also under domains/<domain>/)"
                );
                return ExitCode::from(2);
            }
        },
    };
    println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    ExitCode::SUCCESS
}

/// One block per endpoint: description, routes, then each source with the sources it waits
/// for.
pub fn describe(plan: &Plan) -> String {
    let mut out = String::new();
    for e in &plan.endpoints {
        let file = e.origin.file.as_deref().unwrap_or("(code)");
        out += &format!("{} ({file})\n", e.name);
        if let Some(d) = &e.description {
            out += &format!("  {d}\n");
        }
        for r in e.routes() {
            out += &format!("  route   {r}\n");
        }
        let deps = e.dependencies();
        for (s, deps) in e.sources.iter().zip(&deps) {
            let op = s.operation.as_deref().unwrap_or("-");
            let after: Vec<&str> = deps.iter().map(|&i| e.sources[i].name.as_str()).collect();
            let after = if after.is_empty() {
                String::new()
            } else {
                format!("  after {}", after.join(", "))
            };
            let cond = if s.condition.is_some() {
                "  (conditional)"
            } else {
                ""
            };
            out += &format!("  source  {:<20} {:<9} {op}{after}{cond}\n", s.name, s.kind);
        }
        let response = match (&e.response_mapping, &e.primary_source) {
            (Some(_), _) => "response_mapping".to_owned(),
            (None, Some(p)) => format!("result of `{p}`"),
            (None, None) => "result of the only source".to_owned(),
        };
        out += &format!("  returns {response}\n\n");
    }
    out
}

/// Loads the config at `dir` without its committed snapshot (which may be the stale thing
/// being replaced), asks its sources what they return, writes `.orchestrator/schema.json`
/// (or, with `compare`, tells how the committed one differs: exit 1), then checks the config
/// against what the sources answered (exit 1 on an error). Exit 2 when the directory cannot
/// be read or written.
pub async fn prepare(dir: &Path, loader: &Loader, compare: bool) -> ExitCode {
    let mut files = match loader.read_dir(dir) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let committed = files.remove(SNAPSHOT_FILE);
    let plan = match loader.load(&files) {
        Ok(plan) => plan,
        Err(e) => return failed(e),
    };
    let live = match crate::prepare::prepare(&plan).await {
        Ok(p) => {
            for s in &p.skipped {
                eprintln!("note: not recorded: {s}");
            }
            p.snapshot
        }
        Err(d) => {
            eprintln!("{d}");
            return ExitCode::from(1);
        }
    };
    let path = dir.join(SNAPSHOT_FILE);
    let text = live.to_json();
    if compare {
        let Some(old) = committed else {
            eprintln!(
                "error: `{}` does not exist; write it with `prepare` (without `--check`) and commit it",
                path.display()
            );
            return ExitCode::from(1);
        };
        let differences = match Snapshot::from_json(&old) {
            Ok(old) => crate::prepare::differences(&old, &live),
            Err(why) => vec![format!("the committed snapshot cannot be read: {why}")],
        };
        if !differences.is_empty() {
            eprintln!("error: `{}` differs from the live sources:", path.display());
            for d in &differences {
                eprintln!("  - {d}");
            }
            eprintln!("help: run `prepare` to record the sources as they are now, then commit it");
            return ExitCode::from(1);
        }
        println!("ok: `{}` matches the live sources", path.display());
    } else {
        let written = std::fs::create_dir_all(dir.join(".orchestrator"))
            .and_then(|()| std::fs::write(&path, &text));
        if let Err(e) = written {
            eprintln!("error: cannot write `{}`: {e}", path.display());
            return ExitCode::from(2);
        }
        let count = |s: &Sources| s.database.len() + s.ml.len() + s.feast.len() + s.api.len();
        let n = count(&live.sources) + live.domains.values().map(count).sum::<usize>();
        println!("wrote `{}`: {n} source operation(s)", path.display());
    }
    files.insert(SNAPSHOT_FILE, text);
    match loader.load(&files) {
        Ok(plan) => {
            if !plan.warnings().is_empty() {
                eprintln!("{}", plan.warnings());
            }
            println!(
                "ok: the {} endpoint(s) of `{}` agree with the sources",
                plan.endpoints.len(),
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => failed(e),
    }
}

/// Exit 1 for an invalid config (its diagnostics printed), 2 for one that cannot be read.
fn failed(e: LoadError) -> ExitCode {
    match e {
        LoadError::Invalid(d) => {
            eprintln!("{d}");
            ExitCode::from(1)
        }
        e => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The serving settings of `dir`'s `config.yaml` alone (how to log, how many workers),
/// before the whole config is loaded.
pub fn settings(dir: &Path, env: &Env) -> Result<Settings, Error> {
    let env = env.clone();
    let settings = ConfigFiles::read_dir(dir)
        .and_then(|files| Loader::new().with_env(move |n| env(n)).settings(&files))
        .map_err(|e| format!("cannot serve `{}`:\n{e}", dir.display()))?;
    Ok(settings)
}

/// Installs a `tracing` subscriber as `logging:` says (`RUST_LOG` wins over
/// `logging.level`): text or JSON lines on stdout, and a rotating file when `log_to_file`.
/// Keep the guard until exit: it flushes the file.
pub fn logging(
    settings: &Settings,
) -> Result<Option<tracing_appender::non_blocking::WorkerGuard>, Error> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _, fmt};

    let level = settings.logging.level.as_deref().unwrap_or("info");
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{level},sqlx=warn")))?;
    let json = settings.logging.format == LogFormat::Json;
    let stdout = if json {
        fmt::layer().json().boxed()
    } else {
        fmt::layer().boxed()
    };
    let (file, guard) = match &settings.logging.file {
        None => (None, None),
        Some(f) => {
            let path = Path::new(&f.path);
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            let name = path.file_name().ok_or("`log_file_path` names no file")?;
            let rotation = match f.rotation {
                LogRotation::Never => tracing_appender::rolling::Rotation::NEVER,
                LogRotation::Minutely => tracing_appender::rolling::Rotation::MINUTELY,
                LogRotation::Hourly => tracing_appender::rolling::Rotation::HOURLY,
                _ => tracing_appender::rolling::Rotation::DAILY,
            };
            let appender = tracing_appender::rolling::RollingFileAppender::new(rotation, dir, name);
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let layer = if json {
                fmt::layer().json().with_writer(writer).boxed()
            } else {
                fmt::layer().with_ansi(false).with_writer(writer).boxed()
            };
            (Some(layer), Some(guard))
        }
    };
    tracing_subscriber::registry()
        .with(stdout.and_then(file).with_filter(filter))
        .try_init()?;
    Ok(guard)
}

/// What [`serve`] serves, and where.
#[derive(Clone)]
pub struct ServeOptions {
    /// The config directory.
    pub config: PathBuf,
    /// `HOST:PORT`; `server.host` and `server.port` of `config.yaml` when `None`.
    pub bind: Option<String>,
    /// Where `${env:…}` references are looked up.
    pub env: Env,
    /// Applied to the builder before the config is loaded: the host's source types, layers…
    /// (see [`ServeOptions::with_builder`]).
    pub builder: Option<BuilderHook>,
}

/// Adds a host's own parts to the orchestrator [`serve`] builds.
pub type BuilderHook = Arc<dyn Fn(OrchestratorBuilder) -> OrchestratorBuilder + Send + Sync>;

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("config", &self.config)
            .field("bind", &self.bind)
            .finish_non_exhaustive()
    }
}

impl ServeOptions {
    /// Serves `config` where its `config.yaml` says, with the process environment.
    pub fn new(config: impl Into<PathBuf>) -> Self {
        Self {
            config: config.into(),
            bind: None,
            env: Arc::new(|name| std::env::var(name).ok()),
            builder: None,
        }
    }

    /// Serves with `hook` applied to the orchestrator's builder before the config is loaded,
    /// for a host's own binary: its source types (and their integration files), layers.
    ///
    /// ```no_run
    /// # async fn run(settings: api_orchestrator::plan::Settings) -> Result<(), api_orchestrator::cli::Error> {
    /// # struct Vectors;
    /// # #[async_trait::async_trait]
    /// # impl api_orchestrator::source::DataSource for Vectors {
    /// #     async fn fetch(&self, _: api_orchestrator::source::SourceCall<'_>) -> Result<serde_json::Value, api_orchestrator::source::SourceError> { Ok(serde_json::Value::Null) }
    /// # }
    /// use api_orchestrator::cli::{self, ServeOptions};
    ///
    /// let options = ServeOptions::new("config").with_builder(|b| b.register("vector_db", Vectors));
    /// cli::serve(options, &settings).await
    /// # }
    /// ```
    pub fn with_builder(
        mut self,
        hook: impl Fn(OrchestratorBuilder) -> OrchestratorBuilder + Send + Sync + 'static,
    ) -> Self {
        self.builder = Some(Arc::new(hook));
        self
    }
}

/// Serves the config directory over HTTP until Ctrl-C: the plans below `app.api_base_path`,
/// reloaded when a YAML file changes, with `/health`, the admin routes, `/metrics` and the
/// layers `config.yaml` asks for (see the [module](self) documentation). Prints the address
/// and the routes once listening.
pub async fn serve(options: ServeOptions, settings: &Settings) -> Result<(), Error> {
    let ServeOptions {
        config,
        bind,
        env,
        builder: hook,
    } = options;
    // Traces when a collector is configured; metrics unless `telemetry.metrics: false`.
    let tracing = Tracing::from_settings(settings)?;
    let metrics = settings.telemetry.metrics.then(Metrics::new);
    let mut builder = Orchestrator::builder().env(move |n| env(n));
    if let Some(t) = &tracing {
        println!("exporting traces          {t:?}");
        builder = builder.tracer(t.tracer());
    }
    if let Some(m) = &metrics {
        builder = builder.metrics(m);
    }
    if let Some(hook) = hook {
        builder = hook(builder);
    }
    let orchestrator = builder
        .load_dir(&config)
        .map_err(|e| format!("cannot serve `{}`:\n{e}", config.display()))?;
    let _watcher = orchestrator.watch(Duration::from_millis(300))?;

    let settings = orchestrator.plan().settings.clone();
    let bind = bind.unwrap_or_else(|| format!("{}:{}", settings.server.host, settings.server.port));
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|e| format!("cannot listen on `{bind}`: {e}"))?;
    let addr = listener.local_addr()?;
    let api = Api::new(&orchestrator);
    let base = settings.app.base_path.as_str();
    let mut app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
    if let Some(m) = metrics {
        app = app.route_service("/metrics", m);
    }
    // The operator routes (recent executions, reload).
    let mut app = app.nest_service(&format!("{base}/admin"), api.admin());
    app = if base.is_empty() {
        app.fallback_service(api)
    } else {
        app.nest_service(base, api)
    };
    if let Some(cors) = layers::cors(&settings) {
        app = app.layer(cors);
    }
    if let Some(compression) = layers::compression(&settings) {
        app = app.layer(compression);
    }
    // The client's address, for endpoints whose `rate_limit` counts per client.
    let app = app.layer(axum::middleware::from_fn(client_addr));

    println!("\nlistening on http://{addr}  (docs: http://{addr}{base}/docs/)");
    for e in &orchestrator.plan().endpoints {
        for route in e.routes() {
            println!(
                "  {:<6} http://{addr}{base}{}",
                route.method.as_str(),
                route.path
            );
        }
    }
    if let Some(prefix) = &settings.app.original_routes {
        println!("  (and the original service's routes below http://{addr}{base}{prefix}/)");
    }
    println!(
        "reloading `{}` when its YAML changes; Ctrl-C stops",
        config.display()
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

/// Passes the connection's peer address to the plans as [`ClientAddr`].
async fn client_addr(
    axum::extract::ConnectInfo(addr): axum::extract::ConnectInfo<std::net::SocketAddr>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    request.extensions_mut().insert(ClientAddr(addr));
    next.run(request).await
}
