//! The demo server: serves a config directory over HTTP with `/docs` and hot reload.
//!
//! ```text
//! cargo run --example server                                  # examples/config on 127.0.0.1:8000
//! cargo run --example server -- --config DIR --bind 127.0.0.1:9000
//! cargo run --example server -- --prepare [--check]           # the schema snapshot, see below
//! ```
//!
//! `--prepare` starts the stand-ins and the database as for serving, records what they
//! return into `CONFIG_DIR/.orchestrator/schema.json` (the committed snapshot the loader
//! checks mappings against) and exits; with `--check` it compares instead of writing and
//! exits 1 when the committed snapshot no longer matches.
//!
//! It runs with no external service: the SQLite database the config names is created and
//! seeded on first run, and the credit bureau, the Feast feature server and the model server
//! are local stand-ins on free loopback ports that speak the real protocols. Set
//! `CREDIT_API_URL`, `FEAST_URL` or `MODEL_SERVER_URL` (and `DEMO_DATABASE_URL`) to use real
//! services instead. Editing a YAML file of the config directory reloads it.
//!
//! It honours the serving settings of `config.yaml` (the original Python service's keys):
//! `app.api_base_path` (the mount prefix, `/api` by default), `server.host` / `port` /
//! `workers`, `logging` (level, `format: json|text`, a rotating file), `cors`,
//! `performance.response_compression`, and `auth` (checked by the library's `Api`); and
//! `telemetry:` (OpenTelemetry traces over OTLP/HTTP when an endpoint is configured or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set; Prometheus metrics at `/metrics` unless
//! `telemetry.metrics: false`).

/// glibc's malloc makes memory freed on another thread than the one that allocated it (rows
/// from the SQLite workers, spans sent by the OTLP exporter) cost the serving threads several
/// percent; mimalloc serves scenario (i) of the load harness about 8 % faster.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::path::PathBuf;

use api_orchestrator::config::{ConfigFiles, Loader};
use api_orchestrator::plan::Settings;
use examples::demo;

struct Args {
    config: PathBuf,
    bind: Option<String>,
    /// `--prepare`, and whether with `--check`.
    prepare: Option<bool>,
}

fn args() -> Result<Args, String> {
    let mut config = None;
    let mut bind = None;
    let mut prepare = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--config" => {
                config = Some(PathBuf::from(
                    it.next().ok_or("--config needs a directory")?,
                ))
            }
            "--bind" => {
                bind = Some(
                    it.next()
                        .ok_or("--bind needs an address such as 127.0.0.1:8000")?,
                )
            }
            "--prepare" => prepare = Some(prepare.unwrap_or(false)),
            "--check" => prepare = Some(true),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let config = config.unwrap_or_else(|| {
        // From the repository root, or from anywhere via the package's own path.
        let local = PathBuf::from("examples/config");
        if local.is_dir() {
            local
        } else {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config"))
        }
    });
    Ok(Args {
        config,
        bind,
        prepare,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!(
                "usage: cargo run --example server -- [--config DIR] [--bind HOST:PORT | --prepare [--check]]"
            );
            std::process::exit(2);
        }
    };
    // `config.yaml` first: it says how to log and how many worker threads to run.
    let settings = ConfigFiles::read_dir(&args.config)
        .and_then(|files| Loader::new().settings(&files))
        .map_err(|e| format!("cannot serve `{}`:\n{e}", args.config.display()))?;
    let _log_guard = api_orchestrator::cli::logging(&settings).map_err(|e| e.to_string())?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = settings.server.workers {
        runtime.worker_threads(n);
    }
    runtime
        .enable_all()
        .build()?
        .block_on(serve(args, settings))
}

/// Stand-ins for the remote services the environment does not point elsewhere, and the seeded
/// database: the values of the config's `${env:…}` references that point at them.
async fn stand_ins(
    config: &std::path::Path,
) -> Result<HashMap<&'static str, String>, Box<dyn std::error::Error>> {
    let mut env: HashMap<&str, String> = HashMap::new();
    let token = std::env::var("CREDIT_API_TOKEN").unwrap_or_else(|_| "demo-token".into());
    if std::env::var_os("CREDIT_API_URL").is_none() {
        let s = demo::credit_api(token).await?;
        println!("stand-in credit API       http://{}/api/v1", s.addr);
        env.insert("CREDIT_API_URL", format!("http://{}/api/v1", s.addr));
    }
    if std::env::var_os("FEAST_URL").is_none() {
        let s = demo::feast().await?;
        println!("stand-in Feast server     http://{}", s.addr);
        env.insert("FEAST_URL", format!("http://{}", s.addr));
    }
    if std::env::var_os("MODEL_SERVER_URL").is_none() {
        let s = demo::model_server().await?;
        println!("stand-in model server     http://{}", s.addr);
        env.insert("MODEL_SERVER_URL", format!("http://{}", s.addr));
    }
    if std::env::var_os("DEMO_DATABASE_URL").is_none() {
        let db = config.join("data/customer360.db");
        if demo::seed_database(&db).await? {
            println!("seeded the demo database  {}", db.display());
        }
    }
    Ok(env)
}

async fn serve(args: Args, settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    let env = stand_ins(&args.config).await?;
    let lookup = move |name: &str| std::env::var(name).ok().or_else(|| env.get(name).cloned());
    if let Some(compare) = args.prepare {
        let loader = Loader::new().with_env(lookup);
        let code = api_orchestrator::cli::prepare(&args.config, &loader, compare).await;
        std::process::exit(if code == std::process::ExitCode::SUCCESS {
            0
        } else {
            1
        });
    }

    let options = api_orchestrator::cli::ServeOptions {
        bind: args.bind,
        env: std::sync::Arc::new(lookup),
        ..api_orchestrator::cli::ServeOptions::new(args.config)
    };
    api_orchestrator::cli::serve(options, &settings)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
