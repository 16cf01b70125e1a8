use api_orchestrator::{Orchestrator, RequestContext, orchestrate};

orchestrate! {
    mod shop;
    endpoints: {
        price: {
            path: "/price/{sku}",
            input: { path: { sku: string } },
            data_sources: [ { name: it, type: direct, params: { sku: $request.sku } } ],
        },
        stock: {
            path: "/stock/{sku}",
            input: { path: { sku: string }, query: { store: integer } },
            data_sources: [ { name: it, type: direct, params: { sku: $request.sku, store: $request.store } } ],
        },
    },
}

async fn calls(o: Orchestrator) {
    // Another endpoint's input.
    let _ = o.execute(shop::endpoints::price, shop::endpoints::StockInput { sku: "a".into(), store: 1 }).await;
    // A bare request where the endpoint declares its input.
    let _ = o.execute(shop::endpoints::stock, RequestContext::new()).await;
    // An input field of the wrong type.
    let _ = o.execute(shop::endpoints::stock, shop::endpoints::StockInput { sku: "a".into(), store: "1" }).await;
}

fn main() {
    drop(calls);
}
