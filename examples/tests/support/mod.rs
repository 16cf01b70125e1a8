//! Starting the demo server binary as a user runs it, for the tests of this package.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};

/// `target/<profile>/examples/server`, built by `cargo test` for this package.
pub(crate) fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    profile_dir
        .join("examples")
        .join(format!("server{}", std::env::consts::EXE_SUFFIX))
}

/// Copies the directory `from` to `to`, leaving out entries named in `skip`.
pub(crate) fn copy_dir(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        if path.is_dir() {
            copy_dir(&path, &to.join(name), skip);
        } else {
            std::fs::copy(&path, to.join(name)).unwrap();
        }
    }
}

/// A copy of the shipped demo config in `dir/config`, without its generated data (the server
/// seeds its own database).
#[allow(dead_code)] // each test binary compiles this module; not all use it
pub(crate) fn demo_config(dir: &Path) -> PathBuf {
    let config = dir.join("config");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
        &config,
        &["data"],
    );
    config
}

/// Starts the server on `config` (working directory `config`, a free port, `RUST_LOG=warn`)
/// with `env` set and the demo's service variables unset unless `env` sets them; returns it
/// and its `http://addr` once it listens.
pub(crate) async fn start_server(
    config: &Path,
    env: &[(&str, String)],
) -> (tokio::process::Child, String) {
    let binary = server_binary();
    assert!(
        binary.exists(),
        "{} is missing: run `cargo test -p examples`",
        binary.display()
    );
    let mut command = tokio::process::Command::new(binary);
    command
        .args([
            "--config",
            &config.display().to_string(),
            "--bind",
            "127.0.0.1:0",
        ])
        .current_dir(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    for var in [
        "CREDIT_API_URL",
        "FEAST_URL",
        "MODEL_SERVER_URL",
        "DEMO_DATABASE_URL",
    ] {
        command.env_remove(var);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("the demo server starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("listening on ") {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server listens within 60 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let _ = rustls::crypto::ring::default_provider().install_default();
    (child, base)
}
