use orchestrator_macros::orchestrate;

fn main() {
    let _ = orchestrate! {
        domian: shop,
        endpoints: { greet: { data_sources: [ { name: a, type: direct } ] } },
    };
}
