//! Value types: what a source's result, a request input or an expression can hold.
//!
//! [`Ty`] is the small type language the validator checks mappings with and the OpenAPI
//! document is written from. Types come from the schema snapshot (columns, model tensors,
//! feature values, API schemas; see [`crate::snapshot`]), from declared request inputs and
//! from literals; what nothing tells is [`Ty::Any`], which every check lets through.

use serde_json::{Map, Value, json};

use crate::expr::{BinaryOp, Function};
use crate::plan::{Endpoint, Plan};

/// The type of an endpoint's answer: its `response_mapping`'s (literals keep their types,
/// references take theirs from the schema snapshot, when the config has one), or its primary
/// source's. `None` when neither tells anything.
pub fn response_type(plan: &Plan, e: &Endpoint) -> Option<Ty> {
    let env = crate::validate::Env::new(plan, e);
    match (&e.response_mapping, &e.primary_source) {
        (Some(t), _) => Some(env.template(t)),
        (None, Some(p)) => env.source(p),
        (None, None) => e.sources.first().and_then(|s| env.source(&s.name)),
    }
}

/// A JSON value's type, as far as it is known.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    /// Nothing is known: any JSON value (null included).
    Any,
    /// Always `null`.
    Null,
    /// `true` or `false`.
    Boolean,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// Text.
    String,
    /// A list whose elements have this type.
    Array(Box<Ty>),
    /// A list of fixed length with a type per position (a mapping's literal list).
    Tuple(Vec<Ty>),
    /// An object with these fields, in order; `open` when other fields may be present too
    /// (then an unknown field is no error).
    Object {
        /// The known fields.
        fields: Vec<(String, Ty)>,
        /// Whether fields beyond `fields` may be present.
        open: bool,
    },
    /// The type, or `null`.
    Nullable(Box<Ty>),
}

impl Ty {
    /// A closed object of these fields.
    pub fn object(fields: Vec<(String, Ty)>) -> Self {
        Self::Object {
            fields,
            open: false,
        }
    }

    /// This type or null.
    #[must_use]
    pub fn or_null(self) -> Self {
        match self {
            Self::Any | Self::Null | Self::Nullable(_) => self,
            t => Self::Nullable(Box::new(t)),
        }
    }

    /// The type without its null alternative.
    pub fn non_null(&self) -> &Self {
        match self {
            Self::Nullable(t) => t,
            t => t,
        }
    }

    /// Whether the value may be null.
    pub fn is_nullable(&self) -> bool {
        matches!(self, Self::Any | Self::Null | Self::Nullable(_))
    }

    /// Whether nothing is known.
    pub fn is_any(&self) -> bool {
        matches!(self, Self::Any)
    }

    /// A phrase for messages: "an integer", "a list of objects".
    pub fn describe(&self) -> String {
        match self {
            Self::Any => "any value".into(),
            Self::Null => "always null".into(),
            Self::Boolean => "a boolean".into(),
            Self::Integer => "an integer".into(),
            Self::Number => "a number".into(),
            Self::String => "a string".into(),
            Self::Array(t) => match t.non_null() {
                Self::Any => "a list".into(),
                t => format!("a list of {}", plural(t)),
            },
            Self::Tuple(_) => "a list".into(),
            Self::Object { .. } => "an object".into(),
            Self::Nullable(t) => format!("{} or null", t.describe()),
        }
    }

    /// The type of a JSON value (a sample answer, a literal). Objects are closed: their
    /// fields are all a sample shows.
    pub fn of_value(v: &Value) -> Self {
        match v {
            Value::Null => Self::Null,
            Value::Bool(_) => Self::Boolean,
            Value::Number(n) if n.is_i64() || n.is_u64() => Self::Integer,
            Value::Number(_) => Self::Number,
            Value::String(_) => Self::String,
            Value::Array(items) => Self::Array(Box::new(
                items
                    .iter()
                    .map(Self::of_value)
                    .reduce(Self::union)
                    .unwrap_or(Self::Any),
            )),
            Value::Object(m) => Self::object(
                m.iter()
                    .map(|(k, v)| (k.clone(), Self::of_value(v)))
                    .collect(),
            ),
        }
    }

