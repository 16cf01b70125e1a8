//! Every mapping of the config format, declared once: the keys it takes and what each holds.
//!
//! The readers ([`super::schema`], `serving`, `policy`) check each mapping's keys against
//! these tables ([`ValueReader::object`](super::read::ValueReader::object) takes a
//! [`Table`]), and [`super::json_schema`] turns the same tables into the JSON Schema editors
//! use, so a key the reader accepts is a key the editor completes.
//!
//! A table says what the reader checks structurally: its keys, their JSON types, the fixed
//! spellings of choices and the keys it requires. What needs more than a type (expressions,
//! route templates, URLs, references between files) stays with the readers and the validator.

/// What a key holds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    /// Any value (a template, a literal default, a JSON Schema…).
    Any,
    /// A string.
    Str,
    /// `true` or `false`.
    Bool,
    /// A whole number, 0 or more.
    Uint,
    /// A whole number above 0.
    Positive,
    /// A number.
    Number,
    /// A positive duration: seconds (`5`, `0.5`) or a string with a unit (`"250ms"`).
    Duration,
    /// A string or a list of strings.
    Strs,
    /// An expression string (`"$a.b > 1"`) or a boolean literal.
    Expr,
    /// One of a fixed set of strings.
    Choice(&'static [&'static str]),
    /// One of a fixed set of strings, in any letter case.
    ChoiceAnyCase(&'static [&'static str]),
    /// A mapping with the keys of a table.
    Obj(&'static Table),
    /// A mapping of names (endpoints, operations, params…) to values of one shape.
    Map(&'static Shape),
    /// A list of values of one shape.
    List(&'static Shape),
    /// Any of several shapes (`retries: 3` or `retries: {max: 3, backoff: 1s}`).
    Either(&'static [Shape]),
}

/// One key of a mapping.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    pub(crate) name: &'static str,
    pub(crate) shape: Shape,
    pub(crate) doc: &'static str,
    /// Accepted for the original service's configs and otherwise ignored (with a warning).
    pub(crate) ignored: bool,
}

const fn key(name: &'static str, shape: Shape, doc: &'static str) -> Key {
    Key {
        name,
        shape,
        doc,
        ignored: false,
    }
}

/// A key the reader accepts, warns about and ignores.
const fn ignored(name: &'static str, doc: &'static str) -> Key {
    Key {
        name,
        shape: Shape::Any,
        doc,
        ignored: true,
    }
}

/// The keys of one kind of mapping.
#[derive(Debug)]
pub(crate) struct Table {
    /// The name of its definition in the JSON Schema (`$defs/<name>`), unique.
    pub(crate) name: &'static str,
    pub(crate) doc: &'static str,
    pub(crate) keys: &'static [Key],
    /// Keys without which the reader reports `missing key`.
    pub(crate) required: &'static [&'static str],
    /// A table whose keys this one takes too (the settings every HTTP service has).
    pub(crate) with: Option<&'static Table>,
    /// Requirements that take more than one key.
    pub(crate) rules: &'static [Rule],
}

/// A requirement of a mapping beyond its required keys.
#[derive(Debug)]
pub(crate) enum Rule {
    /// At least one of these keys.
    AnyOf(&'static [&'static str]),
    /// Exactly one key (a transform step).
    OneKey,
    /// When `key` is `is`, `needs` too.
    When {
        key: &'static str,
        is: &'static str,
        needs: &'static str,
    },
}

impl Table {
    /// Every key, its own first, then those of [`Table::with`].
    pub(crate) fn all_keys(&self) -> impl Iterator<Item = &'static Key> + Clone {
        let own: &'static [Key] = self.keys;
        let with: &'static [Key] = self.with.map_or(&[], |t| t.keys);
        own.iter().chain(with)
    }

    /// The key spellings.
    pub(crate) fn names(&self) -> impl Iterator<Item = &'static str> + Clone {
        self.all_keys().map(|k| k.name)
    }
}

