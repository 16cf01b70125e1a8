use api_orchestrator::orchestrate;

fn main() {
    let _ = orchestrate! {
        endpoints: {
            greet: {
                descripton: "typo",
                data_sources: [ { name: hello, type: direct, parms: { a: 1 } } ],
            },
        },
    };
}