    /// The narrowest type holding both (the type of a value that is either).
    #[must_use]
    pub fn union(self, other: Self) -> Self {
        match (self, other) {
            (a, b) if a == b => a,
            (Self::Any, _) | (_, Self::Any) => Self::Any,
            (Self::Null, t) | (t, Self::Null) => t.or_null(),
            (Self::Nullable(a), b) | (b, Self::Nullable(a)) => a.union(b).or_null(),
            (Self::Integer, Self::Number) | (Self::Number, Self::Integer) => Self::Number,
            (Self::Array(a), Self::Array(b)) => Self::Array(Box::new(a.union(*b))),
            (Self::Tuple(a), Self::Tuple(b)) if a.len() == b.len() => {
                Self::Tuple(a.into_iter().zip(b).map(|(a, b)| a.union(b)).collect())
            }
            (Self::Tuple(a), b) | (b, Self::Tuple(a)) => {
                let item = a.into_iter().reduce(Self::union).unwrap_or(Self::Any);
                Self::Array(Box::new(item)).union(b)
            }
            (
                Self::Object {
                    fields: a,
                    open: oa,
                },
                Self::Object {
                    fields: mut b,
                    open: ob,
                },
            ) => {
                let mut fields = Vec::with_capacity(a.len().max(b.len()));
                for (k, t) in a {
                    match b.iter().position(|(n, _)| *n == k) {
                        Some(i) => fields.push((k, t.union(b.remove(i).1))),
                        None => fields.push((k, t.or_null())),
                    }
                }
                fields.extend(b.into_iter().map(|(k, t)| (k, t.or_null())));
                Self::Object {
                    fields,
                    open: oa || ob,
                }
            }
            _ => Self::Any,
        }
    }

    /// The type at field `name` of an object type: `None` when the object is closed and has no
    /// such field.
    pub fn field(&self, name: &str) -> Option<&Self> {
        match self.non_null() {
            Self::Object { fields, open } => match fields.iter().find(|(k, _)| k == name) {
                Some((_, t)) => Some(t),
                None if *open => Some(&Self::Any),
                None => None,
            },
            _ => Some(&Self::Any),
        }
    }

    /// A JSON Schema (2020-12, as OpenAPI 3.1 uses) for values of this type. The fields of a
    /// closed object are `required` (they are always present, null when nothing fills them).
    pub fn to_schema(&self) -> Value {
        match self {
            Self::Any => json!({}),
            Self::Null => json!({"type": "null"}),
            Self::Boolean => json!({"type": "boolean"}),
            Self::Integer => json!({"type": "integer"}),
            Self::Number => json!({"type": "number"}),
            Self::String => json!({"type": "string"}),
            Self::Array(t) => json!({"type": "array", "items": t.to_schema()}),
            Self::Tuple(items) => match items.first() {
                None => json!({"type": "array", "maxItems": 0}),
                Some(first) if items.iter().all(|t| t == first) => {
                    json!({"type": "array", "items": first.to_schema()})
                }
                Some(_) => json!({
                    "type": "array",
                    "prefixItems": items.iter().map(Self::to_schema).collect::<Vec<_>>(),
                    "items": false,
                }),
            },
            Self::Object { fields, open } => {
                let props: Map<String, Value> = fields
                    .iter()
                    .map(|(k, t)| (k.clone(), t.to_schema()))
                    .collect();
                let mut s = json!({"type": "object", "properties": props});
                // A closed object's fields are always there (null when they have no value).
                if !open && !fields.is_empty() {
                    s["required"] = fields.iter().map(|(k, _)| json!(k)).collect();
                }
                s
            }
            Self::Nullable(t) => {
                let mut s = t.to_schema();
                match s.get("type").and_then(Value::as_str) {
                    Some(name) => {
                        s["type"] = json!([name, "null"]);
                        s
                    }
                    None => json!({"anyOf": [s, {"type": "null"}]}),
                }
            }
        }
    }

    /// The type a JSON Schema describes, `$ref`s resolved against `root` (an OpenAPI
    /// document: `#/components/schemas/…`). What the schema leaves open is [`Ty::Any`]; an
    /// object's `properties` are taken as all it has unless `additionalProperties` allows more;
    /// properties not `required` may be null (or absent).
    pub fn from_schema(schema: &Value, root: &Value) -> Self {
        from_schema(schema, root, 0)
    }

    /// A value of this type, for evaluating what an operator does with it; `None` when the
    /// type says too little.
    fn example(&self) -> Option<Value> {
        Some(match self.non_null() {
            Self::Boolean => json!(true),
            Self::Integer => json!(2),
            Self::Number => json!(2.5),
            Self::String => json!("a"),
            Self::Array(_) | Self::Tuple(_) => json!([]),
            Self::Object { .. } => json!({}),
            _ => return None,
        })
    }

