//! Benchmarks of `orchestrator`, and the fixtures they share.

/// The engine-overhead fixture: 5 in-process sources (three independent, two chained) and a
/// 20-field response mapping, used by the criterion bench `engine` and by the
/// `engine-instructions` binary.
pub mod overview {
    use api_orchestrator::source::{DataSource, SourceCall, SourceError};
    use api_orchestrator::{Orchestrator, RequestContext};
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

    /// The documents the five sources return, by operation.
    fn documents() -> Value {
        json!({
            "profile": {"id": 42, "name": "Ada", "email": "ada@example.com", "segment": "gold",
                        "city": "London", "country": "UK"},
            "features": {"ltv": 1520.5, "frequency": 3.2, "churn": 0.12},
            "credit": {"score": 710, "limit": 5000, "band": "A"},
            "orders": {"count": 3, "items": [{"id": 1}, {"id": 2}, {"id": 3}]},
            "score": {"risk": 0.2, "label": "low"}
        })
    }

    /// The endpoint `overview` served by the engine.
    pub fn orchestrator() -> Orchestrator {
        let dir = std::env::temp_dir().join(format!("orchestrator-bench-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("domains")).unwrap();
        std::fs::write(dir.join("domains/bench.yaml"), DOMAIN).unwrap();
        let o = Orchestrator::builder()
            .register("fixed", Fixed(documents()))
            .load_dir(&dir)
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        o
    }

    /// The same work written by hand: the five documents cloned (as the sources do) and the
    /// same 20-field response built with `json!`. What the engine adds is the difference.
    #[derive(Debug)]
    pub struct ByHand(Value);

    impl Default for ByHand {
        fn default() -> Self {
            Self(documents())
        }
    }

    impl ByHand {
        /// The response for `request`, equal to the engine's.
        pub fn respond(&self, request: &RequestContext) -> Value {
            let id = request.path_params["customer_id"].clone();
            let [profile, features, credit, orders, score] =
                ["profile", "features", "credit", "orders", "score"].map(|op| self.0[op].clone());
            let or = |v: &Value, default: &str| match v {
                Value::Null => json!(default),
                v => v.clone(),
            };
            let order_ids: Vec<Value> = orders["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|item| item["id"].clone())
                .filter(|id| !id.is_null())
                .collect();
            json!({
                "id": id,
                "name": profile["name"].clone(),
                "email": profile["email"].clone(),
                "segment": or(&profile["segment"], "standard"),
                "personal": {"city": profile["city"].clone(), "country": profile["country"].clone()},
                "ltv": features["ltv"].clone(),
                "frequency": features["frequency"].clone(),
                "churn": features["churn"].clone(),
                "credit_score": credit["score"].clone(),
                "credit_limit": credit["limit"].clone(),
                "credit_band": credit["band"].clone(),
                "first_order": orders["items"][0]["id"].clone(),
                "order_ids": order_ids,
                "order_count": orders["count"].clone(),
                "risk": score["risk"].clone(),
                "risk_label": or(&score["label"], "unknown"),
                "tags": [profile["segment"].clone(), credit["band"].clone()],
                "vip": features["ltv"].as_f64().is_some_and(|ltv| ltv > 1000.0),
                "source": "bench",
                "version": 1
            })
        }
    }

    /// The single-threaded runtime the executions run on.
    pub fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a tokio runtime")
    }

    /// The request every execution gets.
    pub fn request() -> RequestContext {
        RequestContext::new()
            .with_path_param("customer_id", 42)
            .with_request_id("bench")
    }
}
