use api_orchestrator::orchestrate;

fn main() {
    let _ = orchestrate! {
        endpoints: {
            greet: {
                path: "/greet/{name",
                data_sources: [ { name: hello, type: direct, params: { a: 1 } } ],
            },
        },
    };
}
