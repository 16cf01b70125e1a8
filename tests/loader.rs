//! The seed README's endpoint examples load unchanged, and produce the plan we expect.

use std::path::{Path, PathBuf};
use std::time::Duration;

use api_orchestrator::config::{ConfigFiles, LoadError, Loader};
use api_orchestrator::expr::{Expr, Reference, RequestPart, Root, Segment, Template};
use api_orchestrator::plan::{
    ApiAuth, DbParam, EndpointType, HttpMethod, ModelProtocol, ReturnType, SourceStep,
};
use serde_json::json;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn reference(root: Root, path: &[&str]) -> Template {
    Template::Expr(Expr::Ref(Reference {
        root,
        path: path.iter().map(|f| Segment::Field((*f).into())).collect(),
    }))
}

fn request(field: &str) -> Template {
    reference(Root::Request(RequestPart::Any), &[field])
}

fn source_ref(source: &str, field: &str) -> Template {
    reference(Root::Source(source.into()), &[field])
}

/// A step as the plan model builds it from outside the crate: the default, then each field.
fn step(name: &str, kind: &str, operation: &str) -> SourceStep {
    let mut step = SourceStep::default();
    step.name = name.into();
    step.kind = kind.into();
    step.operation = Some(operation.into());
    step.params = vec![("customer_id".into(), request("customer_id"))].into();
    step
}

fn load_seed() -> api_orchestrator::ValidPlan {
    Loader::new()
        .with_env(|name| (name == "CREDIT_API_TOKEN").then(|| "t0ken".to_owned()))
        .load_dir(fixture("valid/seed"))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn seed_endpoints_load_unchanged() {
    let plan = load_seed();
    let names: Vec<_> = plan.endpoints.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "get_customer",
            "get_credit_score",
            "get_customer_features",
            "get_customer_360"
        ]
    );

    let single = [
        (
            "get_customer",
            EndpointType::Database,
            "customer_data",
            "database",
            "get_customer",
        ),
        (
            "get_credit_score",
            EndpointType::Api,
            "credit_data",
            "api",
            "get_customer_credit",
        ),
        (
            "get_customer_features",
            EndpointType::Feast,
            "customer_features",
            "feast",
            "get_customer_features",
        ),
    ];
    for (name, kind, source, source_type, operation) in single {
        let e = plan.endpoint(name).unwrap();
        assert_eq!(e.domain.as_deref(), Some("customers"));
        assert_eq!(e.endpoint_type, Some(kind));
        assert_eq!(e.sources, [step(source, source_type, operation)]);
        assert_eq!(e.primary_source.as_deref(), Some(source));
        assert_eq!(
            e.response_mapping, None,
            "`response_mapping: null` means the primary source"
        );
        assert_eq!(e.origin.file.as_deref(), Some("domains/customers.yaml"));
    }

    let c360 = plan.endpoint("get_customer_360").unwrap();
    assert_eq!(
        c360.description.as_deref(),
        Some("Get comprehensive customer view")
    );
    assert_eq!(c360.endpoint_type, Some(EndpointType::Composite));
    assert_eq!(
        c360.sources,
        [
            step("profile", "database", "get_customer"),
            step("features", "feast", "get_customer_features")
        ]
    );
    assert_eq!(c360.primary_source, None);
    assert_eq!(
        c360.response_mapping,
        Some(Template::Object(
            vec![
                ("id".into(), source_ref("profile", "customer_id")),
                ("name".into(), source_ref("profile", "name")),
                ("email".into(), source_ref("profile", "email")),
                (
                    "lifetime_value".into(),
                    source_ref("features", "customer_lifetime_value")
                ),
                (
                    "purchase_frequency".into(),
                    source_ref("features", "purchase_frequency")
                ),
            ]
            .into()
        ))
    );
}

#[test]
fn seed_routes_name_the_id_segment_after_what_the_endpoint_reads() {
    let plan = load_seed();
    let routes: Vec<String> = plan
        .endpoint("get_customer")
        .unwrap()
        .routes()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        routes,
        [
            "GET /customers/get_customer",
            "POST /customers/get_customer",
            "GET /customers/get_customer/{customer_id}",
            "POST /customers/get_customer/{customer_id}",
        ]
    );
}