/// `table!(name, doc, [keys…], required: […], with: &TABLE, rules: […])`.
macro_rules! table {
    ($name:literal, $doc:literal, [$($key:expr),* $(,)?]
     $(, required: [$($req:literal),*])? $(, with: $with:expr)? $(, rules: [$($rule:expr),*])?) => {
        Table {
            name: $name,
            doc: $doc,
            keys: &[$($key),*],
            required: &[$($($req),*)?],
            with: table!(@with $($with)?),
            rules: &[$($($rule),*)?],
        }
    };
    (@with) => { None };
    (@with $with:expr) => { Some($with) };
}

use Shape::{
    Any, Bool, Choice, ChoiceAnyCase, Duration, Either, Expr, List, Map, Number, Obj, Positive,
    Str, Strs, Uint,
};

#[rustfmt::skip]
mod tables;
pub(crate) use tables::*;

/// The documents of a config directory: which table reads the file at a path (relative to the
/// config root, `/`-separated), `None` for a path that is not a config file.
pub(crate) fn document(path: &str) -> Option<&'static Table> {
    let parts: Vec<&str> = path.split('/').collect();
    let integration = |name: &str| match name {
        "api_sources.yaml" => Some(&API_FILE),
        "feast_config.yaml" => Some(&FEAST_FILE),
        "ml_config.yaml" | "ml.yaml" => Some(&ML_FILE),
        _ => None,
    };
    match parts.as_slice() {
        ["config.yaml"] => Some(&SETTINGS),
        ["database.yaml"] | ["domains", _, "database.yaml"] => Some(&DATABASE_FILE),
        ["integrations", name] | ["domains", _, "integrations", name] => integration(name),
        ["domains", name] if name.ends_with(".yaml") || name.ends_with(".yml") => {
            Some(&DOMAIN_FILE)
        }
        _ => None,
    }
}

/// Every document table, for the schema's root.
pub(crate) const DOCUMENTS: &[&Table] = &[
    &SETTINGS,
    &DATABASE_FILE,
    &DOMAIN_FILE,
    &API_FILE,
    &FEAST_FILE,
    &ML_FILE,
];

// ---------------------------------------------------------------- JSON Schema

