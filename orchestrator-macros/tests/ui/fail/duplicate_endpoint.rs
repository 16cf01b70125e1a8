use orchestrator_macros::orchestrate;

fn main() {
    let _ = orchestrate! {
        endpoints: {
            greet: { data_sources: [ { name: a, type: direct } ] },
            greet: { data_sources: [ { name: b, type: direct } ] },
        },
    };
}
