//! A host application: its own route, the endpoints of a YAML config directory under `/yaml`
//! and endpoints written with `orchestrate!` under `/rust`.

use api_orchestrator::web::Api;
use api_orchestrator::{Orchestrator, orchestrate};

/// The host's router.
pub fn app(config_dir: &std::path::Path) -> Result<axum::Router, Box<dyn std::error::Error>> {
    let from_yaml = Orchestrator::from_dir(config_dir)?;
    let from_rust = Orchestrator::builder().build(orchestrate! {
        domain: greetings,
        endpoints: {
            hello: {
                path: "/hello/{name}",
                method: [GET],
                data_sources: [ { name: it, type: direct, params: { name: $request.name } } ],
                response_mapping: { greeting: $= "Hello, " + $it.name + "!", from: rust },
            },
        },
    })?;
    Ok(axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        // `Api` is a tower::Service.
        .nest_service("/yaml", Api::new(&from_yaml))
        .nest_service("/rust", Api::new(&from_rust)))
}
