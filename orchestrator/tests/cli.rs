//! The `api-orchestrator` command, run as a user runs it: its exit codes and output for
//! `check`, `openapi`, `prepare`, `schema` and `serve` (which answers over a real socket and
//! reloads an edited file).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_api-orchestrator");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn examples() -> String {
    format!("{}/../examples/config", env!("CARGO_MANIFEST_DIR"))
}

fn config(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, body) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    dir
}

const HELLO: &str = "endpoints:\n  hello:\n    path: /hello/{name}\n    method: [GET]\n    data_sources:\n      - {name: it, type: direct, params: {name: \"$request.name\"}}\n";

#[test]
fn check_lists_the_endpoints_or_the_diagnostics() {
    let out = run(&["check", &examples()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("get_customer_360 (domains/customers.yaml)"),
        "{stdout}"
    );
    assert!(stdout.contains("ok: 10 endpoint(s)"), "{stdout}");

    let broken = config(&[(
        "domains/shop.yaml",
        "endpoints:\n  hello:\n    data_sorces:\n      - {name: it, type: direct}\n",
    )]);
    let out = run(&["check", broken.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    for expected in [
        "domains/shop.yaml",
        "endpoints.hello.data_sorces",
        "data_sources",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }

    let out = run(&["check", "/nonexistent/config"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn bad_command_lines_exit_2_with_the_usage() {
    for args in [
        &[][..],
        &["frobnicate", "x"],
        &["check"],
        &["check", "a", "b"],
        &["check", "--bind", "x", "a"],
        &["serve", "a", "--bind"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains("usage: api-orchestrator"),
            "{args:?}"
        );
    }
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("commands:"));
}

#[test]
fn openapi_prints_the_document() {
    let out = run(&["openapi", &examples()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(
        doc["paths"]["/customers/get_customer_360/{customer_id}"]["get"].is_object(),
        "{doc}"
    );
}

#[test]
fn schema_prints_the_config_formats_json_schema() {
    let out = run(&["schema"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc, api_orchestrator::config::json_schema());
    assert_eq!(doc["$schema"], "http://json-schema.org/draft-07/schema#");
    assert!(doc["anyOf"].as_array().is_some_and(|any| any.len() == 6));
    let source = &doc["$defs"]["source"];
    assert!(source["properties"]["for_each"].is_object(), "{source}");
    assert_eq!(source["required"], serde_json::json!(["name", "type"]));

    let out = run(&["schema", "--file", "domains/shop.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["$ref"], "#/$defs/domain_file");
    assert!(doc["$defs"]["endpoint"].is_object());
    // Only what a domain file reaches.
    assert!(doc["$defs"].get("model").is_none(), "{}", doc["$defs"]);

    let out = run(&["schema", "--file", "domains/shop/notes.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("the loader reads no file at `domains/shop/notes.yaml`"),
        "{}",
        text(&out.stderr)
    );
    for bad in [&["schema", "--file"][..], &["schema", "config"]] {
        let out = run(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(text(&out.stderr).contains("usage:"), "{bad:?}");
    }
}

#[tokio::test]
async fn prepare_records_the_snapshot_and_check_finds_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shop.db");
    let url = format!("sqlite:{}", db.display());
    let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
        .await
        .unwrap();
    sqlx::raw_sql("CREATE TABLE products (sku TEXT PRIMARY KEY, price REAL NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let files = config(&[
        (
            "database.yaml",
            &format!(
                "database:\n  sources:\n    default: {{connection_string: \"{url}\"}}\n  operations:\n    product:\n      query: \"SELECT sku, price FROM products WHERE sku = :sku\"\n      params: {{sku: string}}\n"
            ),
        ),
        (
            "domains/shop.yaml",
            "endpoints:\n  price:\n    data_sources:\n      - {name: p, type: database, operation: product, params: {sku: \"$request.sku\"}}\n    response_mapping: {price: \"$p.price\"}\n",
        ),
    ]);
    let path = files.path().to_str().unwrap();
    let out = run(&["prepare", path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("wrote"), "{}", text(&out.stdout));
    let snapshot = std::fs::read_to_string(files.path().join(".orchestrator/schema.json")).unwrap();
    assert!(snapshot.contains("\"price\""), "{snapshot}");
    assert_eq!(run(&["prepare", path, "--check"]).status.code(), Some(0));

    // `price` may now be null: the recorded column no longer matches.
    sqlx::raw_sql("DROP TABLE products; CREATE TABLE products (sku TEXT PRIMARY KEY, price REAL)")
        .execute(&pool)
        .await
        .unwrap();
    let out = run(&["prepare", path, "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("differs from the live sources"),
        "{}",
        text(&out.stderr)
    );
    // The config itself, checked against the committed snapshot, is still fine.
    assert_eq!(run(&["check", path]).status.code(), Some(0));
}

/// A running `serve`, killed when dropped.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` over a new connection: the status and the body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Asks until `done` holds (a reload lands a moment after the write); fails after 30 s.
fn eventually(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "never happened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_answers_and_reloads() {
    let dir = config(&[
        ("config.yaml", "app:\n  api_base_path: /v1\n"),
        ("domains/greet.yaml", HELLO),
    ]);
    let mut child = Command::new(BIN)
        .args([
            "serve",
            dir.path().to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let serving = Serving(child);
    let mut lines = BufReader::new(stdout).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("listening on http://")
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
        })
        .expect("the address it listens on");
    // Keep reading its output so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    assert_eq!(get(&addr, "/health"), (200, "ok".to_owned()));
    assert_eq!(
        get(&addr, "/v1/hello/Ada"),
        (200, r#"{"name":"Ada"}"#.to_owned())
    );
    assert_eq!(get(&addr, "/v1/bye/Ada").0, 404);
    std::fs::write(
        dir.path().join("domains/greet.yaml"),
        HELLO.replace("hello", "bye"),
    )
    .unwrap();
    eventually(|| get(&addr, "/v1/bye/Ada").0 == 200);
    assert_eq!(get(&addr, "/v1/hello/Ada").0, 404);
    drop(serving);
}

#[test]
fn serve_reports_a_config_it_cannot_serve() {
    let broken = config(&[("domains/x.yaml", "endpoints: [1]\n")]);
    let out = run(&[
        "serve",
        broken.path().to_str().unwrap(),
        "--bind",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot serve"),
        "{}",
        text(&out.stderr)
    );
}
