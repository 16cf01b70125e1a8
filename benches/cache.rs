//! What a cache hit costs through the engine: one source answering a 10-field document from
//! memory (`cache/in_process_source`), the same step with `cache: 1m` where every execution is a
//! hit (`cache/memory_hit`: key hashing, the moka lookup and the document's clone instead of the
//! source's), and, when `ORCHESTRATOR_TEST_REDIS_URL` names a Redis server, a hit in Redis
//! (`cache/redis_hit`: one round trip).
//!
//! ```text
//! cargo bench -p benches --bench cache
//! ORCHESTRATOR_TEST_REDIS_URL=redis://127.0.0.1:6379/15 cargo bench -p benches --bench cache
//! ```

use api_orchestrator::config::{ConfigFiles, Loader};
use api_orchestrator::source::{CacheStatus, DataSource, SourceCall, SourceError};
use api_orchestrator::{Orchestrator, RequestContext};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

/// A lookup answered from memory.
struct Document(Value);

#[async_trait::async_trait]
impl DataSource for Document {
    async fn fetch(&self, _: SourceCall<'_>) -> Result<Value, SourceError> {
        Ok(self.0.clone())
    }
}

fn orchestrator(config: &str, cache: &str) -> Orchestrator {
    let domain = format!(
        "endpoints:\n  lookup:\n    data_sources:\n      - {{name: doc, type: document, params: {{id: \"$request.id\", region: eu}}{cache}}}\n"
    );
    let mut files = ConfigFiles::new().with_file("domains/bench.yaml", &domain);
    if !config.is_empty() {
        files = files.with_file("config.yaml", config);
    }
    let plan = Loader::new()
        .with_source_type("document")
        .load(&files)
        .unwrap_or_else(|e| panic!("{e}"));
    Orchestrator::builder()
        .register(
            "document",
            Document(json!({
                "customer_id": 42, "name": "Ada", "email": "ada@example.com", "segment": "gold",
                "score": 712, "band": "A", "limit": 5000, "ltv": 1520.5, "churn": 0.12,
                "tags": ["vip", "eu"]
            })),
        )
        .build(plan)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn cache(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let request = RequestContext::new().with_path_param("id", 42);
    let mut variants = vec![
        ("cache/in_process_source", orchestrator("", ""), None),
        (
            "cache/memory_hit",
            orchestrator("", ", cache: 1m"),
            Some(CacheStatus::Hit),
        ),
    ];
    match std::env::var("ORCHESTRATOR_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => variants.push((
            "cache/redis_hit",
            orchestrator(
                &format!("cache: {{store: redis, url: \"{url}\", timeout: 1s}}\n"),
                ", cache: 1m",
            ),
            Some(CacheStatus::Hit),
        )),
        _ => eprintln!(
            "skipped: cache/redis_hit (set ORCHESTRATOR_TEST_REDIS_URL=redis://127.0.0.1:6379/15 to run it)"
        ),
    }
    for (name, o, status) in variants {
        let engine = o.engine();
        // Warm up until the entry is there (a Redis write lands after the answer).
        let mut seen = None;
        for _ in 0..1000 {
            let out = rt.block_on(engine.execute("lookup", &request)).unwrap();
            seen = out.trace.sources[0].cache;
            if seen == status {
                break;
            }
            rt.block_on(async { tokio::time::sleep(std::time::Duration::from_millis(1)).await });
        }
        assert_eq!(seen, status, "{name}");
        c.bench_function(name, |b| {
            b.to_async(&rt).iter(|| engine.execute("lookup", &request));
        });
    }
}

criterion_group!(benches, cache);
criterion_main!(benches);
