use api_orchestrator::orchestrate;

// The mapping reads a field the committed snapshot's `get_customer` row does not have.
fn main() {
    let _ = orchestrate! {
        config: "snapshot-config",
        endpoints: {
            customer: {
                data_sources: [
                    { name: profile, type: database, operation: get_customer,
                      params: { customer_id: $request.customer_id } },
                ],
                response_mapping: { name: $profile.nmae, score: $profile.score },
            },
        },
    };
}
