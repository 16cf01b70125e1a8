use orchestrator_macros::orchestrate;

fn main() {
    let _ = orchestrate!(dir = "bad-config");
}
