use api_orchestrator::orchestrate;

// `score` is an integer column by the committed snapshot: comparing it with a string always
// gives null.
fn main() {
    let _ = orchestrate! {
        config: "snapshot-config",
        endpoints: {
            customer: {
                data_sources: [
                    { name: profile, type: database, operation: get_customer,
                      params: { customer_id: $request.customer_id } },
                ],
                response_mapping: { name: $profile.name, good: $profile.score > "700" },
            },
        },
    };
}