    /// The result type of `a op b` (for `and`/`or`, a boolean).
    pub fn binary(op: BinaryOp, a: &Self, b: &Self) -> Self {
        if matches!(
            op,
            BinaryOp::And
                | BinaryOp::Or
                | BinaryOp::Eq
                | BinaryOp::Ne
                | BinaryOp::Lt
                | BinaryOp::Le
                | BinaryOp::Gt
                | BinaryOp::Ge
                | BinaryOp::In
        ) {
            return if matches!(
                op,
                BinaryOp::And | BinaryOp::Or | BinaryOp::Eq | BinaryOp::Ne
            ) {
                Self::Boolean
            } else {
                Self::Boolean.or_null()
            };
        }
        let (Some(x), Some(y)) = (a.example(), b.example()) else {
            return Self::Any;
        };
        let t = Self::of_value(&crate::expr::eval_binary(op, &x, &y));
        // Division of whole numbers may give a fraction; overflow and null operands give null.
        let t = match (op, t) {
            (BinaryOp::Div, Self::Integer) => Self::Number,
            (_, t) => t,
        };
        t.or_null()
    }

    /// Why `a op b` can only give null (or, for `==` / `!=`, always the same answer) whatever
    /// the values, when both types are known; `None` when it can work.
    pub fn binary_mismatch(op: BinaryOp, a: &Self, b: &Self) -> Option<String> {
        if matches!(op, BinaryOp::And | BinaryOp::Or | BinaryOp::In) {
            return None;
        }
        let (Some(x), Some(y)) = (a.example(), b.example()) else {
            return None;
        };
        let what = |t: &Self| t.non_null().describe();
        if matches!(op, BinaryOp::Eq | BinaryOp::Ne) {
            let same_kind = std::mem::discriminant(&kind(&x)) == std::mem::discriminant(&kind(&y));
            return (!same_kind).then(|| {
                format!(
                    "`{}` compares {} with {}, which are never equal",
                    op.symbol(),
                    what(a),
                    what(b)
                )
            });
        }
        crate::expr::eval_binary(op, &x, &y).is_null().then(|| {
            format!(
                "`{}` cannot be applied to {} and {}: it always gives null",
                op.symbol(),
                what(a),
                what(b)
            )
        })
    }

    /// The result type of a call of `f` with arguments of these types.
    pub fn call(f: Function, args: &[Self]) -> Self {
        match f {
            Function::Len => Self::Integer.or_null(),
            Function::Lower | Function::Upper | Function::Trim => Self::String.or_null(),
            Function::String | Function::Now => Self::String,
            Function::Round
            | Function::Floor
            | Function::Ceil
            | Function::Abs
            | Function::Min
            | Function::Max
            | Function::Sum
            | Function::Avg
            | Function::Number => Self::Number.or_null(),
            Function::Contains | Function::StartsWith | Function::EndsWith => {
                Self::Boolean.or_null()
            }
            Function::Exists => Self::Boolean,
            Function::ParseTime | Function::FormatTime | Function::AddTime => {
                Self::String.or_null()
            }
            Function::DiffTime => Self::Number.or_null(),
            Function::If => match args {
                [_, a, b] => a.clone().union(b.clone()),
                _ => Self::Any,
            },
        }
    }
}

/// `kind` for equality: numbers are one kind.
fn kind(v: &Value) -> Value {
    match v {
        Value::Number(_) => json!(0),
        Value::String(_) => json!(""),
        Value::Bool(_) => json!(false),
        Value::Array(_) => json!([]),
        Value::Object(_) => json!({}),
        Value::Null => Value::Null,
    }
}

fn plural(t: &Ty) -> String {
    match t {
        Ty::Boolean => "booleans".into(),
        Ty::Integer => "integers".into(),
        Ty::Number => "numbers".into(),
        Ty::String => "strings".into(),
        Ty::Object { .. } => "objects".into(),
        Ty::Array(_) | Ty::Tuple(_) => "lists".into(),
        _ => "values".into(),
    }
}

/// How deep `$ref`s and nested schemas are followed (a recursive schema stops there).
const MAX_SCHEMA_DEPTH: usize = 32;

