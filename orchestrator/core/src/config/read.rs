//! A small reading context over JSON trees: typed accessors that record a diagnostic for every
//! problem instead of stopping at the first, and reject unknown keys with a "did you mean".

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::keys::Table;
use crate::diagnostic::{Code, Diagnostic, KeyPath, suggest};
use crate::expr::{Expr, Template, parse_template_string};

const EXPRESSION_HELP: &str = "expressions look like `$source.field`, `$request.name || 'default'` or \
     `$= round($source.amount * 100, 2)`; write `$$` for a literal leading dollar";

/// Reads the values of one file into plan types, collecting a diagnostic for each value it
/// cannot read (the file's name goes into each).
pub(crate) struct ValueReader {
    pub(crate) file: Option<Arc<str>>,
    pub(crate) diags: Vec<Diagnostic>,
}

/// An object being read: unknown keys were reported when it was opened.
pub(crate) struct Object<'v> {
    pub(crate) map: &'v Map<String, Value>,
    pub(crate) path: KeyPath,
}

#[cfg(test)]
thread_local! {
    /// The tables mappings were read with on this thread (see `keys::tests`).
    pub(crate) static READ_WITH: std::cell::RefCell<std::collections::BTreeSet<&'static str>> =
        Default::default();
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

impl ValueReader {
    pub(crate) fn new(file: Option<Arc<str>>) -> Self {
        Self {
            file,
            diags: Vec::new(),
        }
    }

    pub(crate) fn report(&mut self, d: Diagnostic) {
        self.diags.push(d.in_file(self.file.clone()));
    }

    pub(crate) fn wrong_type(&mut self, path: &KeyPath, expected: &str, found: &Value) {
        self.report(
            Diagnostic::new(
                Code::WrongType,
                path.clone(),
                format!("expected {expected}, found {}", type_name(found)),
            )
            .with_help(format!(
                "write {expected} here; the config reference (`api_orchestrator::docs::config` on docs.rs) lists every key and its type"
            )),
        );
    }

    /// Opens an object, reporting a non-object value and every key not in `keys`.
    /// Reads a mapping with the keys of `table`; any other key (but the user's own `x-` keys) is
    /// an `unknown key` with a "did you mean".
    pub(crate) fn object<'v>(
        &mut self,
        path: &KeyPath,
        v: &'v Value,
        table: &'static Table,
    ) -> Option<Object<'v>> {
        #[cfg(test)]
        READ_WITH.with(|read| read.borrow_mut().insert(table.name));
        self.object_with(path, v, table.names())
    }

    /// [`object`](Self::object) with keys known only at run time (a host's integration file).
    pub(crate) fn object_with<'v, 'k>(
        &mut self,
        path: &KeyPath,
        v: &'v Value,
        keys: impl Iterator<Item = &'k str> + Clone,
    ) -> Option<Object<'v>> {
        let Value::Object(map) = v else {
            self.wrong_type(path, "a mapping", v);
            return None;
        };
        for key in map.keys() {
            // `x-` keys are the user's own (anchors, notes, tooling).
            if !keys.clone().any(|k| k == key) && !key.starts_with("x-") {
                self.report(
                    Diagnostic::new(
                        Code::UnknownKey,
                        path.key(key),
                        format!("unknown key `{key}`"),
                    )
                    .at_key()
                    .with_opt_help(suggest(
                        key,
                        keys.clone(),
                        "expected one of",
                    )),
                );
            }
        }
        Some(Object {
            map,
            path: path.clone(),
        })
    }

    /// Reads a map whose keys are names (endpoints, operations…), calling `f` for each entry.
    pub(crate) fn entries<'v, T>(
        &mut self,
        path: &KeyPath,
        v: &'v Value,
        what: &str,
        mut f: impl FnMut(&mut Self, &str, &KeyPath, &'v Value) -> Option<T>,
    ) -> Vec<(String, T)> {
        let Value::Object(map) = v else {
            self.wrong_type(path, what, v);
            return Vec::new();
        };
        map.iter()
            .filter_map(|(k, v)| f(self, k, &path.key(k), v).map(|t| (k.clone(), t)))
            .collect()
    }

    pub(crate) fn string(&mut self, path: &KeyPath, v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            other => {
                self.wrong_type(path, "a string", other);
                None
            }
        }
    }

    /// A string or a list of strings (`entity_key: id` or `entity_key: [a, b]`).
    pub(crate) fn strings(&mut self, path: &KeyPath, v: &Value) -> Option<Vec<String>> {
        match v {
            Value::String(s) => Some(vec![s.clone()]),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(self.string(&path.index(i), item)?);
                }
                Some(out)
            }
            other => {
                self.wrong_type(path, "a string or a list of strings", other);
                None
            }
        }
    }

    pub(crate) fn boolean(&mut self, path: &KeyPath, v: &Value) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            other => {
                self.wrong_type(path, "`true` or `false`", other);
                None
            }
        }
    }

    pub(crate) fn uint<T: TryFrom<u64>>(&mut self, path: &KeyPath, v: &Value) -> Option<T> {
        match v.as_u64().and_then(|n| T::try_from(n).ok()) {
            Some(n) => Some(n),
            None if v.is_number() => {
                self.report(
                    Diagnostic::new(
                        Code::InvalidValue,
                        path.clone(),
                        format!("`{v}` is out of range"),
                    )
                    .with_help("use a non-negative whole number"),
                );
                None
            }
            None => {
                self.wrong_type(path, "a whole number", v);
                None
            }
        }
    }

    /// A positive duration: a number of seconds (`5`, `0.25`) or a string with a unit
    /// (`"250ms"`, `"2s"`, `"1m"`).
    pub(crate) fn duration(&mut self, path: &KeyPath, v: &Value) -> Option<Duration> {
        let parsed = match v {
            Value::Number(n) => n.as_f64().and_then(|s| Duration::try_from_secs_f64(s).ok()),
            Value::String(s) => parse_duration(s),
            other => {
                self.wrong_type(
                    path,
                    "a duration (seconds, or a string like \"250ms\")",
                    other,
                );
                return None;
            }
        };
        match parsed {
            Some(d) if !d.is_zero() => Some(d),
            _ => {
                self.report(
                    Diagnostic::new(Code::InvalidValue, path.clone(), format!("`{v}` is not a positive duration"))
                        .with_help("write seconds (`5`, `0.5`) or a string with a unit: `\"250ms\"`, `\"2s\"`, `\"1m\"`"),
                );
                None
            }
        }
    }

    /// One of a fixed set of spellings.
    pub(crate) fn choice<T>(
        &mut self,
        path: &KeyPath,
        v: &Value,
        names: &[&str],
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let s = self.string(path, v)?;
        let parsed = parse(&s);
        if parsed.is_none() {
            self.report(
                Diagnostic::new(
                    Code::InvalidValue,
                    path.clone(),
                    format!("unknown value `{s}`"),
                )
                .with_opt_help(suggest(
                    &s,
                    names.iter().copied(),
                    "expected one of",
                )),
            );
        }
        parsed
    }

    /// A template (params, mappings): expressions in `$` strings, collected parse errors.
    pub(crate) fn template(&mut self, path: &KeyPath, v: &Value) -> Template {
        let (template, errors) = Template::from_value_lossy(v);
        {
            {
                for e in errors {
                    self.report(
                        Diagnostic::new(
                            Code::Expression,
                            path.join(&e.path),
                            e.error.message.clone(),
                        )
                        .at_offset(e.error.offset)
                        .with_help(
                            e.error
                                .help
                                .clone()
                                .unwrap_or_else(|| EXPRESSION_HELP.into()),
                        ),
                    );
                }
            }
        }
        template
    }

    /// An expression in a position that is always an expression (`condition:`, `filter:`).
    /// A leading `$=` is accepted and ignored; a boolean literal is allowed.
    pub(crate) fn expression(&mut self, path: &KeyPath, v: &Value) -> Option<Expr> {
        let text = match v {
            Value::Bool(b) => return Some(Expr::Literal(Value::Bool(*b))),
            Value::String(s) => s,
            other => {
                self.wrong_type(path, "an expression string", other);
                return None;
            }
        };
        let (body, base) = match text.strip_prefix("$=") {
            Some(rest) => (rest, 2),
            None => (text.as_str(), 0),
        };
        let parsed = if base == 0 && text.starts_with('$') {
            parse_template_string(text).map(|t| match t {
                Template::Expr(e) => e,
                Template::Literal(v) => Expr::Literal(v),
                _ => unreachable!("strings parse to expressions or literals"),
            })
        } else {
            Expr::parse(body).map_err(|mut e| {
                e.offset += base;
                e
            })
        };
        match parsed {
            Ok(e) => Some(e),
            Err(e) => {
                self.report(
                    Diagnostic::new(Code::Expression, path.clone(), e.message)
                        .at_offset(e.offset)
                        .with_help(e.help.unwrap_or_else(|| EXPRESSION_HELP.into())),
                );
                None
            }
        }
    }
}

