//! The host serves its own route beside YAML and macro plans, over a real socket.

use serde_json::{Value, json};

#[tokio::test]
async fn yaml_and_macro_plans_mount_beside_the_host_routes() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let app = downstream::app(&config).expect("the app builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();

    let health = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");

    for (prefix, from) in [("yaml", "yaml"), ("rust", "rust")] {
        let response = client
            .get(format!("{base}/{prefix}/hello/Ada"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "/{prefix}/hello/Ada");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"greeting": "Hello, Ada!", "from": from}));
    }

    let missing = client
        .get(format!("{base}/rust/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
}
