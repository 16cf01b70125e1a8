//! Engine overhead per execution with in-process sources: 5 sources (three independent, two
//! chained) and a 20-field response mapping. No I/O: what is measured is scheduling, param
//! resolution, the mapping and the trace.
//!
//! ```text
//! cargo bench -p benches --bench engine
//! ```

use criterion::{Criterion, criterion_group, criterion_main};
use orchestrator::source::{DataSource, SourceCall, SourceError};
use orchestrator::{Orchestrator, RequestContext};
use serde_json::{Value, json};

/// Returns a fixed document per operation, like a cached lookup would.
struct Fixed(Value);

#[async_trait::async_trait]
impl DataSource for Fixed {
    async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
        Ok(self.0[call.operation.unwrap_or_default()].clone())
    }
}

const DOMAIN: &str = r#"
endpoints:
  overview:
    data_sources:
      - {name: profile, type: fixed, operation: profile, params: {id: "$request.customer_id"}}
      - {name: features, type: fixed, operation: features, params: {id: "$request.customer_id"}}
      - {name: credit, type: fixed, operation: credit, params: {id: "$request.customer_id"}}
      - {name: orders, type: fixed, operation: orders, params: {id: "$profile.id"}}
      - {name: score, type: fixed, operation: score, params: {ltv: "$features.ltv", limit: "$credit.limit"}}
    response_mapping:
      id: "$request.customer_id"
      name: "$profile.name"
      email: "$profile.email"
      segment: "$profile.segment || 'standard'"
      personal: {city: "$profile.city", country: "$profile.country"}
      ltv: "$features.ltv"
      frequency: "$features.frequency"
      churn: "$features.churn"
      credit_score: "$credit.score"
      credit_limit: "$credit.limit"
      credit_band: "$credit.band"
      first_order: "$orders.items[0].id"
      order_ids: "$orders.items[*].id"
      order_count: "$orders.count"
      risk: "$score.risk"
      risk_label: "$score.label || 'unknown'"
      tags: ["$profile.segment", "$credit.band"]
      vip: "$= $features.ltv > 1000"
      source: "bench"
      version: 1
"#;

fn orchestrator() -> Orchestrator {
    let doc = json!({
        "profile": {"id": 42, "name": "Ada", "email": "ada@example.com", "segment": "gold",
                    "city": "London", "country": "UK"},
        "features": {"ltv": 1520.5, "frequency": 3.2, "churn": 0.12},
        "credit": {"score": 710, "limit": 5000, "band": "A"},
        "orders": {"count": 3, "items": [{"id": 1}, {"id": 2}, {"id": 3}]},
        "score": {"risk": 0.2, "label": "low"}
    });
    let dir = std::env::temp_dir().join(format!("orchestrator-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("domains")).unwrap();
    std::fs::write(dir.join("domains/bench.yaml"), DOMAIN).unwrap();
    let o = Orchestrator::builder()
        .register("fixed", Fixed(doc))
        .load_dir(&dir)
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    o
}

fn engine(c: &mut Criterion) {
    let o = orchestrator();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let request = RequestContext::new()
        .with_path_param("customer_id", 42)
        .with_request_id("bench");
    // Sanity: the mapping really produced 20 fields.
    let out = rt.block_on(o.execute("overview", request.clone())).unwrap();
    assert_eq!(out.response.as_object().unwrap().len(), 20);
    let engine = o.engine();
    c.bench_function("execute/5_sources_20_fields", |b| {
        b.to_async(&rt)
            .iter(|| engine.execute("overview", &request));
    });
}

criterion_group!(benches, engine);
criterion_main!(benches);
