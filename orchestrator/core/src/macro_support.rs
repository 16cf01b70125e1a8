//! Building blocks for front-ends that produce the document tree themselves instead of reading
//! a config directory: the `orchestrate!` macro. `api-orchestrator` does not re-export this
//! module; it follows the macro crate's version, not the public API's.

use serde_json::Value;

use crate::config::read::ValueReader;
use crate::config::schema;
use crate::diagnostic::Diagnostic;
use crate::plan::Endpoint;

/// The closest candidate to `name`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    crate::diagnostic::did_you_mean(name, candidates)
}

/// `found` without the findings about a node part of which could not be read (a reading
/// diagnostic lies inside it): such findings judge incomplete data, and the reading error
/// already says what to fix.
pub fn without_follow_ons(reading: &[Diagnostic], found: Vec<Diagnostic>) -> Vec<Diagnostic> {
    crate::validate::without_follow_ons(reading, found)
}

/// Reads endpoints from an already-parsed domain document (the `endpoints:` mapping), as the
/// YAML loader does for `domains/<domain>.yaml`. Used by front-ends that produce the document
/// tree themselves (the `orchestrate!` macro).
pub fn endpoints_from_value(
    domain: Option<&str>,
    file: Option<&str>,
    doc: &Value,
) -> (Vec<Endpoint>, Vec<Diagnostic>) {
    let mut cx = ValueReader::new(file.map(Into::into));
    let endpoints = schema::endpoints(&mut cx, domain, doc);
    (endpoints, cx.diags)
}
