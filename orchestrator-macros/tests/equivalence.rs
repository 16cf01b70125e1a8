//! The macro and the YAML loader produce the same plan: every endpoint of the shipped example
//! config, written once in Rust tokens, equals its YAML form; the compile-time YAML forms equal
//! the run-time load; and a macro plan runs like a loaded one.

use api_orchestrator::config::Loader;
use api_orchestrator::{Orchestrator, RequestContext, ValidPlan, orchestrate};

fn yaml(dir: &str) -> ValidPlan {
    Loader::new()
        .load_dir(format!("{}/{dir}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_example_endpoint_written_in_tokens_equals_its_yaml() {
    let customers: ValidPlan = orchestrate! {
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
                      params: { customer_id: $request.customer_id }, on_not_found: 404 },
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
                description: "Customer 360: profile, orders, credit score, features and churn prediction",
                endpoint_type: composite,
                input: { path: { customer_id: integer } },
                data_sources: [
                    { name: profile, type: database, operation: get_customer,
                      params: { customer_id: $request.customer_id }, required: true },
                    { name: orders, type: database, operation: get_orders,
                      params: { customer_id: $request.customer_id } },
                    { name: credit, type: api, operation: get_customer_credit,
                      params: { customer_id: $request.customer_id }, on_error: skip },
                    { name: features, type: feast, operation: get_customer_features,
                      params: { customer_id: $request.customer_id } },
                    {
                        name: churn, type: ml, operation: churn,
                        condition: $features.customer_lifetime_value != null,
                        params: {
                            customer_lifetime_value: $features.customer_lifetime_value,
                            purchase_frequency: $features.purchase_frequency,
                            days_since_last_order: $features.days_since_last_order,
                        },
                        on_error: skip,
                    },
                ],
                response_mapping: {
                    customer_id: $profile.customer_id,
                    personal_info: {
                        name: $profile.name,
                        email: $profile.email,
                        city: $profile.city,
                        country: $profile.country,
                    },
                    account_info: {
                        segment: $profile.segment || "standard",
                        member_since: $profile.signup_date,
                        active: $profile.is_active,
                        credit_score: $credit.credit_score,
                    },
                    behavior: {
                        lifetime_value: $features.customer_lifetime_value,
                        purchase_frequency: $features.purchase_frequency,
                        days_since_last_order: $features.days_since_last_order,
                        order_count: $= len($orders),
                        total_spent: $= round(sum($orders[*].amount), 2),
                    },
                    recent_orders: $orders,
                    predictions: {
                        churn_probability: $churn.probability,
                        will_churn: $churn.will_churn,
                    },
                },
            },
            get_customer_orders: {
                description: "A customer's shipped orders, newest first, with a total",
                data_sources: [
                    { name: customer, type: database, operation: get_customer,
                      params: { customer_id: $request.customer_id }, required: true },
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
                      params: { customer_id: $request.customer_id }, required: true },
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
    let flows: ValidPlan = orchestrate! {
        config: "../examples/config",
        domain: flows,
        endpoints: {
            customer_credit_overview: {
                description: "Multi-source flow: the database, request parameters and the external credit API",
                path: "/credit-overview/{customer_id}",
                method: [GET],
                max_in_flight: { limit: 128, queue: 256 },
                input: {
                    path: { customer_id: integer },
                    query: { currency: { type: string, required: false } },
                },
                data_sources: [
                    { name: profile, type: database, operation: get_customer,
                      params: { customer_id: $request.customer_id }, required: true },
                    { name: stats, type: database, operation: order_stats,
                      params: { customer_id: $request.customer_id } },
                    { name: credit, type: api, operation: get_customer_credit,
                      params: { customer_id: $request.customer_id },
                      cache: { ttl: 30s, stale_if_error: 5m },
                      fallback: { value: { credit_score: null, credit_limit: null, bureau: unavailable } } },
                ],
                response_mapping: {
                    customer: { id: $profile.customer_id, name: $profile.name, segment: $profile.segment || "standard" },
                    currency: $request.currency || "USD",
                    spending: { orders: $stats.order_count, total: $stats.total_spent, last_order: $stats.last_order_date },
                    credit: { score: $credit.credit_score, limit: $credit.credit_limit, bureau: $credit.bureau },
                    requested_by: $request.headers.x-client || "anonymous",
                },
            },
        },
    };
    let recommendations: ValidPlan = orchestrate! {
        config: "../examples/config",
        domain: recommendations,
        endpoints: {
            product_recommendations: {
                description: "Products for a customer: request parameters and Feast features, then the recommendation model",
                path: "/recommendations/{customer_id}",
                method: [GET],
                input: {
                    path: { customer_id: integer },
                    query: { category: { type: string, required: false, description: "books, garden, or anything else" } },
                },
                data_sources: [
                    { name: customer, type: database, operation: get_customer,
                      params: { customer_id: $request.customer_id }, required: true },
                    { name: features, type: feast, operation: get_customer_features,
                      params: { customer_id: $request.customer_id } },
                    {
                        name: model, type: ml, operation: recommender,
                        params: {
                            customer_lifetime_value: $features.customer_lifetime_value || 0,
                            purchase_frequency: $features.purchase_frequency || 0,
                            category_code: $= if($request.category == "books", 1, if($request.category == "garden", 2, 0)),
                        },
                    },
                ],
                response_mapping: {
                    customer_id: $request.customer_id,
                    category: $request.category || "all",
                    recommendations: $model.products,
                    scores: $model.scores,
                },
            },
        },
    };
    let risk: ValidPlan = orchestrate! {
        config: "../examples/config",
        domain: risk,
        endpoints: {
            credit_risk: {
                description: "Credit risk of a customer: database, then the credit bureau and Feast features, then the risk model",
                path: "/risk/{customer_id}",
                method: [GET],
                input: { path: { customer_id: integer } },
                data_sources: [
                    { name: profile, type: database, operation: get_customer,
                      params: { customer_id: $request.customer_id }, required: true },
                    { name: credit, type: api, operation: get_customer_credit,
                      condition: $profile != null, params: { customer_id: $profile.customer_id } },
                    { name: features, type: feast, operation: get_customer_features,
                      condition: $profile != null, params: { customer_id: $profile.customer_id } },
                    {
                        name: risk, type: ml, operation: credit_risk,
                        condition: $credit != null,
                        params: {
                            credit_score: $credit.credit_score,
                            debt_ratio: $credit.debt_ratio,
                            late_payments: $credit.late_payments,
                            customer_lifetime_value: $features.customer_lifetime_value || 0,
                        },
                    },
                ],
                response_mapping: {
                    customer_id: $profile.customer_id,
                    name: $profile.name,
                    risk_score: $= round($risk.default_probability * 1000),
                    risk_band: $= if($risk.default_probability < 0.2, "low", if($risk.default_probability < 0.5, "medium", "high")),
                    key_factors: {
                        credit_score: $credit.credit_score,
                        debt_ratio: $credit.debt_ratio,
                        late_payments: $credit.late_payments,
                        lifetime_value: $features.customer_lifetime_value,
                    },
                },
            },
            credit_risk_from_features: {
                description: "Credit risk from features the caller provides",
                path: "/risk/score",
                method: [POST],
                input: {
                    body: {
                        credit_score: number,
                        debt_ratio: number,
                        late_payments: integer,
                        customer_lifetime_value: { type: number, required: false },
                    },
                },
                data_sources: [
                    {
                        name: risk, type: ml, operation: credit_risk,
                        params: {
                            credit_score: $request.body.credit_score,
                            debt_ratio: $request.body.debt_ratio,
                            late_payments: $request.body.late_payments,
                            customer_lifetime_value: $request.body.customer_lifetime_value || 0,
                        },
                    },
                ],
                response_mapping: {
                    risk_score: $= round($risk.default_probability * 1000),
                    risk_band: $= if($risk.default_probability < 0.2, "low", if($risk.default_probability < 0.5, "medium", "high")),
                    default_probability: $risk.default_probability,
                },
            },
        },
    };
    let loaded = yaml("../examples/config");
    // Domain files load in name order.
    let tokens: Vec<_> = [
        customers.endpoints.clone(),
        flows.endpoints.clone(),
        recommendations.endpoints.clone(),
        risk.endpoints.clone(),
    ]
    .concat();
    assert_eq!(tokens.len(), loaded.endpoints.len());
    for (t, y) in tokens.iter().zip(&loaded.endpoints) {
        assert_eq!(t, y, "endpoint `{}` differs", y.name);
    }
    assert_eq!(customers.settings, loaded.settings);
    assert_eq!(customers.integrations, loaded.integrations);
}

#[test]
fn compile_time_yaml_equals_the_run_time_load() {
    let dir: ValidPlan = orchestrate!(dir = "../examples/config");
    assert_eq!(dir, yaml("../examples/config"));
    let file: ValidPlan =
        orchestrate!(file = "../tests/fixtures/valid/direct/domains/greetings.yaml");
    assert_eq!(file, yaml("../tests/fixtures/valid/direct"));
    let policies: ValidPlan = orchestrate!(dir = "../tests/fixtures/valid/policies");
    assert_eq!(policies, yaml("../tests/fixtures/valid/policies"));
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
