use orchestrator_macros::orchestrate;

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
