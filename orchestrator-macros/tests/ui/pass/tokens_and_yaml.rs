use api_orchestrator::{ValidPlan, orchestrate};

fn main() {
    let tokens: ValidPlan = orchestrate! {
        config: "../../../../examples/config",
        domain: customers,
        source_types: [clock],
        endpoints: {
            now: {
                path: "/now/{zone}",
                method: [GET],
                input: { path: { zone: string }, query: { precise: { type: boolean, required: false } } },
                data_sources: [
                    { name: clock, type: clock, params: { zone: $request.zone }, timeout: "250ms", retries: 2 },
                    { name: profile, type: database, operation: get_customer, params: { customer_id: 1 }, on_error: skip },
                ],
                response_mapping: {
                    zone: $clock.zone,
                    negative: -3,
                    ratio: 0.5,
                    tags: ["a", $clock.zone],
                    customer: $profile.name || "nobody",
                },
            },
        },
    };
    let yaml: ValidPlan = orchestrate!(dir = "../../../../examples/config");
    assert!(!tokens.endpoints.is_empty() && !yaml.endpoints.is_empty());
}