#[test]
fn seed_integrations_and_settings() {
    let plan = load_seed();
    assert_eq!(plan.settings.endpoint_timeout, Duration::from_secs(30));
    assert_eq!(plan.settings.source_timeout, Duration::from_secs(5));
    assert_eq!(plan.settings.server.port, 8000);

    let i = &plan.integrations.global;
    let conn = &i.database.sources["default"];
    let expected_db = fixture("valid/seed").join("customer360.db");
    assert_eq!(
        conn.url.expose(),
        format!("sqlite://{}", expected_db.display()),
        "relative SQLite paths resolve against the config dir"
    );
    assert_eq!(conn.pool_size, Some(5));
    let op = &i.database.operations["get_customer"];
    assert_eq!(
        op.query,
        "SELECT * FROM customers WHERE customer_id = :customer_id"
    );
    assert_eq!(op.params, [DbParam::untyped("customer_id")]);
    assert_eq!(op.return_type, ReturnType::Single);
    assert_eq!(
        i.database.operations["get_orders"].return_type,
        ReturnType::List
    );

    let api = &i.api.sources["credit_api"];
    assert_eq!(api.base_url.expose(), "http://127.0.0.1:5000/api/v1");
    assert_eq!(api.http.timeout, Some(Duration::from_secs(5)));
    assert_eq!(api.http.headers["Accept"].expose(), "application/json");
    assert_eq!(
        api.auth,
        Some(ApiAuth::Bearer {
            token: "t0ken".into()
        }),
        "env references are resolved at load"
    );
    let credit = &api.operations["get_customer_credit"];
    assert_eq!(
        (credit.method, credit.path.as_str()),
        (HttpMethod::Get, "/customers/{customer_id}/credit-score")
    );

    let feast = &i.feast.sources["default"];
    assert_eq!(feast.url.expose(), "http://127.0.0.1:6566");
    let features = &feast.operations["get_customer_features"];
    assert_eq!(
        features.features,
        [
            "customer_stats:customer_lifetime_value",
            "customer_stats:purchase_frequency"
        ]
    );
    assert_eq!(features.entity_keys, ["customer_id"]);
    let fallback = features.database_fallback.as_ref().unwrap();
    assert_eq!(
        fallback.mapping["customer_stats:customer_lifetime_value"],
        "customer_lifetime_value"
    );

    let churn = &i.ml.sources["scoring"].models["churn"];
    assert_eq!(churn.protocol, ModelProtocol::V2);
    assert_eq!(churn.inputs, ["lifetime_value", "purchase_frequency"]);
    assert_eq!(churn.outputs["probability"], "predict_proba[1]");
    assert!(plan.integrations.domains.is_empty());
}

#[test]
fn missing_environment_variable_is_named() {
    let err = Loader::new()
        .with_env(|_| None)
        .load_dir(fixture("valid/seed"))
        .unwrap_err();
    let LoadError::Invalid(diags) = err else {
        panic!("expected diagnostics")
    };
    assert_eq!(diags.len(), 1, "{diags}");
    let text = diags.to_string();
    assert!(text.contains("`CREDIT_API_TOKEN` is not set"), "{text}");
    assert!(text.contains("integrations/api_sources.yaml:7:"), "{text}");
}