impl<'v> Object<'v> {
    /// The value of `key`; YAML `null` counts as absent.
    pub(crate) fn get(&self, key: &str) -> Option<&'v Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn at(&self, key: &str) -> KeyPath {
        self.path.key(key)
    }

    /// Reads an optional key with `f`.
    pub(crate) fn opt<T>(
        &self,
        cx: &mut ValueReader,
        key: &str,
        f: impl FnOnce(&mut ValueReader, &KeyPath, &'v Value) -> Option<T>,
    ) -> Option<T> {
        let v = self.get(key)?;
        f(cx, &self.at(key), v)
    }

    /// Reads a required key with `f`, reporting its absence.
    pub(crate) fn req<T>(
        &self,
        cx: &mut ValueReader,
        key: &str,
        what: &str,
        f: impl FnOnce(&mut ValueReader, &KeyPath, &'v Value) -> Option<T>,
    ) -> Option<T> {
        match self.get(key) {
            Some(v) => f(cx, &self.at(key), v),
            None => {
                cx.report(
                    Diagnostic::new(
                        Code::MissingKey,
                        self.path.clone(),
                        format!("missing key `{key}`"),
                    )
                    .with_help(format!("add `{key}:` with {what}")),
                );
                None
            }
        }
    }

    /// Warns when `key` is present: the original service documented it, it is accepted, and
    /// it does nothing here (`help` says what to do instead).
    pub(crate) fn ignored(&self, cx: &mut ValueReader, key: &str, help: &str) {
        if self.map.contains_key(key) {
            cx.report(
                Diagnostic::warning(
                    Code::Ignored,
                    self.at(key),
                    format!("`{key}` has no effect here"),
                )
                .at_key()
                .with_help(help),
            );
        }
    }

    pub(crate) fn opt_string(&self, cx: &mut ValueReader, key: &str) -> Option<String> {
        self.opt(cx, key, ValueReader::string)
    }

    pub(crate) fn opt_duration(&self, cx: &mut ValueReader, key: &str) -> Option<Duration> {
        self.opt(cx, key, ValueReader::duration)
    }

    /// The mapping under `key` (empty when absent), each entry read by `f`.
    pub(crate) fn map_of<T>(
        &self,
        cx: &mut ValueReader,
        key: &str,
        what: &str,
        f: impl FnMut(&mut ValueReader, &str, &KeyPath, &'v Value) -> Option<T>,
    ) -> std::collections::BTreeMap<String, T> {
        self.get(key)
            .map(|v| cx.entries(&self.at(key), v, what, f).into_iter().collect())
            .unwrap_or_default()
    }

    /// A mapping of strings to strings (`headers:`).
    pub(crate) fn string_map(
        &self,
        cx: &mut ValueReader,
        key: &str,
    ) -> std::collections::BTreeMap<String, String> {
        self.map_of(cx, key, "a mapping of names to strings", |cx, _, p, v| {
            cx.string(p, v)
        })
    }

    /// A mapping of strings to raw JSON values (`query:` templates).
    pub(crate) fn value_map(
        &self,
        cx: &mut ValueReader,
        key: &str,
    ) -> std::collections::BTreeMap<String, Value> {
        self.map_of(cx, key, "a mapping of names to values", |_, _, _, v| {
            Some(v.clone())
        })
    }
}

/// Parses `"250ms"`, `"2s"`, `"1.5s"`, `"1m"`, or a bare number of seconds.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("fast"), None);
        assert_eq!(parse_duration("3 days"), None);
    }
}
