//! Embedding seams, over real sockets in an axum and an actix-web host: what the host knows
//! about a request (its mount prefix's captures, a `HostContext` its middleware attached)
//! reaches the plans as `$request.context`, and a service relays the caller's credentials
//! only when its `forward_headers` lists them; subset mounts of one orchestrator serve only
//! their endpoints and share its reloads; a host source type owns an integration file, from
//! YAML and from the macro.

use api_orchestrator::Orchestrator;
use api_orchestrator::config::{ConfigFiles, Loader};
use api_orchestrator::web::{Api, HostContext, Select};
use serde_json::{Value, json};
use tests::hosts::{self, Running};
use tests::upstream::Upstream;

const DOMAIN: &str = r#"
endpoints:
  whoami:
    path: /whoami
    method: [GET]
    data_sources:
      - {name: profile, type: api, operation: profile, params: {tenant: "$request.context.tenant", user: "$request.context.user_id"}}
      - {name: plain, type: api, operation: plain}
    response_mapping:
      target: "$profile.target"
      tenant: "$request.context.tenant"
      user: "$request.context.user_id"
      # Credentials stay out of `$request.headers` even where a service relays them.
      authorization: "$request.headers.authorization"
"#;

fn api_sources(upstream: &Upstream) -> String {
    format!(
        r#"
api:
  sources:
    crm:
      base_url: "{url}"
      forward_headers: [Authorization, x-tenant-region]
      operations:
        profile: {{path: "/tenants/{{tenant}}/users/{{user}}"}}
    other:
      base_url: "{url}"
      operations:
        plain: {{path: /plain}}
"#,
        url = upstream.url()
    )
}

/// The plans, with the execution trace on offer (`x-debug-trace`), to show that the relayed
/// token is not in it.
fn api(upstream: &Upstream) -> (tempfile::TempDir, Api) {
    let dir = tests::config_dir(&[
        ("config.yaml", "tracking:\n  debug_view: true\n"),
        ("integrations/api_sources.yaml", &api_sources(upstream)),
        ("domains/people.yaml", DOMAIN),
    ]);
    let o = Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    (dir, Api::new(&o))
}

/// What the host's own authentication found: here, the user id its `x-user` header names
/// (and, for an operator acting for another tenant, `x-as-tenant`).
fn user_of(headers: &http::HeaderMap) -> HostContext {
    let user: u64 = headers
        .get("x-user")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let mut context = HostContext::new().with("user_id", user);
    if let Some(tenant) = headers.get("x-as-tenant").and_then(|v| v.to_str().ok()) {
        context.insert("tenant", tenant);
    }
    context
}

/// The plans at `/tenants/{tenant}/api` of an axum app, behind a middleware that attaches
/// the user.
async fn axum_host(api: Api) -> Running {
    async fn who(
        mut req: axum::extract::Request,
        next: axum::middleware::Next,
    ) -> axum::response::Response {
        let context = user_of(req.headers());
        req.extensions_mut().insert(context);
        next.run(req).await
    }
    hosts::axum(
        axum::Router::new()
            .route("/health", axum::routing::get(|| async { "ok" }))
            .nest_service("/tenants/{tenant}/api", api)
            .layer(axum::middleware::from_fn(who)),
    )
    .await
}

/// The same in actix-web: a scope with a capture, a `wrap_fn` that attaches the user.
fn actix_host(api: Api) -> Running {
    use actix_web::HttpMessage as _;
    use actix_web::dev::Service as _;
    hosts::actix(move |cfg| {
        cfg.service(
            actix_web::web::scope("/tenants/{tenant}/api")
                .wrap_fn(|req, srv| {
                    let mut headers = http::HeaderMap::new();
                    for name in ["x-user", "x-as-tenant"] {
                        if let Some(v) = req.headers().get(name)
                            && let Ok(v) = http::HeaderValue::from_bytes(v.as_bytes())
                        {
                            headers.insert(name, v);
                        }
                    }
                    req.extensions_mut().insert(user_of(&headers));
                    srv.call(req)
                })
                .configure(api_orchestrator::web::actix::configure(api.clone())),
        );
    })
}

