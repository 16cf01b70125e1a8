use api_orchestrator::orchestrate;

fn main() {
    let _ = orchestrate! {
        endpoints: {
            greet: {
                timeout: true,
                data_sources: [ { name: hello, type: direct, params: { a: 1 }, retries: "three" } ],
            },
        },
    };
}
