use api_orchestrator::orchestrate;

fn main() {
    let _ = orchestrate! {
        endpoints: {
            greet: {
                data_sources: [ { name: hello, type: direct, params: { name: $request.name } } ],
                response_mapping: {
                    name: $hello.name ||,
                    size: $= lenn($hello.name),
                },
            },
        },
    };
}
