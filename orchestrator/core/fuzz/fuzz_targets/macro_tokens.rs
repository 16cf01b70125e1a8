//! The `orchestrate!` macro's token reader: any Rust tokens inside `orchestrate! { … }` read
//! to a document tree or an error with a span, and the tree reads to endpoints or diagnostics,
//! without a panic. The reader is the macro crate's own module, included by path (a proc-macro
//! crate exports nothing else).
#![no_main]

use std::str::FromStr as _;

use api_orchestrator_core::macro_support::{endpoints_from_value, without_follow_ons};
use api_orchestrator_core::plan::Plan;
use api_orchestrator_core::validate::{ValidateOptions, validate};
use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unreachable_pub)]
#[path = "../../../../orchestrator-macros/src/tokens.rs"]
mod tokens;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // What rustc's lexer rejects never reaches a macro.
    let Ok(stream) = proc_macro2::TokenStream::from_str(&text) else {
        return;
    };
    let Ok(root) = tokens::object(stream, proc_macro2::Span::call_site()) else {
        return;
    };
    for offset in [0, 1, 7, text.len()] {
        let _ = root.span_at(offset);
    }
    let doc = root.to_json();
    let endpoints = doc.get("endpoints").cloned().unwrap_or(doc);
    let wrapped = serde_json::json!({ "endpoints": endpoints });
    let (parsed, reading) = endpoints_from_value(None, None, &wrapped);
    let mut plan = Plan::default();
    plan.endpoints = parsed;
    drop(without_follow_ons(
        &reading,
        validate(&plan, &ValidateOptions::default()),
    ));
});