/// The JSON Schema (draft 7) of the config files; `document` picks one file's table, `None`
/// accepts any config file. Every table reached is one definition under `$defs`.
pub(crate) fn json_schema(document: Option<&'static Table>) -> serde_json::Value {
    use serde_json::{Map as JsonMap, Value, json};

    fn shape(s: &Shape, defs: &mut JsonMap<String, Value>) -> Value {
        match s {
            Any => json!({}),
            Str => json!({"type": "string"}),
            Bool => json!({"type": "boolean"}),
            Uint => json!({"type": "integer", "minimum": 0}),
            Positive => json!({"type": "integer", "minimum": 1}),
            Number => json!({"type": "number"}),
            Duration => common(defs, "duration", || {
                json!({
                    "description": "A positive duration: seconds (`5`, `0.5`) or a string with a unit (`\"250ms\"`, `\"2s\"`, `\"1m\"`, `\"1h\"`).",
                    "anyOf": [
                        {"type": "number", "exclusiveMinimum": 0},
                        {"type": "string", "pattern": r"^\s*[0-9.]+\s*(ms|s|m|h)?\s*$"},
                    ],
                })
            }),
            Strs => common(defs, "strings", || {
                json!({
                    "description": "A string or a list of strings.",
                    "anyOf": [
                        {"type": "string"},
                        {"type": "array", "items": {"type": "string"}},
                    ],
                })
            }),
            Expr => json!({"type": ["string", "boolean"]}),
            Choice(names) => json!({"enum": names}),
            ChoiceAnyCase(names) => {
                let any_case: Vec<String> = names
                    .iter()
                    .map(|n| {
                        n.chars()
                            .map(|c| {
                                let (l, u) = (c.to_ascii_lowercase(), c.to_ascii_uppercase());
                                if l == u {
                                    c.to_string()
                                } else {
                                    format!("[{l}{u}]")
                                }
                            })
                            .collect()
                    })
                    .collect();
                json!({"anyOf": [
                    {"enum": names},
                    {"type": "string", "pattern": format!("^(?:{})$", any_case.join("|"))},
                ]})
            }
            Obj(table) => {
                define(table, defs);
                json!({"$ref": format!("#/$defs/{}", table.name)})
            }
            Map(of) => json!({"type": "object", "additionalProperties": shape(of, defs)}),
            List(of) => json!({"type": "array", "items": shape(of, defs)}),
            Either(shapes) => {
                let any: Vec<Value> = shapes.iter().map(|s| shape(s, defs)).collect();
                json!({ "anyOf": any })
            }
        }
    }

    /// A definition shared by many keys, by reference.
    fn common(defs: &mut JsonMap<String, Value>, name: &str, def: impl FnOnce() -> Value) -> Value {
        if !defs.contains_key(name) {
            defs.insert(name.to_owned(), def());
        }
        json!({"$ref": format!("#/$defs/{name}")})
    }

    fn define(table: &'static Table, defs: &mut JsonMap<String, Value>) {
        if defs.contains_key(table.name) {
            return;
        }
        // Reserve the name first: a table may be reached again while its keys are written.
        defs.insert(table.name.to_owned(), Value::Null);
        let mut properties = JsonMap::new();
        for k in table.all_keys() {
            let mut p = JsonMap::new();
            p.insert("description".into(), k.doc.into());
            if k.ignored {
                p.insert("deprecated".into(), true.into());
            }
            if !matches!(k.shape, Any) {
                // YAML `null` counts as absent: one more alternative.
                let mut any = match shape(&k.shape, defs) {
                    Value::Object(mut one) if one.len() == 1 && one.contains_key("anyOf") => {
                        match one.remove("anyOf") {
                            Some(Value::Array(any)) => any,
                            _ => Vec::new(),
                        }
                    }
                    other => vec![other],
                };
                any.push(json!({"type": "null"}));
                p.insert("anyOf".into(), any.into());
            }
            properties.insert(k.name.to_owned(), Value::Object(p));
        }
        let mut def = json!({
            "type": "object",
            "description": table.doc,
            "properties": properties,
            // `x-` keys are the user's own (anchors, notes, tooling).
            "patternProperties": {"^x-": {}},
            "additionalProperties": false,
        });
        if !table.required.is_empty() {
            def["required"] = json!(table.required);
        }
        let rules: Vec<Value> = table
            .rules
            .iter()
            .map(|rule| match rule {
                Rule::AnyOf(keys) => {
                    let any: Vec<Value> = keys.iter().map(|k| json!({"required": [k]})).collect();
                    json!({ "anyOf": any })
                }
                Rule::OneKey => json!({"minProperties": 1, "maxProperties": 1}),
                Rule::When { key, is, needs } => json!({
                    "if": {"properties": {*key: {"const": is}}, "required": [key]},
                    "then": {"required": [needs]},
                }),
            })
            .collect();
        if !rules.is_empty() {
            def["allOf"] = rules.into();
        }
        defs.insert(table.name.to_owned(), def);
    }

    let mut defs = JsonMap::new();
    let mut root = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "api-orchestrator config",
    });
    match document {
        Some(table) => {
            define(table, &mut defs);
            root["description"] = table.doc.into();
            root["$ref"] = format!("#/$defs/{}", table.name).into();
        }
        None => {
            root["description"] =
                "Any file of an api-orchestrator config directory (config.yaml, database.yaml, domains/*.yaml, integrations/*.yaml).".into();
            root["anyOf"] = DOCUMENTS
                .iter()
                .map(|t| {
                    define(t, &mut defs);
                    json!({"$ref": format!("#/$defs/{}", t.name)})
                })
                .collect();
        }
    }
    root["$defs"] = Value::Object(defs);
    root
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;

    /// Every table reached from the documents, by name; panics on two tables of one name.
    fn tables() -> BTreeMap<&'static str, &'static Table> {
        fn walk(s: &Shape, out: &mut BTreeMap<&'static str, &'static Table>) {
            match s {
                Obj(t) => visit(t, out),
                Map(of) | List(of) => walk(of, out),
                Either(shapes) => shapes.iter().for_each(|s| walk(s, out)),
                _ => {}
            }
        }
        fn visit(t: &'static Table, out: &mut BTreeMap<&'static str, &'static Table>) {
            if let Some(seen) = out.get(t.name) {
                let same = seen.doc == t.doc && seen.names().eq(t.names());
                assert!(same, "two tables are named `{}`", t.name);
                return;
            }
            out.insert(t.name, t);
            t.all_keys().for_each(|k| walk(&k.shape, out));
        }
        let mut out = BTreeMap::new();
        DOCUMENTS.iter().for_each(|t| visit(t, &mut out));
        out
    }

    #[test]
    fn every_key_of_every_table_is_in_the_schema() {
        let schema = json_schema(None);
        let defs = schema["$defs"].as_object().unwrap();
        let tables = tables();
        // Beside the tables, the shared scalar definitions (no table may take their names).
        let shared = ["duration", "strings"];
        let mut names: Vec<&str> = defs.keys().map(String::as_str).collect();
        names.retain(|n| !shared.contains(n));
        names.sort_unstable();
        assert!(shared.iter().all(|n| !tables.contains_key(n)));
        assert_eq!(names, tables.keys().copied().collect::<Vec<_>>());
        for (name, table) in tables {
            let properties = defs[name]["properties"].as_object().unwrap();
            let mut keys: Vec<&str> = properties.keys().map(String::as_str).collect();
            let mut expected: Vec<&str> = table.names().collect();
            keys.sort_unstable();
            expected.sort_unstable();
            assert_eq!(keys, expected, "{name}");
            for k in table.all_keys() {
                assert!(!k.doc.is_empty(), "{name}.{} has no doc", k.name);
            }
            let rule_keys = table.rules.iter().flat_map(|r| match r {
                Rule::AnyOf(keys) => keys.to_vec(),
                Rule::When { key, needs, .. } => vec![*key, *needs],
                Rule::OneKey => Vec::new(),
            });
            for r in table.required.iter().copied().chain(rule_keys) {
                assert!(
                    table.names().any(|k| k == r),
                    "{name} requires `{r}`, which it does not have"
                );
            }
        }
    }

    #[test]
    fn transform_steps_are_the_plans() {
        assert!(
            TRANSFORM
                .names()
                .eq(crate::plan::Transform::KEYS.iter().copied())
        );
    }

    #[test]
    fn documents_are_found_by_path() {
        for (path, table) in [
            ("config.yaml", Some("config")),
            ("database.yaml", Some("database_file")),
            ("domains/shop/database.yaml", Some("database_file")),
            ("domains/shop.yaml", Some("domain_file")),
            ("domains/shop.yml", Some("domain_file")),
            ("integrations/api_sources.yaml", Some("api_sources_file")),
            ("domains/shop/integrations/ml.yaml", Some("ml_config_file")),
            ("integrations/feast_config.yaml", Some("feast_config_file")),
            ("integrations/vector_db.yaml", None),
            ("notes.yaml", None),
        ] {
            assert_eq!(document(path).map(|t| t.name), table, "{path}");
        }
        // Every file the loader reads has a schema.
        for top in crate::config::TOP_FILES {
            assert!(document(top).is_some(), "{top}");
        }
        for file in crate::config::INTEGRATION_FILES {
            assert!(
                document(&format!("integrations/{file}")).is_some(),
                "{file}"
            );
        }
    }

    /// The readers read every mapping with a table the schema has: load every config the
    /// repository holds and compare the tables used with the schema's.
    #[test]
    fn the_reader_reads_with_the_schemas_tables() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut dirs = vec![
            root.join("examples/config"),
            root.join("tests/fixtures/original"),
        ];
        for corpus in ["tests/fixtures/valid", "tests/fixtures/invalid"] {
            let mut found: Vec<_> = std::fs::read_dir(root.join(corpus))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            found.sort();
            dirs.extend(found);
        }
        crate::config::read::READ_WITH.with(|r| r.borrow_mut().clear());
        for dir in &dirs {
            let _ = crate::config::Loader::new()
                .with_env(|_| Some("x".into()))
                .load_dir(dir);
        }
        let used = crate::config::read::READ_WITH.with(|r| r.borrow().clone());
        let tables = tables();
        for name in &used {
            assert!(
                tables.contains_key(name),
                "`{name}` is read but not in the schema"
            );
        }
        // The corpus reaches most tables; a table it never reaches is not checked here.
        assert!(used.len() * 4 >= tables.len() * 3, "{used:?}");
    }
}