#[test]
fn per_domain_files_override_the_global_ones() {
    let dir = std::env::temp_dir().join(format!("orchestrator-override-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let write = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let db = |url: &str, op: &str| {
        format!(
            "database:\n  sources:\n    default: {{connection_string: \"{url}\"}}\n  operations:\n    {op}: {{query: \"SELECT 1\"}}\n"
        )
    };
    let endpoint = |op: &str| {
        format!(
            "endpoints:\n  e_{op}:\n    data_sources:\n      - {{name: s, type: database, operation: {op}}}\n"
        )
    };
    write("database.yaml", &db("sqlite:///global.db", "global_op"));
    write("domains/a.yaml", &endpoint("global_op"));
    write("domains/b.yaml", &endpoint("local_op"));
    write("domains/b/database.yaml", &db("sqlite:///b.db", "local_op"));
    let plan = Loader::new()
        .load_dir(&dir)
        .unwrap_or_else(|e| panic!("{e}"));
    let a = plan.endpoint("e_global_op").unwrap();
    let b = plan.endpoint("e_local_op").unwrap();
    assert!(
        plan.integrations_for(a)
            .database
            .operations
            .contains_key("global_op")
    );
    let b_db = &plan.integrations_for(b).database;
    assert!(b_db.operations.contains_key("local_op") && !b_db.operations.contains_key("global_op"));
    assert!(b_db.sources["default"].url.expose().ends_with("b.db"));

    // The global operation is not visible in domain `b`: a reference to it is an error there.
    write(
        "domains/b.yaml",
        &endpoint("global_op").replace("e_global_op", "e_b"),
    );
    let err = Loader::new().load_dir(&dir).unwrap_err().to_string();
    assert!(
        err.contains("unknown database operation `global_op`") && err.contains("domains/b.yaml"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn templates_keep_literals_as_literals() {
    let dir = fixture("valid/direct");
    let plan = Loader::new().load_dir(&dir).unwrap();
    let mapping = plan
        .endpoint("greet")
        .unwrap()
        .response_mapping
        .clone()
        .unwrap();
    assert!(matches!(mapping, Template::Object(_)));
    let literal = Template::from_value(&json!({"a": 1, "b": ["x", true], "c": "$$5"})).unwrap();
    assert_eq!(
        literal,
        Template::Literal(json!({"a": 1, "b": ["x", true], "c": "$5"}))
    );
}

#[test]
fn a_config_in_memory_loads_like_one_on_disk() {
    let dir = fixture("valid/seed");
    let env = |name: &str| (name == "CREDIT_API_TOKEN").then(|| "t0ken".to_owned());
    let on_disk = Loader::new().with_env(env).load_dir(&dir).unwrap();
    let mut files = ConfigFiles::new().with_base_dir(&dir);
    for (rel, text) in ConfigFiles::read_dir(&dir).unwrap().iter() {
        files.insert(rel, text);
    }
    assert_eq!(Loader::new().with_env(env).load(&files).unwrap(), on_disk);

    // Mistakes in memory are located in the text held there.
    let files = ConfigFiles::new().with_file(
        "domains/shop.yaml",
        "endpoints:\n  echo:\n    data_sources:\n      - name: it\n        type: direct\n        parms: {}\n",
    );
    let error = Loader::new().load(&files).unwrap_err();
    let shown = format!("{error:?}");
    assert!(
        shown.contains("error[unknown-key]") && shown.contains("--> domains/shop.yaml:6:9"),
        "Debug shows the rendered diagnostics:\n{shown}"
    );
    assert!(shown.contains("did you mean `params`?"), "{shown}");
}

#[cfg(unix)]
#[test]
fn a_dangling_domain_file_is_an_error_naming_it() {
    let dir = tests::config_dir(&[("domains/a.yaml", "endpoints: {}\n")]);
    std::os::unix::fs::symlink(
        dir.path().join("gone.yaml"),
        dir.path().join("domains/b.yaml"),
    )
    .unwrap();
    let error = Loader::new().load_dir(dir.path()).unwrap_err();
    let LoadError::Io { path, source } = &error else {
        panic!("expected an I/O error, got {error}");
    };
    assert_eq!(path, &dir.path().join("domains/b.yaml"));
    assert!(source.to_string().contains("dangling"), "{error}");
}

#[cfg(unix)]
#[test]
fn a_stray_file_is_reported_by_name_without_being_read() {
    // A misnamed integration file that cannot even be read: the loader never reads files it
    // does not use, so the mistake is the "did you mean" diagnostic, not an I/O error.
    let dir = tests::config_dir(&[("domains/a.yaml", "endpoints: {}\n")]);
    std::fs::create_dir(dir.path().join("integrations")).unwrap();
    std::os::unix::fs::symlink(
        dir.path().join("gone.yaml"),
        dir.path().join("integrations/api_source.yaml"),
    )
    .unwrap();
    let error = Loader::new().load_dir(dir.path()).unwrap_err();
    let shown = error.to_string();
    assert!(error.diagnostics().is_some(), "{shown}");
    assert!(
        shown.contains("unexpected file `integrations/api_source.yaml`")
            && shown.contains("did you mean `api_sources.yaml`?"),
        "{shown}"
    );
}
