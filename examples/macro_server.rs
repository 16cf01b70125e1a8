//! A server whose endpoints exist only as Rust tokens: `orchestrate!` checks them when this
//! file compiles (a typo in a source name is a compile error on that token), and the plan it
//! builds is served through axum like a YAML-loaded one, with `/docs`.
//!
//! ```text
//! cargo run --example macro_server                  # http://127.0.0.1:8001/api/docs/
//! cargo run --example macro_server -- 127.0.0.1:9000
//! curl 'http://127.0.0.1:8001/api/hello/Ada?excited=true'
//! ```

use api_orchestrator::Orchestrator;
use api_orchestrator::orchestrate;
use api_orchestrator::web::Api;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let plan = orchestrate! {
        domain: greetings,
        endpoints: {
            hello: {
                description: "Greets someone, optionally with enthusiasm",
                path: "/hello/{name}",
                method: [GET],
                input: {
                    path: { name: string },
                    query: { excited: { type: boolean, required: false } },
                },
                data_sources: [
                    {
                        name: greeting, type: direct,
                        params: {
                            text: $= "Hello, " + $request.name + if($request.excited == true, "!", "."),
                            name: $request.name,
                        },
                    },
                ],
                response_mapping: {
                    message: $greeting.text,
                    name_length: $= len($greeting.name),
                    shouted: $= upper($greeting.text),
                },
            },
            farewell: {
                path: "/bye/{name}",
                method: [GET],
                data_sources: [ { name: bye, type: direct, params: { name: $request.name } } ],
                response_mapping: { message: $= "Goodbye, " + $bye.name + "." },
            },
        },
    };
    let orchestrator = Orchestrator::builder().build(plan)?;
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .nest_service("/api", Api::new(&orchestrator));
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8001".into());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("serving on http://{bind}/api (docs: http://{bind}/api/docs/)");
    axum::serve(listener, app).await?;
    Ok(())
}
