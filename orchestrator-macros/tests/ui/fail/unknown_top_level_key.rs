use api_orchestrator::orchestrate;

fn main() {
    let _ = orchestrate! {
        domian: shop,
        endpoints: { greet: { data_sources: [ { name: a, type: direct } ] } },
    };
}
