use api_orchestrator::orchestrate;

fn main() {
    let _ = orchestrate! {
        endpoints: {
            greet: {
                data_sources: [
                    { name: hello, type: direct, condition: $= 1 + 1, params: { a: 1 } },
                ],
                response_mapping: { bad: $= "a" * 2 },
            },
        },
    };
}
