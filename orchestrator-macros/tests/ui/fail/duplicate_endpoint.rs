use api_orchestrator::orchestrate;

fn main() {
    let _ = orchestrate! {
        endpoints: {
            greet: { data_sources: [ { name: a, type: direct } ] },
            greet: { data_sources: [ { name: b, type: direct } ] },
        },
    };
}
