//! Applying `transform:` steps to a source's result.
//!
//! Record steps (`select`, `rename`, `defaults`, `compute`) work on an object, or on each object
//! of an array. `filter` keeps array elements, `map` rewrites each array element (or the object
//! itself), `flatten` flattens an array of arrays by one level. Inside `compute`, `filter` and
//! `map`, `$item` is the record at hand; the request and earlier sources are visible as usual.
//! Steps that do not apply to the value's shape (a `filter` on an object, a `select` on a
//! string) leave it unchanged.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::expr::{Scope, WithItem, truthy};
use crate::plan::Transform;

/// Applies `steps` in order to `value`.
///
/// ```
/// use api_orchestrator_core::{RequestContext, expr::{Expr, Scope}, plan::Transform, transform::apply};
/// use serde_json::{Value, json};
///
/// struct Empty(RequestContext);
/// impl Scope for Empty {
///     fn request(&self) -> &RequestContext { &self.0 }
///     fn source(&self, _: &str) -> Option<&Value> { None }
/// }
///
/// let orders = json!([{"id": 1, "status": "shipped"}, {"id": 2, "status": "open"}]);
/// let steps = [Transform::Filter(Expr::parse("$item.status == 'shipped'").unwrap()),
///              Transform::Select(vec!["id".into()])];
/// assert_eq!(apply(&steps, orders, &Empty(RequestContext::new())), json!([{"id": 1}]));
/// ```
pub fn apply<S: Scope + ?Sized>(steps: &[Transform], mut value: Value, scope: &S) -> Value {
    for step in steps {
        value = apply_one(step, value, scope);
    }
    value
}

fn apply_one<S: Scope + ?Sized>(step: &Transform, value: Value, scope: &S) -> Value {
    match step {
        Transform::Filter(cond) => match value {
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .filter(|item| {
                        truthy(&cond.eval(&WithItem {
                            inner: scope,
                            item,
                            index: None,
                        }))
                    })
                    .collect(),
            ),
            other => other,
        },
        Transform::Map(template) => match value {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| {
                        template.eval(&WithItem {
                            inner: scope,
                            item,
                            index: None,
                        })
                    })
                    .collect(),
            ),
            Value::Null => Value::Null,
            other => template.eval(&WithItem {
                inner: scope,
                item: &other,
                index: None,
            }),
        },
        Transform::Flatten => match value {
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .flat_map(|v| match v {
                        Value::Array(inner) => inner,
                        other => vec![other],
                    })
                    .collect(),
            ),
            other => other,
        },
        Transform::Sort { by, descending } => match value {
            Value::Array(items) => {
                let mut keyed: Vec<(Value, Value)> = items
                    .into_iter()
                    .map(|item| {
                        let key = by
                            .eval(&WithItem {
                                inner: scope,
                                item: &item,
                                index: None,
                            })
                            .into_owned();
                        (key, item)
                    })
                    .collect();
                keyed.sort_by(|(a, _), (b, _)| order(a, b, *descending));
                Value::Array(keyed.into_iter().map(|(_, item)| item).collect())
            }
            other => other,
        },
        Transform::Limit(n) => match value {
            Value::Array(mut items) => {
                items.truncate(*n);
                Value::Array(items)
            }
            other => other,
        },
        Transform::GroupBy(by) => match value {
            Value::Array(items) => {
                let mut groups: Map<String, Value> = Map::new();
                for item in items {
                    let scope = WithItem {
                        inner: scope,
                        item: &item,
                        index: None,
                    };
                    let key = match &*by.eval(&scope) {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    // (every group is a list: this map holds nothing else)
                    if let Value::Array(list) = groups
                        .entry(key)
                        .or_insert_with(|| Value::Array(Vec::new()))
                    {
                        list.push(item);
                    }
                }
                Value::Object(groups)
            }
            other => other,
        },
        Transform::Join {
            with,
            left,
            right,
            into,
        } => {
            let other = with.eval(scope);
            // The other list indexed once by key (the first element with each key), so a
            // join is linear in both lists' sizes.
            let mut by_key: HashMap<JoinKey, &Value> = HashMap::new();
            if let Value::Array(list) = &*other {
                for o in list {
                    if let Some(k) = o.get(right).and_then(JoinKey::of) {
                        by_key.entry(k).or_insert(o);
                    }
                }
            }
            each_record(value, |record| {
                let found = record
                    .get(left)
                    .and_then(JoinKey::of)
                    .and_then(|k| by_key.get(&k));
                record.insert(into.clone(), found.map_or(Value::Null, |o| (*o).clone()));
            })
        }
        record_step => each_record(value, |record| apply_record(record_step, record, scope)),
    }
}