async fn context_and_relay(upstream: &Upstream, host: &Running) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{}/tenants/acme/api/whoami", host.base))
        .header("authorization", "Bearer caller-token")
        .header("cookie", "session=caller-cookie")
        .header("x-tenant-region", "eu")
        .header("x-user", "42")
        .header("x-debug-trace", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let headers = format!("{:?}", r.headers());
    let whole: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    // The debug view answers `{data, trace}`.
    assert!(whole["trace"]["sources"].is_array(), "{whole}");
    let body = &whole["data"];
    assert_eq!(body["tenant"], "acme", "{body}");
    assert_eq!(body["user"], 42, "{body}");
    assert_eq!(body["target"], "/tenants/acme/users/42", "{body}");
    assert_eq!(body["authorization"], Value::Null, "{body}");
    // The execution trace the debug view answers with holds neither credential.
    for secret in ["caller-token", "caller-cookie"] {
        assert!(!whole.to_string().contains(secret), "{whole}");
        assert!(!headers.contains(secret), "{headers}");
    }
    let seen = upstream.seen();
    let profile = seen
        .iter()
        .find(|s| s.target == "/tenants/acme/users/42")
        .expect("the profile call");
    assert_eq!(profile.headers["authorization"], "Bearer caller-token");
    assert_eq!(profile.headers["x-tenant-region"], "eu");
    assert!(!profile.headers.contains_key("cookie"), "not listed");
    let plain = seen
        .iter()
        .find(|s| s.target == "/plain")
        .expect("the plain call");
    for h in ["authorization", "cookie", "x-tenant-region"] {
        assert!(
            !plain.headers.contains_key(h),
            "{h} went to a service that does not list it"
        );
    }
    // A value the host attaches wins over its prefix's capture of the same name.
    let r = client
        .get(format!("{}/tenants/acme/api/whoami", host.base))
        .header("x-user", "7")
        .header("x-as-tenant", "globex")
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["target"], "/tenants/globex/users/7", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axum_host_hands_its_context_and_the_callers_token_to_the_plans() {
    let upstream = Upstream::start().await;
    let (_dir, api) = api(&upstream);
    let host = axum_host(api).await;
    context_and_relay(&upstream, &host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actix_host_hands_its_context_and_the_callers_token_to_the_plans() {
    let upstream = Upstream::start().await;
    let (_dir, api) = api(&upstream);
    let host = actix_host(api);
    context_and_relay(&upstream, &host).await;
}

/// Cookies split over several fields (as HTTP/2 sends them) are relayed as one list.
#[tokio::test]
async fn split_cookies_are_relayed_as_one_field() {
    let upstream = Upstream::start().await;
    let sources = api_sources(&upstream).replace("[Authorization, x-tenant-region]", "[cookie]");
    let dir = tests::config_dir(&[
        ("integrations/api_sources.yaml", &sources),
        ("domains/people.yaml", DOMAIN),
    ]);
    let api = Api::new(&Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}")));
    let mut request = http::Request::get("/whoami")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(api_orchestrator::web::Body::Empty)
        .unwrap();
    request
        .extensions_mut()
        .insert(HostContext::new().with("tenant", "acme").with("user_id", 1));
    assert_eq!(api.handle(request).await.status(), 200);
    let seen = upstream.seen();
    let profile = seen
        .iter()
        .find(|s| s.target.starts_with("/tenants/"))
        .unwrap();
    assert_eq!(profile.headers["cookie"], "a=1; b=2");
}

/// A cached operation of a service that relays the caller's token keeps one entry per
/// token: another caller's answer is never served from the cache.
#[tokio::test]
async fn cached_answers_of_a_relaying_service_are_kept_per_caller() {
    let upstream = Upstream::start().await;
    let sources = api_sources(&upstream).replace(
        "forward_headers: [Authorization, x-tenant-region]",
        "forward_headers: [Authorization, x-tenant-region]\n      cache: 1m",
    );
    assert!(sources.contains("cache: 1m"), "{sources}");
    let dir = tests::config_dir(&[
        ("integrations/api_sources.yaml", &sources),
        ("domains/people.yaml", DOMAIN),
    ]);
    let api = Api::new(&Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}")));
    for token in ["Bearer ada", "Bearer bob", "Bearer ada"] {
        let mut request = http::Request::get("/whoami")
            .header("authorization", token)
            .body(api_orchestrator::web::Body::Empty)
            .unwrap();
        request
            .extensions_mut()
            .insert(HostContext::new().with("tenant", "acme").with("user_id", 1));
        assert_eq!(api.handle(request).await.status(), 200);
    }
    let profile_calls: Vec<String> = upstream
        .seen()
        .iter()
        .filter(|s| s.target.starts_with("/tenants/"))
        .map(|s| s.headers["authorization"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(profile_calls, ["Bearer ada", "Bearer bob"]);
}

/// `Api::handle` outside any framework reads the same extension.
#[tokio::test]
async fn a_host_context_needs_no_framework() {
    let upstream = Upstream::start().await;
    let (_dir, api) = api(&upstream);
    let mut request = http::Request::get("/whoami")
        .body(api_orchestrator::web::Body::Empty)
        .unwrap();
    request.extensions_mut().insert(
        HostContext::new()
            .with("tenant", "globex")
            .with("user_id", 7),
    );
    let response = api.handle(request).await;
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(body["tenant"], "globex", "{body}");
    assert_eq!(body["target"], "/tenants/globex/users/7", "{body}");
}

fn load_error(api_yaml: &str) -> String {
    let files = ConfigFiles::new()
        .with_file("integrations/api_sources.yaml", api_yaml)
        .with_file("domains/people.yaml", DOMAIN);
    match Loader::new().load(&files) {
        Ok(_) => panic!("loaded:\n{api_yaml}"),
        Err(e) => e.to_string(),
    }
}

/// `forward_headers` is checked at load: header names only, never one the client writes,
/// never one the service's own `headers` or `auth` sets too.
#[test]
fn forward_headers_are_checked_at_load() {
    let service = |extra: &str| {
        format!(
            "api:\n  sources:\n    crm:\n      base_url: http://127.0.0.1:1\n{extra}      operations:\n        profile: {{path: \"/tenants/{{tenant}}/users/{{user}}\"}}\n        plain: {{path: /plain}}\n"
        )
    };
    for (extra, expected) in [
        (
            "      forward_headers: [content-length]\n",
            "`content-length` is written by the client for every call",
        ),
        (
            "      forward_headers: [\"x tenant\"]\n",
            "`x tenant` is not a header name",
        ),
        (
            "      forward_headers: [x-tenant]\n      headers: {X-Tenant: acme}\n",
            "`x-tenant` is forwarded from the caller and also set in `headers`",
        ),
        (
            "      forward_headers: [authorization]\n      auth: {type: bearer, token: abc}\n",
            "`authorization` is forwarded from the caller and also set by `auth`",
        ),
        ("      forward_header: [authorization]\n", "forward_headers"),
    ] {
        let text = load_error(&service(extra));
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        assert!(
            text.contains("integrations/api_sources.yaml"),
            "names the file:\n{text}"
        );
        assert!(
            text.contains("api.sources.crm.forward_header"),
            "names the key:\n{text}"
        );
    }
}

/// `$request.context` is a keyword like `$request.auth`: the validator takes any name below
/// it, and a request built in Rust carries it.
#[tokio::test]
async fn request_context_values_reach_params_from_rust() {
    let o = Orchestrator::builder()
        .build(
            Loader::new()
                .load(&ConfigFiles::new().with_file(
                    "domains/d.yaml",
                    "endpoints:\n  e:\n    data_sources:\n      - {name: it, type: direct, params: {tenant: \"$request.context.tenant\", missing: \"$request.context.nope\"}}\n",
                ))
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap();
    let out = o
        .execute(
            "e",
            api_orchestrator::RequestContext::new()
                .with_context("tenant", "acme")
                .with_credential("Authorization", "Bearer secret"),
        )
        .await
        .unwrap();
    assert_eq!(out.response, json!({"tenant": "acme", "missing": null}));
    let request = api_orchestrator::RequestContext::new().with_credential("Cookie", "s=secret");
    let debug = format!("{request:?}");
    assert!(
        debug.contains("cookie") && !debug.contains("secret"),
        "{debug}"
    );
}

const SHOP: &str = r#"
endpoints:
  price:
    tags: [public]
    path: /price/{sku}
    method: [GET]
    data_sources:
      - {name: it, type: direct, params: {sku: "$request.sku", price: 10}}
  stock:
    path: /stock/{sku}
    method: [GET]
    data_sources:
      - {name: it, type: direct, params: {sku: "$request.sku", stock: 3}}
"#;

const PEOPLE: &str = r#"
endpoints:
  profile:
    path: /profile/{id}
    method: [GET]
    data_sources:
      - {name: it, type: direct, params: {id: "$request.id"}}
"#;

/// Two subset mounts of one orchestrator beside the whole API: each serves only its
/// endpoints (routes, OpenAPI document, the original service's listings), and a reload
/// reaches both.
async fn subset_mounts(host: impl AsyncFnOnce(Api) -> Running) {
    let dir = tests::config_dir(&[("domains/shop.yaml", SHOP), ("domains/people.yaml", PEOPLE)]);
    let o = Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let host = host(Api::new(&o)).await;
    // (Every test of this binary may run alone: reqwest needs a provider installed.)
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let status = async |path: &str| {
        client
            .get(format!("{}{path}", host.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    for (path, expected) in [
        ("/api/price/a", 200),
        ("/api/profile/1", 200),
        ("/public/price/a", 200),
        ("/public/stock/a", 404),
        ("/public/profile/1", 404),
        ("/shop/price/a", 200),
        ("/shop/stock/a", 200),
        ("/shop/profile/1", 404),
        ("/shop/orchestrator/shop/stock/a", 200),
        ("/shop/orchestrator/people/profile/1", 404),
    ] {
        assert_eq!(status(path).await, expected, "{path}");
    }
    let listing = async |path: &str| -> Value {
        let r = client
            .get(format!("{}{path}", host.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
    };
    assert_eq!(
        listing("/api/orchestrator/domains").await,
        json!(["people", "shop"])
    );
    assert_eq!(listing("/shop/orchestrator/domains").await, json!(["shop"]));
    let doc: Value = serde_json::from_slice(
        &client
            .get(format!("{}/public/openapi.json", host.base))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert_eq!(paths, ["/price/{sku}"], "{doc}");
    assert_eq!(
        doc["paths"]["/price/{sku}"]["get"]["tags"],
        json!(["shop", "public"])
    );
    // A reload tags `profile` public: the public mount serves it from then on, the shop
    // mount still does not.
    std::fs::write(
        dir.path().join("domains/people.yaml"),
        PEOPLE.replace("  profile:\n", "  profile:\n    tags: [public]\n"),
    )
    .unwrap();
    o.reload().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status("/public/profile/1").await, 200);
    assert_eq!(status("/shop/profile/1").await, 404);
    assert_eq!(status("/api/profile/1").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subset_mounts_in_axum_share_one_orchestrator() {
    subset_mounts(async |api: Api| {
        hosts::axum(
            axum::Router::new()
                .nest_service("/public", api.only(Select::new().tag("public")))
                .nest_service("/shop", api.only(Select::new().domain("shop")))
                .nest_service("/api", api),
        )
        .await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subset_mounts_in_actix_share_one_orchestrator() {
    subset_mounts(async |api: Api| {
        let (public, shop) = (
            api.only(Select::new().tag("public")),
            api.only(
                Select::new()
                    .domain("shop")
                    .endpoint("nothing_of_that_name"),
            ),
        );
        hosts::actix(move |cfg| {
            use actix_web::web::scope;
            use api_orchestrator::web::actix::configure;
            cfg.service(scope("/public").configure(configure(public.clone())))
                .service(scope("/shop").configure(configure(shop.clone())))
                .service(scope("/api").configure(configure(api.clone())));
        })
    })
    .await;
}

/// A host source type that owns `integrations/vector_db.yaml`: its entries are checked by
/// the loader, and each step's entry reaches the source the factory builds.
struct VectorDb;

impl api_orchestrator::source::SourceFactory for VectorDb {
    fn build(
        &self,
        integrations: &api_orchestrator::plan::Integrations,
    ) -> Result<
        std::sync::Arc<dyn api_orchestrator::source::DataSource>,
        api_orchestrator::source::SourceError,
    > {
        Ok(std::sync::Arc::new(Vectors(
            integrations
                .host
                .get("vector_db")
                .cloned()
                .unwrap_or_default(),
        )))
    }

    fn integration(&self) -> Option<api_orchestrator::config::IntegrationFile> {
        Some(
            api_orchestrator::config::IntegrationFile::new("vector_db")
                .required("url")
                .key("index"),
        )
    }
}

/// Answers with the settings of the entry the step names (`source_id`), or the only one.
struct Vectors(std::collections::BTreeMap<String, Value>);

#[async_trait::async_trait]
impl api_orchestrator::source::DataSource for Vectors {
    async fn fetch(
        &self,
        call: api_orchestrator::source::SourceCall<'_>,
    ) -> Result<Value, api_orchestrator::source::SourceError> {
        let entry = match call.source_id {
            Some(id) => self.0.get(id),
            None => self.0.values().next(),
        };
        Ok(json!({"settings": entry, "q": call.params.get("q")}))
    }
}

const VECTOR_FILE: &str = "vector_db:\n  sources:\n    main: {url: \"${env:VECTOR_URL:-http://127.0.0.1:6333}\", index: products}\n    archive: {url: http://127.0.0.1:6334}\n";

const SEARCH: &str = "endpoints:\n  search:\n    data_sources:\n      - {name: hits, type: vector_db, source_id: main, params: {q: \"$request.q\"}}\n      - {name: old, type: vector_db, source_id: archive, params: {q: \"$request.q\"}}\n    response_mapping: {index: \"$hits.settings.index\", url: \"$hits.settings.url\", archive: \"$old.settings.url\"}\n";

#[tokio::test]
async fn a_host_source_type_reads_its_own_integration_file() {
    let dir = tests::config_dir(&[
        ("integrations/vector_db.yaml", VECTOR_FILE),
        ("domains/shop.yaml", SEARCH),
        // A domain with its own file: its endpoints see that one.
        (
            "domains/lab/integrations/vector_db.yaml",
            "vector_db:\n  sources:\n    main: {url: http://lab:1, index: lab}\n    archive: {url: http://lab:2}\n",
        ),
        (
            "domains/lab.yaml",
            &SEARCH.replace("search:", "lab_search:"),
        ),
    ]);
    let o = Orchestrator::builder()
        .register_factory("vector_db", VectorDb)
        .load_dir(dir.path())
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx = || api_orchestrator::RequestContext::new().with_query_param("q", "kettle");
    let out = o.execute("search", ctx()).await.unwrap();
    assert_eq!(
        out.response,
        json!({"index": "products", "url": "http://127.0.0.1:6333", "archive": "http://127.0.0.1:6334"})
    );
    let out = o.execute("lab_search", ctx()).await.unwrap();
    assert_eq!(out.response["index"], "lab");
}

#[test]
fn a_host_integration_file_is_checked_like_the_built_ins() {
    let load = |files: &[(&str, &str)]| {
        let dir = tests::config_dir(files);
        match Orchestrator::builder()
            .register_factory("vector_db", VectorDb)
            .load_dir(dir.path())
        {
            Ok(_) => panic!("loaded {files:?}"),
            Err(e) => e.to_string(),
        }
    };
    let typo = load(&[
        (
            "integrations/vector_db.yaml",
            "vector_db:\n  sources:\n    main: {url: http://x, indx: products}\n",
        ),
        ("domains/shop.yaml", SEARCH),
    ]);
    for expected in [
        "integrations/vector_db.yaml:3",
        "vector_db.sources.main.indx",
        "unknown key `indx`",
        "index",
    ] {
        assert!(typo.contains(expected), "missing {expected:?} in:\n{typo}");
    }
    let missing = load(&[
        (
            "integrations/vector_db.yaml",
            "vector_db:\n  sources:\n    main: {index: products}\n",
        ),
        ("domains/shop.yaml", SEARCH),
    ]);
    assert!(missing.contains("`url`"), "{missing}");
    let misnamed = load(&[
        ("integrations/vectr_db.yaml", VECTOR_FILE),
        ("domains/shop.yaml", SEARCH),
    ]);
    assert!(
        misnamed.contains("unexpected file `integrations/vectr_db.yaml`")
            && misnamed.contains("vector_db.yaml"),
        "{misnamed}"
    );
}

/// The same host type from both macro forms: the file (`fixtures/host-types`) is checked at
/// compile time and its entries reach the factory at run time, `${env:…}` resolved with the
/// environment of the start-up, not the compiler's.
#[tokio::test]
async fn host_source_types_with_integration_files_work_from_the_macro() {
    let from_dir = api_orchestrator::orchestrate!(
        dir = "fixtures/host-types",
        source_types = [{ name: vector_db, required: [url], keys: [index] }]
    );
    let from_tokens = api_orchestrator::orchestrate! {
        config: "fixtures/host-types",
        source_types: [{ name: vector_db, required: [url], keys: [index] }],
        endpoints: {
            search: {
                data_sources: [ { name: hits, type: vector_db, params: { q: $request.q } } ],
                response_mapping: { index: $hits.settings.index, url: $hits.settings.url, q: $hits.q },
            },
        },
    };
    for plan in [from_dir, from_tokens] {
        assert!(plan.start_up_config().is_some());
        // The compiler saw the default; the process has its own value.
        let compiled = plan.integrations.global.host["vector_db"]["main"]["url"].clone();
        assert_eq!(compiled, "http://127.0.0.1:6333");
        let o = Orchestrator::builder()
            .env(|name| (name == "VECTOR_URL").then(|| "http://vectors.internal:6333".to_owned()))
            .register_factory("vector_db", VectorDb)
            .build(plan)
            .unwrap_or_else(|e| panic!("{e}"));
        let out = o
            .execute(
                "search",
                api_orchestrator::RequestContext::new().with_query_param("q", "kettle"),
            )
            .await
            .unwrap();
        assert_eq!(
            out.response,
            json!({"index": "products", "url": "http://vectors.internal:6333", "q": "kettle"})
        );
    }
}

/// A host's own binary serves its source types with `cli::serve` (the `api-orchestrator
/// serve` code), through `ServeOptions::with_builder`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_serve_takes_the_hosts_source_types() {
    use api_orchestrator::cli::{self, ServeOptions};

    let dir = tests::config_dir(&[
        ("integrations/vector_db.yaml", VECTOR_FILE),
        ("domains/shop.yaml", SEARCH),
    ]);
    // A free port (`serve` binds the address it is given).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = ServeOptions {
        bind: Some(format!("127.0.0.1:{port}")),
        ..ServeOptions::new(dir.path())
    }
    .with_builder(|b| b.register_factory("vector_db", VectorDb));
    let settings = cli::settings(&options.config, &options.env).unwrap();
    let server = tokio::spawn(async move {
        cli::serve(options, &settings)
            .await
            .map_err(|e| e.to_string())
    });

    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/shop/search?q=kettle");
    let mut answer = None;
    for _ in 0..200 {
        assert!(!server.is_finished(), "serve stopped: {:?}", server.await);
        if let Ok(r) = client.get(&url).send().await {
            answer = Some((r.status().as_u16(), r.bytes().await.unwrap()));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    server.abort();
    let (status, body) = answer.expect("the server answered");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["index"], "products");
    assert_eq!(body["archive"], "http://127.0.0.1:6334");
}
