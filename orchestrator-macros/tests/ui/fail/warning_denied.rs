// A warning of `orchestrate!` (here: `operation` on a `direct` source, which the original
// service accepted and ignored) is a compiler warning on the token; denied, it fails the build.
#![deny(deprecated)]

use api_orchestrator::orchestrate;

fn main() {
    let _ = orchestrate! {
        endpoints: {
            greet: {
                data_sources: [ { name: hello, type: direct, operation: echo, params: { a: 1 } } ],
            },
        },
    };
}
