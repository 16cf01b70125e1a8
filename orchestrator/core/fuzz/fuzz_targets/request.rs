//! The HTTP front door: any request (method, target, headers, body) to a config with typed
//! inputs, expressions over the request and a POST body ends in a response, a 4xx
//! problem+json for the client's mistakes, never a panic or a 5xx.
//!
//! Input: `METHOD TARGET\n`, then `name: value` header lines, an empty line, and the body.
#![no_main]

use std::sync::OnceLock;

use api_orchestrator::Orchestrator;
use api_orchestrator::config::{ConfigFiles, Loader};
use api_orchestrator::web::{Api, Body};
use libfuzzer_sys::fuzz_target;

const DOMAIN: &str = r#"
endpoints:
  customer:
    path: /customers/{id}
    method: [GET, POST]
    input:
      path: {id: integer}
      query: {limit: integer, tag: {type: string, required: false}}
    data_sources:
      - {name: c, type: direct, params: {id: "$request.id", limit: "$request.limit", tag: "$request.tag"}}
    response_mapping:
      id: "$c.id"
      next: "$= $c.id + 1"
      label: "$= upper($c.tag || 'none')"
      page: "$= $c.limit * 2"
  echo:
    path: /echo
    method: [POST]
    input:
      body: {name: string, score: {type: number, required: false}, tags: {type: array, required: false}}
    data_sources:
      - {name: b, type: direct, params: "$request.body"}
    response_mapping:
      name: "$b.name"
      first: "$b.tags[0]"
      scaled: "$= $b.score * 10"
      header: "$request.headers.x-tenant"
  search:
    path: /search
    data_sources:
      - name: s
        type: direct
        params: {q: "$request.q", items: [1, 2, 3]}
        transform:
          - filter: "$item > 1"
    response_mapping: {q: "$s.q", items: "$s.items"}
"#;

fn api() -> &'static (tokio::runtime::Runtime, Api) {
    static API: OnceLock<(tokio::runtime::Runtime, Api)> = OnceLock::new();
    API.get_or_init(|| {
        let files = ConfigFiles::new()
            .with_file(
                "config.yaml",
                "tracking: {debug_view: true}\ncors: {enabled: true, allow_origins: [\"*\"]}\n",
            )
            .with_file("domains/shop.yaml", DOMAIN);
        let plan = Loader::new()
            .load(&files)
            .unwrap_or_else(|e| panic!("the fuzz config loads: {e}"));
        let orchestrator = Orchestrator::builder()
            .build(plan)
            .unwrap_or_else(|e| panic!("the fuzz config builds: {e}"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        (runtime, Api::new(&orchestrator))
    })
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let Some((method, target)) = lines.next().and_then(|l| l.split_once(' ')) else {
        return;
    };
    let mut request = http::Request::builder().method(method).uri(target);
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            request = request.header(name.trim(), value.trim());
        }
    }
    let body = if body.is_empty() {
        Body::Empty
    } else {
        Body::Bytes(body.to_vec().into())
    };
    let Ok(request) = request.body(body) else {
        return;
    };
    let (runtime, api) = api();
    let response = runtime.block_on(api.handle(request));
    let status = response.status().as_u16();
    assert!(status < 500, "{status}: {:?}", response.body());
});
