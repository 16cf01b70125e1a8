//! The `mod` form: a module with the plan and a typed handle per endpoint. A typed input
//! becomes the path params, query params and body the endpoint declares, and the call runs
//! like one by name.

use api_orchestrator::{EndpointHandle as _, Orchestrator, RequestContext, orchestrate};
use serde_json::json;

orchestrate! {
    mod shop;
    domain: shop,
    endpoints: {
        order: {
            path: "/orders/{customer_id}",
            method: [POST],
            input: {
                path: { customer_id: integer },
                query: { "dry-run": { type: boolean, required: false } },
                body: { amount: number, note: { type: string, required: false }, lines: array },
            },
            data_sources: [ { name: it, type: direct, params: {
                customer: $request.customer_id, dry: $request.query_params["dry-run"],
                amount: $request.body.amount, note: $request.body.note, lines: $request.body.lines,
            } } ],
        },
        ping: {
            data_sources: [ { name: it, type: direct, params: { who: $request.who } } ],
        },
    },
}

// The same from a YAML directory: every example endpoint gets its handle.
orchestrate!(pub mod examples, dir = "../examples/config");

#[tokio::test]
async fn typed_inputs_reach_the_sources() {
    let o = Orchestrator::builder().build(shop::plan()).unwrap();
    let input = shop::endpoints::OrderInput {
        customer_id: 42,
        dry_run: Some(true),
        amount: 9.5,
        note: None,
        lines: vec![json!({"sku": "kettle"})],
    };
    let out = o.execute(shop::endpoints::order, input).await.unwrap();
    assert_eq!(
        out.response,
        json!({"customer": 42, "dry": true, "amount": 9.5, "note": null, "lines": [{"sku": "kettle"}]})
    );
    // An endpoint without `input:` takes a request context, like a name does.
    let by_handle = o
        .execute(
            shop::endpoints::ping,
            RequestContext::new().with_query_param("who", "ada"),
        )
        .await
        .unwrap();
    let by_name = o
        .execute("ping", RequestContext::new().with_query_param("who", "ada"))
        .await
        .unwrap();
    assert_eq!(by_handle.response, by_name.response);
    assert_eq!(by_handle.response, json!({"who": "ada"}));
}

#[test]
fn the_directory_form_names_every_endpoint() {
    let plan = examples::plan();
    assert!(plan.endpoint("get_customer_360").is_some());
    assert_eq!(
        examples::endpoints::get_customer_360.name(),
        "get_customer_360"
    );
    let input = examples::endpoints::GetCustomer360Input { customer_id: 7 };
    let request: RequestContext = input.into();
    assert_eq!(request.path_params["customer_id"], 7);
}
