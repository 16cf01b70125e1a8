//! Instructions per upstream HTTP call for the client stacks the library could use, counted
//! by `benches/upstream-instructions.sh` under callgrind on this program's main thread (the
//! backend answers on a thread of its own and is not counted).
//!
//! ```text
//! upstream-instructions OPTION CALLS
//! ```
//!
//! Each option makes CALLS sequential `GET`s of the load harness's JSON answer (226 bytes,
//! ten fields) over one kept-alive connection to an in-process axum backend, with the headers
//! the library sends (`x-request-id`, `traceparent`, `accept`, `user-agent`), and parses each
//! body into a `serde_json::Value`:
//!
//! | option | stack |
//! |---|---|
//! | `reqwest` | reqwest as the library configured it before the lean transport: no redirects, no retries, default headers, the URL built per call with `Url::set_path` |
//! | `reqwest-prepared` | the same client, with the URL parsed and the headers built once: each call clones a prepared `Request` and `execute`s it |
//! | `hyper-util` | hyper-util's pooled `legacy::Client` over its `HttpConnector` |
//! | `hyper-conn` | hyper's connection API, one connection reused call after call (the lean transport's core) |
//! | `json` | no call: only the parse of the same body, to tell the JSON's share |
//! | `json-sonic` | the same parse by `sonic-rs` into a `serde_json::Value` |
//! | `json-sonic-value` | `sonic-rs` into its own `Value` (what the parse costs without building `serde_json`'s maps) |

use std::net::SocketAddr;

// The allocator of the load harness and the demo server.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use serde_json::Value;

const ANSWER: &str = r#"{"source":"credit","score":712,"band":"A","limit":5000,"ltv":1520.5,"frequency":3.2,"churn":0.12,"items":[{"id":1,"amount":10.5},{"id":2,"amount":20.25}],"meta":{"region":"eu","tier":"gold"}}"#;
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const AGENT: &str = "orchestrator/bench";

fn backend() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("backend".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("backend runtime");
            rt.block_on(async {
                let app = axum::Router::new().route(
                    "/score/{id}",
                    axum::routing::get(|| async {
                        ([(http::header::CONTENT_TYPE, "application/json")], ANSWER)
                    }),
                );
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("address"))
                    .expect("send");
                axum::serve(listener, app).await.expect("serve");
            });
        })
        .expect("backend thread");
    rx.recv().expect("backend address")
}

fn parse(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("JSON")
}

async fn reqwest_as_configured(addr: SocketAddr, calls: u64) {
    let client = reqwest_client();
    let base = reqwest::Url::parse(&format!("http://{addr}")).expect("URL");
    for i in 0..calls {
        let mut url = base.clone();
        url.set_path(&format!("/score/{}", i % 100));
        let resp = client
            .get(url)
            .header("x-request-id", "req-1")
            .header("traceparent", TRACEPARENT)
            .send()
            .await
            .expect("call");
        std::hint::black_box(parse(&resp.bytes().await.expect("body")));
    }
}

async fn reqwest_prepared(addr: SocketAddr, calls: u64) {
    let client = reqwest_client();
    let prepared = client
        .get(format!("http://{addr}/score/7"))
        .header("x-request-id", "req-1")
        .header("traceparent", TRACEPARENT)
        .build()
        .expect("request");
    for _ in 0..calls {
        let req = prepared.try_clone().expect("clone");
        let resp = client.execute(req).await.expect("call");
        std::hint::black_box(parse(&resp.bytes().await.expect("body")));
    }
}

fn reqwest_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(AGENT)
        .retry(reqwest::retry::never().max_retries_per_request(0))
        .build()
        .expect("client")
}

fn request(uri: String, host: Option<String>) -> http::Request<Full<Bytes>> {
    let mut builder = http::Request::get(uri)
        .header("x-request-id", "req-1")
        .header("traceparent", TRACEPARENT)
        .header("accept", "*/*")
        .header("user-agent", AGENT);
    if let Some(host) = host {
        builder = builder.header("host", host);
    }
    builder.body(Full::new(Bytes::new())).expect("request")
}

async fn hyper_util_client(addr: SocketAddr, calls: u64) {
    use hyper_util::client::legacy::Client;
    let client: Client<_, Full<Bytes>> =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    for i in 0..calls {
        let resp = client
            .request(request(format!("http://{addr}/score/{}", i % 100), None))
            .await
            .expect("call");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        std::hint::black_box(parse(&body));
    }
}

async fn hyper_conn(addr: SocketAddr, calls: u64) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(connection);
    let host = addr.to_string();
    for i in 0..calls {
        sender.ready().await.expect("ready");
        let resp = sender
            .send_request(request(format!("/score/{}", i % 100), Some(host.clone())))
            .await
            .expect("call");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        std::hint::black_box(parse(&body));
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage =
        "usage: upstream-instructions reqwest|reqwest-prepared|hyper-util|hyper-conn|json CALLS";
    let option = args.next().expect(usage);
    let calls: u64 = args.next().and_then(|n| n.parse().ok()).expect(usage);
    let addr = backend();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        match option.as_str() {
            "reqwest" => reqwest_as_configured(addr, calls).await,
            "reqwest-prepared" => reqwest_prepared(addr, calls).await,
            "hyper-util" => hyper_util_client(addr, calls).await,
            "hyper-conn" => hyper_conn(addr, calls).await,
            "json" => {
                for _ in 0..calls {
                    std::hint::black_box(parse(std::hint::black_box(ANSWER.as_bytes())));
                }
            }
            "json-sonic" => {
                for _ in 0..calls {
                    let v: Value = sonic_rs::from_slice(std::hint::black_box(ANSWER.as_bytes()))
                        .expect("JSON");
                    std::hint::black_box(v);
                }
            }
            "json-sonic-value" => {
                for _ in 0..calls {
                    let v: sonic_rs::Value =
                        sonic_rs::from_slice(std::hint::black_box(ANSWER.as_bytes()))
                            .expect("JSON");
                    std::hint::black_box(v);
                }
            }
            other => panic!("{other}: {usage}"),
        }
    });
}
