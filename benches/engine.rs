//! Engine overhead per execution with in-process sources: 5 sources (three independent, two
//! chained) and a 20-field response mapping (the fixture is `benches::overview`). No I/O: what
//! is measured is scheduling, param resolution, the sources' own clones of their documents, the
//! mapping and the trace. `execute/by_hand_same_work` does the same clones and builds the same
//! response without the engine, so the difference is what the engine adds.
//!
//! ```text
//! cargo bench -p benches --bench engine
//! ```

use benches::overview;
use criterion::{Criterion, criterion_group, criterion_main};

fn engine(c: &mut Criterion) {
    let o = overview::orchestrator();
    let rt = overview::runtime();
    let request = overview::request();
    // Sanity: the mapping really produced 20 fields.
    let out = rt.block_on(o.execute("overview", request.clone())).unwrap();
    assert_eq!(out.response.as_object().unwrap().len(), 20);
    let engine = o.engine();
    c.bench_function("execute/5_sources_20_fields", |b| {
        b.to_async(&rt)
            .iter(|| engine.execute("overview", &request));
    });
    // The same documents cloned and the same response built by hand: the engine's own cost
    // is the difference between the two.
    let by_hand = overview::ByHand::default();
    assert_eq!(by_hand.respond(&request), out.response);
    c.bench_function("execute/by_hand_same_work", |b| {
        b.iter(|| by_hand.respond(&request));
    });
}

criterion_group!(benches, engine);
criterion_main!(benches);
