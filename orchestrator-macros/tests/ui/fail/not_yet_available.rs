use api_orchestrator::orchestrate;

fn main() {
    let _ = orchestrate! {
        endpoints: {
            greet: {
                data_sources: [
                    { name: profile, type: direct, params: { id: $profile.id } },
                ],
            },
        },
    };
}
