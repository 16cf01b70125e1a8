//! The pure loader on arbitrary files: a diagnostic or a plan, never a panic, a hang or a
//! stack overflow. The input is split on `\n%%\n` into `config.yaml`, `database.yaml`,
//! `integrations/api_sources.yaml`, `domains/fuzz.yaml` and the schema snapshot
//! `.orchestrator/schema.json` (whose types the validator then checks the mappings with, and
//! the OpenAPI derivation reads).
#![no_main]

use api_orchestrator_core::config::{ConfigFiles, Loader};
use libfuzzer_sys::fuzz_target;

const FILES: [&str; 5] = [
    "config.yaml",
    "database.yaml",
    "integrations/api_sources.yaml",
    "domains/fuzz.yaml",
    ".orchestrator/schema.json",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut files = ConfigFiles::new();
    for (name, part) in FILES.iter().zip(text.split("\n%%\n")) {
        files = files.with_file(*name, part);
    }
    match Loader::new().with_env(|_| Some("x".into())).load(&files) {
        // Rendering is part of the contract: `check` prints every diagnostic.
        Err(e) => drop(e.to_string()),
        Ok(plan) => {
            for e in &plan.plan().endpoints {
                drop(e.routes());
                drop(
                    api_orchestrator_core::types::response_type(plan.plan(), e)
                        .map(|t| t.to_schema()),
                );
            }
        }
    }
});
