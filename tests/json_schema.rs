//! The JSON Schema of the config format (`config::json_schema`, `api-orchestrator schema`),
//! checked with a JSON Schema validator as an editor would use it: it accepts every config
//! the repository ships and rejects the structural mistakes of the validator's corpus
//! (`fixtures/invalid/`, with their rendered diagnostics in `snapshots/diagnostics/`) at the
//! place the loader reports them.

use std::path::{Path, PathBuf};

use api_orchestrator::config::{json_schema, json_schema_for};
use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn validator(schema: &Value) -> Validator {
    jsonschema::draft7::new(schema).unwrap_or_else(|e| panic!("not a draft 7 schema: {e}"))
}

/// The YAML files of a config directory as (path relative to it, JSON value or parse error).
fn yaml_files(dir: &Path) -> Vec<(String, Result<Value, String>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Result<Value, String>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(base, &path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let rel = path.strip_prefix(base).unwrap().to_string_lossy();
                let text = std::fs::read_to_string(&path).unwrap();
                let value = serde_yaml::from_str::<Value>(&text).map_err(|e| e.to_string());
                out.push((rel.replace('\\', "/"), value));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

/// What a validator said, with the errors inside `anyOf` (every alternative's) flattened
/// out, as `(instance pointer, error)`.
fn leaves<'a>(errors: impl Iterator<Item = ValidationError<'a>>) -> Vec<(String, String)> {
    fn push(e: &ValidationError<'_>, out: &mut Vec<(String, String)>) {
        if let ValidationErrorKind::AnyOf { context } = e.kind() {
            for branch in context {
                branch.iter().for_each(|e| push(e, out));
            }
        }
        let what = match e.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                format!("unexpected {}", unexpected.join(","))
            }
            ValidationErrorKind::Required { property } => {
                format!("required {}", property.as_str().unwrap_or_default())
            }
            _ => e.to_string(),
        };
        out.push((e.instance_path().as_str().to_owned(), what));
    }
    let mut out = Vec::new();
    errors.for_each(|e| push(&e, &mut out));
    out
}

