use api_orchestrator::orchestrate;

fn main() {
    let _ = orchestrate!(dir = "bad-config");
}