/// A `join` key: a string, a boolean, or a number by value (`7` and `7.0` are one key); other
/// values join nothing.
#[derive(PartialEq, Eq, Hash)]
enum JoinKey {
    Text(String),
    Bool(bool),
    Int(i64),
    /// A number that is not a whole `i64`, by its bits.
    Float(u64),
}

impl JoinKey {
    fn of(v: &Value) -> Option<Self> {
        Some(match v {
            Value::String(s) => Self::Text(s.clone()),
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Self::Int(i),
                (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Self::Int(f as i64),
                (None, Some(f)) => Self::Float(f.to_bits()),
                (None, None) => return None,
            },
            _ => return None,
        })
    }
}

/// The order of two sort keys: numbers by value, strings by text, booleans false first; a
/// null or a key of another type than the first comparable one goes last, whichever way; lists
/// compare key by key.
fn order(a: &Value, b: &Value, descending: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let rank = |v: &Value| match v {
        Value::Number(_) => 0,
        Value::String(_) => 1,
        Value::Bool(_) => 2,
        Value::Array(_) => 3,
        _ => 4,
    };
    let by_kind = rank(a).cmp(&rank(b));
    if by_kind != Ordering::Equal {
        return by_kind;
    }
    match (a, b) {
        // Several keys, `sort: "[$item.city, $item.age]"`: the first that differs decides.
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .map(|(a, b)| order(a, b, descending))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        _ => {
            let o = crate::expr::compare(a, b).unwrap_or(Ordering::Equal);
            if descending { o.reverse() } else { o }
        }
    }
}

/// Applies `f` to an object, or to every object in an array.
fn each_record(value: Value, mut f: impl FnMut(&mut Map<String, Value>)) -> Value {
    match value {
        Value::Object(mut map) => {
            f(&mut map);
            Value::Object(map)
        }
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| match v {
                    Value::Object(mut map) => {
                        f(&mut map);
                        Value::Object(map)
                    }
                    other => other,
                })
                .collect(),
        ),
        other => other,
    }
}

fn apply_record<S: Scope + ?Sized>(step: &Transform, record: &mut Map<String, Value>, scope: &S) {
    match step {
        Transform::Select(fields) => {
            let mut kept = Map::with_capacity(fields.len());
            for f in fields {
                if let Some(v) = record.remove(f) {
                    kept.insert(f.clone(), v);
                }
            }
            *record = kept;
        }
        Transform::Rename(pairs) => {
            for (from, to) in pairs {
                if let Some(v) = record.shift_remove(from) {
                    record.insert(to.clone(), v);
                }
            }
        }
        Transform::Defaults(defaults) => {
            for (k, v) in defaults {
                let slot = record.entry(k.clone()).or_insert(Value::Null);
                if slot.is_null() {
                    *slot = v.clone();
                }
            }
        }
        Transform::Compute(fields) => {
            for (k, t) in fields {
                let item = Value::Object(std::mem::take(record));
                let v = t.eval(&WithItem {
                    inner: scope,
                    item: &item,
                    index: None,
                });
                let Value::Object(map) = item else {
                    unreachable!("built as an object above")
                };
                *record = map;
                record.insert(k.clone(), v);
            }
        }
        Transform::Filter(_)
        | Transform::Map(_)
        | Transform::Flatten
        | Transform::Sort { .. }
        | Transform::Limit(_)
        | Transform::GroupBy(_)
        | Transform::Join { .. } => {
            unreachable!("array steps are handled by `apply_one`")
        }
    }
}