#[test]
fn the_schema_is_a_draft_7_schema() {
    let schema = json_schema();
    jsonschema::draft7::meta::validate(&schema).unwrap_or_else(|e| panic!("{e}"));
    for file in [
        "config.yaml",
        "database.yaml",
        "domains/shop.yaml",
        "integrations/api_sources.yaml",
    ] {
        let one = json_schema_for(file).unwrap();
        jsonschema::draft7::meta::validate(&one).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

#[test]
fn it_accepts_every_config_the_repository_ships() {
    let any = validator(&json_schema());
    let mut dirs = vec![
        root().join("examples/config"),
        root().join("tests/fixtures/original"),
        root().join("tests/fixtures/host-types"),
    ];
    let mut valid: Vec<_> = std::fs::read_dir(root().join("tests/fixtures/valid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    valid.sort();
    dirs.extend(valid);
    let mut checked = 0;
    for dir in &dirs {
        for (file, value) in yaml_files(dir) {
            let at = format!("{}/{file}", dir.display());
            let value = value.unwrap_or_else(|e| panic!("{at}: {e}"));
            // Files the loader does not read as config (a host type's, the original's unread
            // mock services) are not the schema's.
            let Some(schema) = json_schema_for(&file) else {
                continue;
            };
            for (which, v) in [
                ("its file's schema", validator(&schema)),
                ("the schema", any.clone()),
            ] {
                let errors = leaves(v.iter_errors(&value));
                assert!(errors.is_empty(), "{at} fails {which}: {errors:#?}");
            }
            checked += 1;
        }
    }
    // examples (9) + original (8) + host types (1) + the valid corpus.
    assert!(checked >= 25, "only {checked} files checked");
}

/// A diagnostic of a rendered snapshot: code, file and key path.
struct Reported {
    code: String,
    message: String,
    file: String,
    at: String,
}

fn reported(snapshot: &str) -> Vec<Reported> {
    let mut out = Vec::new();
    let mut current: Option<Reported> = None;
    for line in snapshot.lines() {
        if line.starts_with("warning") || line.starts_with("error:") {
            out.extend(current.take());
        } else if let Some(rest) = line.strip_prefix("error[") {
            out.extend(current.take());
            let (code, message) = rest.split_once("]: ").unwrap_or((rest, ""));
            current = Some(Reported {
                code: code.to_owned(),
                message: message.to_owned(),
                file: String::new(),
                at: String::new(),
            });
        } else if let Some(c) = current.as_mut() {
            let line = line.trim();
            if let Some(loc) = line.strip_prefix("--> ") {
                c.file = loc.split(':').next().unwrap_or("").to_owned();
            } else if let Some(at) = line.strip_prefix("= at: ") {
                c.at = at.to_owned();
            }
        }
    }
    out.extend(current);
    out
}

/// `endpoints.get_customer.data_sources[0]` as the JSON pointer
/// `/endpoints/get_customer/data_sources/0`.
fn pointer(at: &str) -> String {
    let mut out = String::new();
    for part in at.split('.').filter(|p| !p.is_empty()) {
        let (name, indexes) = part.split_once('[').unwrap_or((part, ""));
        if !name.is_empty() {
            out += &format!("/{}", name.replace('~', "~0").replace('/', "~1"));
        }
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            out += &format!("/{}", index.trim_end_matches(']'));
        }
    }
    out
}

/// The name in a message like "unknown key `bogus`" or "missing key `name`".
fn quoted(message: &str) -> &str {
    message.split('`').nth(1).unwrap_or("")
}

#[test]
fn it_rejects_the_corpus_structural_mistakes_where_the_loader_does() {
    let corpus = root().join("tests/fixtures/invalid");
    let mut fixtures: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    fixtures.sort();
    let any = validator(&json_schema());
    let mut found = 0;
    let mut missed = Vec::new();
    for fixture in &fixtures {
        let snapshot = root().join(format!("tests/snapshots/diagnostics/{fixture}.snap"));
        let Ok(snapshot) = std::fs::read_to_string(&snapshot) else {
            continue;
        };
        let files = yaml_files(&corpus.join(fixture));
        for d in reported(&snapshot) {
            let structural = matches!(
                d.code.as_str(),
                "unknown-key" | "wrong-type" | "missing-key"
            );
            if !structural {
                continue;
            }
            let Some((_, Ok(value))) = files.iter().find(|(f, _)| *f == d.file) else {
                panic!("{fixture}: `{}` is not a YAML file of the fixture", d.file);
            };
            assert!(
                !any.is_valid(value),
                "{fixture}: the schema for any file accepts {}",
                d.file
            );
            let schema = json_schema_for(&d.file).unwrap_or_else(|| panic!("{}", d.file));
            let errors = leaves(validator(&schema).iter_errors(value));
            let at = pointer(&d.at);
            let name = quoted(&d.message);
            let hit = errors.iter().any(|(path, what)| match d.code.as_str() {
                // Reported at the key; the schema says so of the mapping holding it.
                "unknown-key" => {
                    path.as_str() == at.rsplit_once('/').map_or("", |(parent, _)| parent)
                        && what
                            .strip_prefix("unexpected ")
                            .is_some_and(|keys| keys.split(',').any(|k| k == name))
                }
                // (The message names the key, maybe among others: "`on_error: default` needs
                // a `default:` value".)
                "missing-key" => {
                    *path == at
                        && what
                            .strip_prefix("required ")
                            .is_some_and(|key| d.message.contains(key))
                }
                _ => *path == at,
            });
            if !hit {
                missed.push(format!(
                    "{fixture}: the loader reports {} \"{}\" at {} ({}) but the schema does not: {errors:#?}",
                    d.code, d.message, d.at, d.file
                ));
            }
            found += 1;
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n\n"));
    // unknown-key (5), wrong-type (3), missing-key (4) across the corpus.
    assert!(
        found >= 10,
        "only {found} structural diagnostics in the corpus"
    );
}
