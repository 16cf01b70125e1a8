use api_orchestrator::orchestrate;

fn main() {
    let _ = orchestrate! {
        endpoints: {
            orders: {
                data_sources: [
                    { name: profile, type: direct, params: { id: $request.id } },
                    {
                        name: orders,
                        type: direct,
                        params: { id: $request.id },
                        transform: [{ sort: $profil.rank }],
                    },
                ],
                primary_source: orders,
            },
        },
    };
}
