//! Checks a config directory: prints every diagnostic and exits 1 when there is an error, or
//! prints the warnings (if any), then the endpoints with their routes and source DAG, and
//! exits 0. Exits 2 when the directory cannot be read.
//! With `--check-models`, also compares every `v2` model with the metadata its server
//! publishes (the servers must be up).
//!
//! ```text
//! cargo run --example check -- examples/config
//! cargo run --example check -- --check-models examples/config
//! ```

use std::process::ExitCode;

use api_orchestrator::config::{LoadError, load_dir};
use api_orchestrator::plan::Plan;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let check_models = args.first().is_some_and(|a| a == "--check-models");
    if check_models {
        args.remove(0);
    }
    let [dir] = args.as_slice() else {
        eprintln!("usage: cargo run --example check -- [--check-models] CONFIG_DIR");
        return ExitCode::from(2);
    };
    match load_dir(dir) {
        Ok(plan) => {
            if !plan.warnings().is_empty() {
                eprintln!("{}\n", plan.warnings());
            }
            print!("{}", describe(&plan));
            if check_models {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime");
                let findings = runtime.block_on(api_orchestrator::source::ml::check_models(&plan));
                if !findings.is_empty() {
                    eprintln!("{}", api_orchestrator::Diagnostics(findings));
                    return ExitCode::from(1);
                }
            }
            println!("ok: {} endpoint(s) in `{dir}`", plan.endpoints.len());
            ExitCode::SUCCESS
        }
        Err(LoadError::Invalid(diagnostics)) => {
            eprintln!("{diagnostics}");
            ExitCode::from(1)
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}

/// One block per endpoint: description, routes, then each source with the sources it waits for.
fn describe(plan: &Plan) -> String {
    let mut out = String::new();
    for e in &plan.endpoints {
        let file = e.origin.file.as_deref().unwrap_or("(code)");
        out += &format!("{} ({file})\n", e.name);
        if let Some(d) = &e.description {
            out += &format!("  {d}\n");
        }
        for r in e.routes() {
            out += &format!("  route   {r}\n");
        }
        let deps = e.dependencies();
        for (s, deps) in e.sources.iter().zip(&deps) {
            let op = s.operation.as_deref().unwrap_or("-");
            let after: Vec<&str> = deps.iter().map(|&i| e.sources[i].name.as_str()).collect();
            let after = if after.is_empty() {
                String::new()
            } else {
                format!("  after {}", after.join(", "))
            };
            let cond = if s.condition.is_some() {
                "  (conditional)"
            } else {
                ""
            };
            out += &format!("  source  {:<20} {:<9} {op}{after}{cond}\n", s.name, s.kind);
        }
        let response = match (&e.response_mapping, &e.primary_source) {
            (Some(_), _) => "response_mapping".to_owned(),
            (None, Some(p)) => format!("result of `{p}`"),
            (None, None) => "result of the only source".to_owned(),
        };
        out += &format!("  returns {response}\n\n");
    }
    out
}
