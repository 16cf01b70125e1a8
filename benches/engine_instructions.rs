//! Runs the engine bench's execution a given number of times, for an instruction count that
//! does not depend on what else the machine is doing:
//!
//! ```text
//! cargo build --release -p benches --bin engine-instructions
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/engine-instructions 0
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/engine-instructions 1000
//! ```
//!
//! The difference of the two totals divided by 1,000 is the instructions per execution
//! (`bash benches/instructions.sh` does the arithmetic).

use benches::overview;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .expect("usage: engine-instructions <executions>");
    let o = overview::orchestrator();
    let rt = overview::runtime();
    let request = overview::request();
    let engine = o.engine();
    // One execution outside the count warms every lazily built structure.
    let first = rt.block_on(engine.execute("overview", &request)).unwrap();
    assert_eq!(first.response.as_object().map(|o| o.len()), Some(20));
    rt.block_on(async {
        for _ in 0..n {
            std::hint::black_box(engine.execute("overview", &request).await.unwrap());
        }
    });
}
