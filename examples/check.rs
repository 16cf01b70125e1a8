//! Checks a config directory: prints every diagnostic and exits 1 when there is an error, or
//! prints the warnings (if any), then the endpoints with their routes and source DAG, and
//! exits 0. Exits 2 when the directory cannot be read.
//! With `--check-models`, also compares every `v2` model with the metadata its server
//! publishes (the servers must be up).
//!
//! With `--prepare`, asks every source what it returns and writes the schema snapshot
//! `CONFIG_DIR/.orchestrator/schema.json` (commit it: the loader, `check` and `orchestrate!`
//! then check mappings against it), then checks the config against the new snapshot. With
//! `--prepare --check`, compares the committed snapshot with the live sources instead of
//! writing, and exits 1 when they differ (for CI).
//!
//! ```text
//! cargo run --example check -- examples/config
//! cargo run --example check -- --check-models examples/config
//! cargo run --example check -- --prepare examples/config
//! cargo run --example check -- --prepare --check examples/config
//! ```

use std::process::ExitCode;

use api_orchestrator::config::{LoadError, Loader, load_dir};

const USAGE: &str =
    "usage: cargo run --example check -- [--check-models | --prepare [--check]] CONFIG_DIR";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut flag = |name: &str| match args.iter().position(|a| a == name) {
        Some(i) => {
            args.remove(i);
            true
        }
        None => false,
    };
    let check_models = flag("--check-models");
    let prepare = flag("--prepare");
    let compare = flag("--check");
    let [dir] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if prepare {
        return runtime().block_on(api_orchestrator::cli::prepare(
            std::path::Path::new(dir),
            &Loader::new(),
            compare,
        ));
    }
    if compare {
        eprintln!("`--check` goes with `--prepare`\n{USAGE}");
        return ExitCode::from(2);
    }
    match load_dir(dir) {
        Ok(plan) => {
            if !plan.warnings().is_empty() {
                eprintln!("{}\n", plan.warnings());
            }
            print!("{}", api_orchestrator::cli::describe(&plan));
            if check_models {
                let findings =
                    runtime().block_on(api_orchestrator::source::ml::check_models(&plan));
                if !findings.is_empty() {
                    eprintln!("{}", api_orchestrator::Diagnostics(findings));
                    return ExitCode::from(1);
                }
            }
            let against = if plan.snapshot.is_some() {
                " (mappings checked against .orchestrator/schema.json)"
            } else {
                ""
            };
            println!(
                "ok: {} endpoint(s) in `{dir}`{against}",
                plan.endpoints.len()
            );
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
