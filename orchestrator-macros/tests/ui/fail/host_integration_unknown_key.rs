use api_orchestrator::orchestrate;

// The host type's integration file has a key its declaration does not list.
fn main() {
    let _ = orchestrate! {
        config: "host-config",
        source_types: [{ name: vector_db, required: [url], keys: [index] }],
        endpoints: {
            search: { data_sources: [ { name: hits, type: vector_db, params: { q: $request.q } } ] },
        },
    };
}
