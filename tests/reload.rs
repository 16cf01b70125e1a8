//! Hot reload: file changes observed through HTTP (by polling, never by sleeping a guessed
//! time), a broken file that changes nothing and reports why, the admin service, and 100 reloads
//! under a steady stream of requests without one failure.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use api_orchestrator::Orchestrator;
use api_orchestrator::web::{Api, Body};
use http::Request;
use serde_json::{Value, json};

const CONFIG: &str = "tracking:\n  admin: true\n  debug_view: true\n";

fn greeting(word: &str) -> String {
    format!(
        "endpoints:\n  hello:\n    path: /hello/{{name}}\n    method: [GET]\n    data_sources:\n      - {{name: h, type: direct, params: {{name: \"$request.name\"}}}}\n    response_mapping: {{text: \"$= '{word}, ' + $h.name\"}}\n"
    )
}

const EXTRA: &str = "endpoints:\n  extra:\n    path: /extra\n    method: [GET]\n    data_sources:\n      - {name: e, type: direct, params: {ok: true}}\n";

fn write(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // Write then rename, as editors do: the watcher never sees half a file.
    let tmp = dir.join(format!(".{}.tmp", file.replace('/', "_")));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header("x-debug-trace", "1")
        .body(Body::Empty)
        .unwrap()
}

/// Status and JSON body of `GET path`.
async fn call(api: &Api, path: &str) -> (u16, Value) {
    let r = api.handle(get(path)).await;
    (
        r.status().as_u16(),
        serde_json::from_slice(r.body()).unwrap_or(Value::Null),
    )
}

/// `POST /reload` of the admin service.
async fn admin_reload(api: &Api) -> http::Response<bytes::Bytes> {
    let request = Request::post("/reload").body(Body::Empty).unwrap();
    api.admin().handle(request).await
}

/// Polls until `check` holds; fails after 20 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not observed within 20 s: {what}");
}

/// A config in `dir` that greets with "Hello", loaded and watched (debounce 100 ms).
fn watched_greeting(dir: &Path) -> (Orchestrator, api_orchestrator::Watcher, Api) {
    write(dir, "config.yaml", CONFIG);
    write(dir, "domains/greet.yaml", &greeting("Hello"));
    let o = Orchestrator::from_dir(dir).unwrap_or_else(|e| panic!("{e}"));
    let watcher = o.watch(Duration::from_millis(100)).unwrap();
    let api = Api::new(&o);
    (o, watcher, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_changes_reach_http_and_a_broken_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (o, _watcher, api) = watched_greeting(dir.path());
    let (status, body) = call(&api, "/hello/Ada").await;
    assert_eq!((status, &body["data"]["text"]), (200, &json!("Hello, Ada")));
    assert_eq!(body["trace"]["config_version"], 1);

    // A new endpoint file.
    write(dir.path(), "domains/extra.yaml", EXTRA);
    eventually("the new endpoint answers", || async {
        call(&api, "/extra").await.0 == 200
    })
    .await;

    // A changed mapping; the trace names the new version.
    write(dir.path(), "domains/greet.yaml", &greeting("Hi"));
    eventually("the new mapping answers", || async {
        call(&api, "/hello/Ada").await.1["data"]["text"] == "Hi, Ada"
    })
    .await;
    let (_, body) = call(&api, "/hello/Ada").await;
    assert_eq!(body["trace"]["config_version"], o.version());
    assert!(o.version() >= 3);

    // A deleted endpoint.
    std::fs::remove_file(dir.path().join("domains/extra.yaml")).unwrap();
    eventually("the deleted endpoint is gone", || async {
        call(&api, "/extra").await.0 == 404
    })
    .await;

    // A broken file: the previous version keeps serving, the diagnostics are reported.
    let before = o.version();
    write(
        dir.path(),
        "domains/greet.yaml",
        &greeting("Yo").replace("$h.name", "$hh.name"),
    );
    eventually("the failed reload is reported", || async {
        o.last_reload().and_then(|r| r.error).is_some()
    })
    .await;
    let report = o.last_reload().unwrap();
    let error = report.error.unwrap();
    assert!(
        error.contains("unknown source `hh`") && error.contains("domains/greet.yaml"),
        "{error}"
    );
    assert_eq!(report.version, before);
    assert_eq!(o.version(), before);
    assert_eq!(call(&api, "/hello/Ada").await.1["data"]["text"], "Hi, Ada");

    // The admin service reports the same, and reloads once the file is fixed.
    let r = admin_reload(&api).await;
    assert_eq!(r.status(), 422);
    let problem: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(problem["type"], "urn:orchestrator:problem:reload-failed");
    assert!(
        problem["diagnostics"]
            .as_str()
            .unwrap()
            .contains("unknown source `hh`")
    );
    write(dir.path(), "domains/greet.yaml", &greeting("Hey"));
    eventually("the fixed file is served", || async {
        call(&api, "/hello/Ada").await.1["data"]["text"] == "Hey, Ada"
    })
    .await;
    let r = admin_reload(&api).await;
    assert_eq!(r.status(), 200);
    let done: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(done["version"], o.version());
}

/// The schema snapshot is part of the config: `prepare` rewriting it reloads too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_schema_snapshot_is_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let (o, _watcher, _api) = watched_greeting(dir.path());
    let before = o.version();
    write(dir.path(), ".orchestrator/schema.json", "{ not json");
    eventually("the broken snapshot is reported", || async {
        o.last_reload().and_then(|r| r.error).is_some()
    })
    .await;
    let error = o.last_reload().unwrap().error.unwrap();
    assert!(error.contains(".orchestrator/schema.json"), "{error}");
    assert_eq!(o.version(), before);
    std::fs::remove_file(dir.path().join(".orchestrator/schema.json")).unwrap();
    eventually("the config without a snapshot is served again", || async {
        o.last_reload().is_some_and(|r| r.error.is_none()) && o.version() > before
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_reloads_under_traffic_fail_no_request() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "config.yaml", CONFIG);
    write(dir.path(), "domains/greet.yaml", &greeting("Hello"));
    let o = Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let api = Api::new(&o);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let traffic = {
        let (api, stop, ok, failed) = (api.clone(), stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let (status, body) = call(&api, "/hello/Ada").await;
                let text = body["data"]["text"].as_str().unwrap_or_default().to_owned();
                if status == 200 && (text == "Hello, Ada" || text == "Howdy, Ada") {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
                tokio::task::yield_now().await;
            }
        })
    };
    for i in 0..100 {
        write(
            dir.path(),
            "domains/greet.yaml",
            &greeting(if i % 2 == 0 { "Howdy" } else { "Hello" }),
        );
        let o = o.clone();
        tokio::task::spawn_blocking(move || o.reload())
            .await
            .unwrap()
            .unwrap();
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::SeqCst);
    traffic.await.unwrap();
    assert_eq!(o.version(), 101);
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert!(
        ok.load(Ordering::SeqCst) > 0,
        "no request ran during the reloads"
    );
}

