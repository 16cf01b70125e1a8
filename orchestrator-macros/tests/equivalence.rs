//! The macro and the YAML loader produce the same plan: every endpoint of the shipped example
//! config, written once in Rust tokens, equals its YAML form; the compile-time YAML forms equal
//! the run-time load; and a macro plan runs like a loaded one.

use orchestrator::config::Loader;
use orchestrator::plan::Plan;
use orchestrator::{Orchestrator, RequestContext};
use orchestrator_macros::orchestrate;

fn yaml(dir: &str) -> Plan {
    Loader::new()
        .load_dir(format!("{}/{dir}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_example_endpoint_written_in_tokens_equals_its_yaml() {
    let tokens: Plan = orchestrate! {
        config: "../examples/config",
        domain: customers,
        endpoints: {
            get_customer: {
                description: "Get customer details from database",
                endpoint_type: database,
                data_sources: [
                    { name: customer_data, type: database, operation: get_customer,
                      params: { customer_id: $request.customer_id } },
                ],
                primary_source: customer_data,
                response_mapping: null,
            },
            get_credit_score: {
                description: "Get credit score from external API",
                endpoint_type: api,
                data_sources: [
                    { name: credit_data, type: api, operation: get_customer_credit,
                      params: { customer_id: $request.customer_id } },
                ],
                primary_source: credit_data,
                response_mapping: null,
            },
            get_customer_features: {
                description: "Get customer features from Feast",
                endpoint_type: feast,
                data_sources: [
                    { name: customer_features, type: feast, operation: get_customer_features,
                      params: { customer_id: $request.customer_id } },
                ],
                primary_source: customer_features,
                response_mapping: null,
            },
            get_customer_360: {
                description: "Get comprehensive customer view",
                endpoint_type: composite,
                data_sources: [
                    { name: profile, type: database, operation: get_customer,
                      params: { customer_id: $request.customer_id } },
                    { name: features, type: feast, operation: get_customer_features,
                      params: { customer_id: $request.customer_id } },
                ],
                response_mapping: {
                    id: $profile.customer_id,
                    name: $profile.name,
                    email: $profile.email,
                    lifetime_value: $features.customer_lifetime_value,
                    purchase_frequency: $features.purchase_frequency,
                },
            },
            get_customer_orders: {
                description: "A customer's shipped orders, newest first, with a total",
                data_sources: [
                    {
                        name: orders, type: database, operation: get_orders,
                        params: { customer_id: $request.customer_id },
                        transform: [
                            { filter: $item.status == "shipped" },
                            { map: { id: $item.order_id, total: $item.amount, date: $item.order_date } },
                        ],
                    },
                ],
                response_mapping: {
                    customer_id: $request.customer_id,
                    orders: $orders,
                    order_count: $= len($orders),
                    total_spent: $= round(sum($orders[*].total), 2),
                },
            },
            get_customer_summary: {
                description: "Profile, then the customer's orders looked up by the profile's id",
                data_sources: [
                    { name: profile, type: database, operation: get_customer,
                      params: { customer_id: $request.customer_id } },
                    {
                        name: orders, type: database, operation: get_orders,
                        condition: $profile != null,
                        params: { customer_id: $profile.customer_id },
                        on_error: default,
                        default: [],
                    },
                ],
                response_mapping: {
                    name: $profile.name,
                    segment: $profile.segment || "standard",
                    order_count: $= len($orders),
                    last_order_id: $orders[0].order_id,
                },
            },
        },
    };
    let loaded = yaml("../examples/config");
    assert_eq!(tokens.endpoints.len(), loaded.endpoints.len());
    for (t, y) in tokens.endpoints.iter().zip(&loaded.endpoints) {
        assert_eq!(t, y, "endpoint `{}` differs", y.name);
    }
    assert_eq!(tokens, loaded);
}

#[test]
fn compile_time_yaml_equals_the_run_time_load() {
    let dir: Plan = orchestrate!(dir = "../examples/config");
    assert_eq!(dir, yaml("../examples/config"));
    let file: Plan = orchestrate!(file = "../tests/fixtures/valid/direct/domains/greetings.yaml");
    assert_eq!(file, yaml("../tests/fixtures/valid/direct"));
}

#[tokio::test]
async fn a_macro_plan_runs_like_a_loaded_one() {
    let plan = orchestrate! {
        domain: greetings,
        endpoints: {
            greet: {
                path: "/greet/{name}",
                data_sources: [ { name: hello, type: direct, params: { name: $request.name } } ],
                response_mapping: { greeting: $= "Hello, " + $hello.name + "!", loud: $= upper($hello.name) },
            },
        },
    };
    let o = Orchestrator::builder()
        .build(plan)
        .unwrap_or_else(|e| panic!("{e}"));
    let out = o
        .execute(
            "greet",
            RequestContext::new().with_path_param("name", "Ada"),
        )
        .await
        .unwrap();
    assert_eq!(
        out.response,
        serde_json::json!({"greeting": "Hello, Ada!", "loud": "ADA"})
    );
}
