use api_orchestrator::orchestrate;

fn main() {
    let _ = orchestrate! {
        endpoints: {
            loop_: {
                data_sources: [
                    { name: a, type: direct, params: { x: $b.x } },
                    { name: b, type: direct, params: { x: $a.x } },
                ],
                primary_source: a,
            },
        },
    };
}