fn from_schema(s: &Value, root: &Value, depth: usize) -> Ty {
    if depth > MAX_SCHEMA_DEPTH {
        return Ty::Any;
    }
    let Some(obj) = s.as_object() else {
        return Ty::Any;
    };
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let target = r
            .strip_prefix('#')
            .and_then(|p| root.pointer(p))
            .unwrap_or(&Value::Null);
        return from_schema(target, root, depth + 1);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = obj.get(key).and_then(Value::as_array) {
            return alts
                .iter()
                .map(|a| from_schema(a, root, depth + 1))
                .reduce(Ty::union)
                .unwrap_or(Ty::Any);
        }
    }
    if let Some(all) = obj.get("allOf").and_then(Value::as_array)
        && let [one] = all.as_slice()
    {
        return from_schema(one, root, depth + 1);
    }
    let nullable = obj.get("nullable") == Some(&Value::Bool(true));
    let t = match obj.get("type") {
        Some(Value::String(name)) => one_type(name, obj, root, depth),
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(Value::as_str)
            .map(|n| one_type(n, obj, root, depth))
            .reduce(Ty::union)
            .unwrap_or(Ty::Any),
        _ if obj.contains_key("properties") => one_type("object", obj, root, depth),
        _ => Ty::Any,
    };
    if nullable { t.or_null() } else { t }
}

fn one_type(name: &str, obj: &Map<String, Value>, root: &Value, depth: usize) -> Ty {
    match name {
        "null" => Ty::Null,
        "boolean" => Ty::Boolean,
        "integer" => Ty::Integer,
        "number" => Ty::Number,
        "string" => Ty::String,
        "array" => Ty::Array(Box::new(
            obj.get("items")
                .map_or(Ty::Any, |i| from_schema(i, root, depth + 1)),
        )),
        "object" => {
            let Some(props) = obj.get("properties").and_then(Value::as_object) else {
                return Ty::Any;
            };
            let required: Vec<&str> = obj
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let fields = props
                .iter()
                .map(|(k, v)| {
                    let t = from_schema(v, root, depth + 1);
                    let t = if required.contains(&k.as_str()) {
                        t
                    } else {
                        t.or_null()
                    };
                    (k.clone(), t)
                })
                .collect();
            // The documented properties are taken as all there are (what a reader of the
            // document expects): only `additionalProperties` with a schema or `true` opens it.
            let open = obj
                .get("additionalProperties")
                .is_some_and(|a| *a != Value::Bool(false));
            Ty::Object { fields, open }
        }
        _ => Ty::Any,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unions_keep_what_both_sides_agree_on() {
        assert_eq!(Ty::Integer.union(Ty::Number), Ty::Number);
        assert_eq!(Ty::Null.union(Ty::String), Ty::String.or_null());
        assert_eq!(Ty::String.union(Ty::Integer), Ty::Any);
        let a = Ty::of_value(&json!({"a": 1, "b": "x"}));
        let b = Ty::of_value(&json!({"a": 2.5}));
        assert_eq!(
            a.union(b),
            Ty::object(vec![
                ("a".into(), Ty::Number),
                ("b".into(), Ty::String.or_null())
            ])
        );
    }

    #[test]
    fn operators_are_judged_by_what_they_do_at_run_time() {
        assert!(Ty::binary_mismatch(BinaryOp::Gt, &Ty::Integer, &Ty::String).is_some());
        assert!(Ty::binary_mismatch(BinaryOp::Gt, &Ty::Integer, &Ty::Number).is_none());
        assert!(Ty::binary_mismatch(BinaryOp::Add, &Ty::String, &Ty::String).is_none());
        assert!(Ty::binary_mismatch(BinaryOp::Mul, &Ty::String, &Ty::Integer).is_some());
        assert!(Ty::binary_mismatch(BinaryOp::Eq, &Ty::String, &Ty::Integer.or_null()).is_some());
        assert!(Ty::binary_mismatch(BinaryOp::Eq, &Ty::Any, &Ty::Integer).is_none());
        assert_eq!(
            Ty::binary(BinaryOp::Div, &Ty::Integer, &Ty::Integer),
            Ty::Number.or_null()
        );
    }

    #[test]
    fn schemas_round_trip_and_refs_resolve() {
        let doc = json!({"components": {"schemas": {"Score": {
            "type": "object", "required": ["score"], "additionalProperties": false,
            "properties": {"score": {"type": "integer"}, "band": {"type": ["string", "null"]}}
        }}}});
        let t = Ty::from_schema(&json!({"$ref": "#/components/schemas/Score"}), &doc);
        assert_eq!(
            t,
            Ty::object(vec![
                ("score".into(), Ty::Integer),
                ("band".into(), Ty::String.or_null())
            ])
        );
        assert_eq!(
            Ty::from_schema(&t.to_schema(), &Value::Null)
                .non_null()
                .field("score"),
            Some(&Ty::Integer)
        );
        // A schema that refers to itself stops at the depth limit.
        let doc = json!({"components": {"schemas": {"Node": {
            "type": "object", "properties": {"next": {"$ref": "#/components/schemas/Node"}}
        }}}});
        let _ = Ty::from_schema(&json!({"$ref": "#/components/schemas/Node"}), &doc);
    }
}
