use api_orchestrator::orchestrate;

fn main() {
    let _ = orchestrate! {
        endpoints: {
            greet: {
                data_sources: [ { name: hello, type: drect, params: { a: 1 } } ],
            },
        },
    };
}
