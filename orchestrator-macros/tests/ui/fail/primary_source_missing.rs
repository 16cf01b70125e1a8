use api_orchestrator::orchestrate;

fn main() {
    let _ = orchestrate! {
        endpoints: {
            greet: {
                data_sources: [
                    { name: a, type: direct, params: { x: 1 } },
                    { name: b, type: direct, params: { y: 2 } },
                ],
            },
        },
    };
}
