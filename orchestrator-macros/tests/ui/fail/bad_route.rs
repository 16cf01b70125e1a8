use orchestrator_macros::orchestrate;

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
