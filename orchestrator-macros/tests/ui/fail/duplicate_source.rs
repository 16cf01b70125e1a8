use api_orchestrator::orchestrate;

fn main() {
    let _ = orchestrate! {
        endpoints: {
            greet: {
                data_sources: [
                    { name: hello, type: direct, params: { a: 1 } },
                    { name: hello, type: direct, params: { b: 2 } },
                ],
                primary_source: hello,
            },
        },
    };
}
