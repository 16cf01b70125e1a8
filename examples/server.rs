//! The demo server: serves a config directory over HTTP with `/docs` and hot reload.
//!
//! ```text
//! cargo run --example server                                  # examples/config on 127.0.0.1:8000
//! cargo run --example server -- --config DIR --bind 127.0.0.1:9000
//! ```
//!
//! It runs with no external service: the SQLite database the config names is created and
//! seeded on first run, and the credit bureau, the Feast feature server and the model server
//! are local stand-ins on free loopback ports that speak the real protocols. Set
//! `CREDIT_API_URL`, `FEAST_URL` or `MODEL_SERVER_URL` (and `DEMO_DATABASE_URL`) to use real
//! services instead. Editing a YAML file of the config directory reloads it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use api_orchestrator::Orchestrator;
use api_orchestrator::web::{Api, ClientAddr};
use examples::demo;

struct Args {
    config: PathBuf,
    bind: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut config = None;
    let mut bind = None;
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
    Ok(Args { config, bind })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("usage: cargo run --example server -- [--config DIR] [--bind HOST:PORT]");
            std::process::exit(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();

    // Stand-ins for the remote services the environment does not point elsewhere.
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
        let db = args.config.join("data/customer360.db");
        if demo::seed_database(&db).await? {
            println!("seeded the demo database  {}", db.display());
        }
    }

    let orchestrator = Orchestrator::builder()
        .env(move |name| std::env::var(name).ok().or_else(|| env.get(name).cloned()))
        .load_dir(&args.config)
        .map_err(|e| format!("cannot serve `{}`:\n{e}", args.config.display()))?;
    let _watcher = orchestrator.watch(Duration::from_millis(300))?;

    let settings = orchestrator.plan().settings.server.clone();
    let bind = args
        .bind
        .unwrap_or_else(|| format!("{}:{}", settings.host, settings.port));
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    let addr = listener.local_addr()?;
    let api = Api::new(&orchestrator);
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        // The operator routes (recent executions, reload). A real host puts its own
        // authentication in front of them; the demo listens on loopback only.
        .nest_service("/api/admin", api.admin())
        .nest_service("/api", api)
        // The client's address, for endpoints whose `rate_limit` counts per client.
        .layer(axum::middleware::from_fn(client_addr));

    println!("\nlistening on http://{addr}  (docs: http://{addr}/api/docs/)");
    for e in &orchestrator.plan().endpoints {
        for route in e.routes() {
            println!(
                "  {:<6} http://{addr}/api{}",
                route.method.as_str(),
                route.path
            );
        }
    }
    println!(
        "reloading `{}` when its YAML changes; Ctrl-C stops",
        args.config.display()
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
