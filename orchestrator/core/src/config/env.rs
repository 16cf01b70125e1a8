//! `${env:NAME}` references in integration settings, resolved at load.

use serde_json::Value;

use super::read::ValueReader;
use crate::diagnostic::{Code, Diagnostic, KeyPath};

/// Where environment references are looked up.
pub type EnvLookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Replaces `${env:NAME}` and `${env:NAME:-default}` in every string of `value`. A missing
/// variable without a default is a diagnostic naming it. `$${` writes a literal `${`. The
/// original service's documented `$ENV[NAME]` is read as `${env:NAME}`.
pub(crate) fn substitute(cx: &mut ValueReader, path: &KeyPath, value: &mut Value, env: &EnvLookup) {
    match value {
        Value::String(s) if s.contains("${") || s.contains("$ENV[") => {
            if let Some(out) = substitute_str(cx, path, s, env) {
                *s = out;
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(cx, &path.index(i), item, env);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                substitute(cx, &path.key(k), v, env);
            }
        }
        _ => {}
    }
}

fn substitute_str(
    cx: &mut ValueReader,
    path: &KeyPath,
    s: &str,
    env: &EnvLookup,
) -> Option<String> {
    let converted;
    let s = if s.contains("$ENV[") {
        converted = original_env_refs(s);
        converted.as_str()
    } else {
        s
    };
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut ok = true;
    while let Some(i) = rest.find("${") {
        if rest[..i].ends_with('$') {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let offset = s.len() - rest.len() + i;
        let Some(end) = rest[i..].find('}') else {
            cx.report(
                Diagnostic::new(Code::InvalidValue, path.clone(), "unterminated `${`")
                    .at_offset(offset)
                    .with_help("write `${env:NAME}`, or `$${` for a literal `${`"),
            );
            return None;
        };
        let inner = &rest[i + 2..i + end];
        rest = &rest[i + end + 1..];
        let Some(spec) = inner.strip_prefix("env:") else {
            cx.report(
                Diagnostic::new(Code::InvalidValue, path.clone(), format!("unknown substitution `${{{inner}}}`"))
                    .at_offset(offset)
                    .with_help("only environment references are supported: `${env:NAME}` or `${env:NAME:-default}`"),
            );
            ok = false;
            continue;
        };
        let (name, default) = match spec.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (spec, None),
        };
        match env(name).or_else(|| default.map(str::to_owned)) {
            Some(v) => out.push_str(&v),
            None => {
                cx.report(
                    Diagnostic::new(
                        Code::MissingEnv,
                        path.clone(),
                        format!("environment variable `{name}` is not set"),
                    )
                    .at_offset(offset)
                    .with_help(format!(
                        "set `{name}` before loading, or give a default: `${{env:{name}:-value}}`"
                    )),
                );
                ok = false;
            }
        }
    }
    out.push_str(rest);
    ok.then_some(out)
}

/// The original service's documented `$ENV[NAME]` as `${env:NAME}`.
fn original_env_refs(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("$ENV[") {
        let after = &rest[i + 5..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        out.push_str(&rest[..i]);
        if name_len > 0 && after[name_len..].starts_with(']') {
            out.push_str("${env:");
            out.push_str(&after[..name_len]);
            out.push('}');
            rest = &after[name_len + 1..];
        } else {
            out.push_str("$ENV[");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &str) -> (Value, Vec<Diagnostic>) {
        let env = |n: &str| (n == "TOKEN").then(|| "secret".to_owned());
        let mut cx = ValueReader::new(None);
        let mut v = Value::String(s.into());
        substitute(&mut cx, &KeyPath::root().key("token"), &mut v, &env);
        (v, cx.diags)
    }

    #[test]
    fn resolves_defaults_and_escapes() {
        assert_eq!(run("Bearer ${env:TOKEN}").0, "Bearer secret");
        assert_eq!(run("${env:NOPE:-x}").0, "x");
        assert_eq!(run("$${env:TOKEN}").0, "${env:TOKEN}");
        // The original service's documented form.
        assert_eq!(run("Bearer $ENV[TOKEN]").0, "Bearer secret");
        assert_eq!(run("$ENV[ x").0, "$ENV[ x");
        assert_eq!(run("{customer_id}").0, "{customer_id}");
    }

    #[test]
    fn missing_variable_is_named() {
        let (_, diags) = run("${env:CREDIT_API_TOKEN}");
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].code, Code::MissingEnv);
        assert!(diags[0].message.contains("CREDIT_API_TOKEN"));
    }
}