#[test]
fn a_plan_built_in_code_has_nothing_to_reload() {
    let plan = api_orchestrator::config::load_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/valid/direct"
    ))
    .unwrap();
    let o = Orchestrator::builder().build(plan).unwrap();
    assert!(matches!(
        o.reload(),
        Err(api_orchestrator::Error::NotReloadable)
    ));
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_symlink_and_a_recreated_directory_are_followed() {
    let root = tempfile::tempdir().unwrap();
    for (version, word) in [("v1", "Hello"), ("v2", "Hi")] {
        let d = root.path().join(version);
        write(&d, "config.yaml", CONFIG);
        write(&d, "domains/greet.yaml", &greeting(word));
    }
    let cur = root.path().join("cur");
    std::os::unix::fs::symlink(root.path().join("v1"), &cur).unwrap();
    let o = Orchestrator::from_dir(&cur).unwrap_or_else(|e| panic!("{e}"));
    let _watcher = o.watch(Duration::from_millis(100)).unwrap();
    let api = Api::new(&o);
    let text = |api: &Api| {
        let api = api.clone();
        async move { call(&api, "/hello/Ada").await.1["data"]["text"].clone() }
    };
    assert_eq!(text(&api).await, "Hello, Ada");

    // The Kubernetes way: a new symlink renamed over the old one, atomically.
    let tmp = root.path().join("cur.tmp");
    std::os::unix::fs::symlink(root.path().join("v2"), &tmp).unwrap();
    std::fs::rename(&tmp, &cur).unwrap();
    eventually("the swapped directory is served", || async {
        text(&api).await == "Hi, Ada"
    })
    .await;

    // Edits inside the new target are watched.
    write(
        &root.path().join("v2"),
        "domains/greet.yaml",
        &greeting("Hey"),
    );
    eventually("an edit in the new directory is served", || async {
        text(&api).await == "Hey, Ada"
    })
    .await;

    // Deleted, then created again as a plain directory.
    std::fs::remove_file(&cur).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        text(&api).await,
        "Hey, Ada",
        "the last good version keeps serving"
    );
    write(&cur, "config.yaml", CONFIG);
    write(&cur, "domains/greet.yaml", &greeting("Yo"));
    eventually("the recreated directory is served", || async {
        text(&api).await == "Yo, Ada"
    })
    .await;
    write(&cur, "domains/greet.yaml", &greeting("Hoi"));
    eventually("an edit in the recreated directory is served", || async {
        text(&api).await == "Hoi, Ada"
    })
    .await;
}

/// A file written in two steps, valid YAML after the first and paused longer than the debounce
/// (`cat > file` with a slow producer): the half is never published; the whole file is, once
/// the writer closes it.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_still_open_for_writing_is_not_published_half_written() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let (o, _watcher, api) = watched_greeting(dir.path());
    let before = o.last_reload().map(|r| r.at);

    let both = format!("{}{}", greeting("Hi"), &EXTRA["endpoints:\n".len()..]);
    let half = greeting("Hi");
    let mut file = std::fs::File::create(dir.path().join("domains/greet.yaml")).unwrap();
    file.write_all(half.as_bytes()).unwrap();
    file.flush().unwrap();
    // Ten debounce periods with the file open: the half (valid YAML) must not be served.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        o.last_reload().map(|r| r.at),
        before,
        "no reload while the file is open"
    );
    assert_eq!(
        call(&api, "/hello/Ada").await.1["data"]["text"],
        "Hello, Ada"
    );
    file.write_all(&both.as_bytes()[half.len()..]).unwrap();
    drop(file);
    eventually("the whole file is served once closed", || async {
        call(&api, "/extra").await.0 == 200
    })
    .await;
    assert_eq!(call(&api, "/hello/Ada").await.1["data"]["text"], "Hi, Ada");
}
