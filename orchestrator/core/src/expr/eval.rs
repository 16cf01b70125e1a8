//! Evaluation of expressions and templates against a [`Scope`].

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

use super::{BinaryOp, Expr, Fields, Function, Reference, RequestPart, Root, Segment, Template};
use crate::RequestContext;

static NULL: Value = Value::Null;

/// What expressions can read: the request, source results and the current transform item.
pub trait Scope {
    /// The request context.
    fn request(&self) -> &RequestContext;
    /// The (transformed) result of source `name`, or `None` if it has not run or was skipped.
    fn source(&self, name: &str) -> Option<&Value>;
    /// The current record inside a transform step, or a `for_each` source's element.
    fn item(&self) -> Option<&Value> {
        None
    }
    /// The position of a `for_each` source's element.
    fn index(&self) -> Option<usize> {
        None
    }
}

/// `scope` with `$item` (and `$index`) added: for transform steps and `for_each` elements.
#[derive(Debug)]
pub struct WithItem<'a, S: ?Sized> {
    /// What else is visible.
    pub inner: &'a S,
    /// `$item`.
    pub item: &'a Value,
    /// `$index`, for `for_each` elements.
    pub index: Option<usize>,
}

impl<S: Scope + ?Sized> Scope for WithItem<'_, S> {
    fn request(&self) -> &RequestContext {
        self.inner.request()
    }
    fn source(&self, name: &str) -> Option<&Value> {
        self.inner.source(name)
    }
    fn item(&self) -> Option<&Value> {
        Some(self.item)
    }
    fn index(&self) -> Option<usize> {
        self.index
    }
}

/// Truthiness: `null`, `false`, `0`, `""`, `[]` and `{}` are false.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

impl Template {
    /// Evaluates the template into an owned JSON value.
    pub fn eval<S: Scope + ?Sized>(&self, scope: &S) -> Value {
        match self {
            Self::Literal(v) => v.clone(),
            Self::Expr(e) => e.eval(scope).into_owned(),
            Self::Object(fields) => Value::Object(fields.eval(scope)),
            Self::Array(items) => Value::Array(items.iter().map(|t| t.eval(scope)).collect()),
        }
    }
}

impl Fields {
    /// Evaluates every field into an object, keys in declaration order.
    pub fn eval<S: Scope + ?Sized>(&self, scope: &S) -> Map<String, Value> {
        let mut map = self.keys().clone();
        for (slot, (_, t)) in map.values_mut().zip(self.iter()) {
            *slot = t.eval(scope);
        }
        map
    }
}

impl Expr {
    /// Evaluates the expression. Borrows from the scope where it can.
    pub fn eval<'a, S: Scope + ?Sized>(&'a self, scope: &'a S) -> Cow<'a, Value> {
        match self {
            Self::Literal(v) => Cow::Borrowed(v),
            Self::Ref(r) => r.eval(scope),
            Self::Fallback(items) => {
                for item in items {
                    let v = item.eval(scope);
                    if !v.is_null() {
                        return v;
                    }
                }
                Cow::Borrowed(&NULL)
            }
            Self::Not(x) => Cow::Owned(Value::Bool(!truthy(&x.eval(scope)))),
            Self::Neg(x) => Cow::Owned(negate(&x.eval(scope))),
            Self::Binary(BinaryOp::And, a, b) => {
                let a = truthy(&a.eval(scope));
                Cow::Owned(Value::Bool(a && truthy(&b.eval(scope))))
            }
            Self::Binary(BinaryOp::Or, a, b) => {
                let a = truthy(&a.eval(scope));
                Cow::Owned(Value::Bool(a || truthy(&b.eval(scope))))
            }
            Self::Binary(op, a, b) => Cow::Owned(binary(*op, &a.eval(scope), &b.eval(scope))),
            Self::Call(f, args) => Cow::Owned(call(*f, args, scope)),
            Self::List(items) => Cow::Owned(Value::Array(
                items.iter().map(|e| e.eval(scope).into_owned()).collect(),
            )),
        }
    }
}

impl Reference {
    /// Resolves the reference; a missing path gives null.
    pub fn eval<'a, S: Scope + ?Sized>(&'a self, scope: &'a S) -> Cow<'a, Value> {
        let (start, path): (Option<&Value>, &[Segment]) = match &self.root {
            Root::Source(name) => (scope.source(name), &self.path),
            Root::Item => (scope.item(), &self.path),
            Root::Index => {
                return match (scope.index(), self.path.is_empty()) {
                    (Some(i), true) => Cow::Owned(Value::from(i)),
                    _ => Cow::Borrowed(&NULL),
                };
            }
            Root::Request(part) => {
                let req = scope.request();
                let map = match part {
                    RequestPart::Any => {
                        let Some(Segment::Field(name)) = self.path.first() else {
                            return match self.path.first() {
                                None => Cow::Owned(req.whole()),
                                Some(_) => Cow::Borrowed(&NULL),
                            };
                        };
                        return match req.lookup(name) {
                            Some(v) => walk(v, &self.path[1..]),
                            None => Cow::Borrowed(&NULL),
                        };
                    }
                    RequestPart::PathParams => &req.path_params,
                    RequestPart::QueryParams => &req.query_params,
                    RequestPart::Headers => &req.headers,
                    RequestPart::Auth => &req.auth,
                    RequestPart::Context => &req.context,
                    RequestPart::Body => return walk(&req.body, &self.path),
                };
                match self.path.split_first() {
                    None => return Cow::Owned(Value::Object(map.clone())),
                    Some((Segment::Field(name), rest)) => (field(map, name), rest),
                    Some(_) => (None, &[]),
                }
            }
        };
        match start {
            Some(v) => walk(v, path),
            None => Cow::Borrowed(&NULL),
        }
    }
}

/// Up to this many keys, a key is looked up by comparing it with each key in turn: cheaper than
/// hashing it (serde_json's ordered map hashes with SipHash), and the objects sources return are
/// mostly this small.
const SCAN_UP_TO: usize = 12;

/// `map.get(key)`, without hashing for small maps.
pub(crate) fn field<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    if map.len() <= SCAN_UP_TO {
        map.iter().find_map(|(k, v)| (k == key).then_some(v))
    } else {
        map.get(key)
    }
}

/// Follows `path` into `value`; a missing step gives null, `[*]` maps the rest over an array and
/// drops null results (as JMESPath projections do).
pub(crate) fn walk<'v>(value: &'v Value, path: &[Segment]) -> Cow<'v, Value> {
    let mut cur = value;
    for (i, seg) in path.iter().enumerate() {
        let next = match (seg, cur) {
            (Segment::Field(f), Value::Object(m)) => field(m, f),
            (Segment::Index(n), Value::Array(a)) => {
                let idx = if *n < 0 { a.len() as i64 + n } else { *n };
                usize::try_from(idx).ok().and_then(|i| a.get(i))
            }
            (Segment::All, Value::Array(a)) => {
                let rest = &path[i + 1..];
                let items = a
                    .iter()
                    .map(|v| walk(v, rest))
                    .filter(|v| !v.is_null())
                    .map(Cow::into_owned)
                    .collect();
                return Cow::Owned(Value::Array(items));
            }
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => return Cow::Borrowed(&NULL),
        }
    }
    Cow::Borrowed(cur)
}

fn negate(v: &Value) -> Value {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64().and_then(i64::checked_neg) {
                Value::from(i)
            } else {
                n.as_f64().map_or(Value::Null, |f| float(-f))
            }
        }
        _ => Value::Null,
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// Equality with integers and floats compared by value.
pub(crate) fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| loose_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| loose_eq(v, w)))
        }
        _ => a == b,
    }
}

/// The order of two values of one kind (numbers by value, strings by text, `false` first);
/// `None` for values that do not compare.
pub(crate) fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Applies a non-short-circuit binary operator. Type mismatches give null.
pub(crate) fn binary(op: BinaryOp, a: &Value, b: &Value) -> Value {
    match op {
        BinaryOp::Eq => Value::Bool(loose_eq(a, b)),
        BinaryOp::Ne => Value::Bool(!loose_eq(a, b)),
        BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => match compare(a, b) {
            Some(ord) => Value::Bool(match op {
                BinaryOp::Lt => ord.is_lt(),
                BinaryOp::Le => ord.is_le(),
                BinaryOp::Gt => ord.is_gt(),
                _ => ord.is_ge(),
            }),
            None => Value::Null,
        },
        BinaryOp::In => contains(b, a),
        BinaryOp::Add => match (a, b) {
            (Value::String(x), Value::String(y)) => Value::String(format!("{x}{y}")),
            (Value::Array(x), Value::Array(y)) => {
                Value::Array(x.iter().chain(y).cloned().collect())
            }
            _ => arith(op, a, b),
        },
        _ => arith(op, a, b),
    }
}

fn contains(haystack: &Value, needle: &Value) -> Value {
    match (haystack, needle) {
        (Value::Array(items), n) => Value::Bool(items.iter().any(|v| loose_eq(v, n))),
        (Value::String(s), Value::String(n)) => Value::Bool(s.contains(n.as_str())),
        (Value::Object(m), Value::String(k)) => Value::Bool(m.contains_key(k)),
        _ => Value::Null,
    }
}

fn arith(op: BinaryOp, a: &Value, b: &Value) -> Value {
    let (Value::Number(x), Value::Number(y)) = (a, b) else {
        return Value::Null;
    };
    if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
        let exact = match op {
            BinaryOp::Add => x.checked_add(y),
            BinaryOp::Sub => x.checked_sub(y),
            BinaryOp::Mul => x.checked_mul(y),
            BinaryOp::Div if y != 0 && x % y == 0 => x.checked_div(y),
            BinaryOp::Rem if y != 0 => x.checked_rem(y),
            BinaryOp::Div | BinaryOp::Rem if y == 0 => return Value::Null,
            _ => None,
        };
        if let Some(v) = exact {
            return Value::from(v);
        }
    }
    let (Some(x), Some(y)) = (x.as_f64(), y.as_f64()) else {
        return Value::Null;
    };
    let r = match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div if y != 0.0 => x / y,
        BinaryOp::Rem if y != 0.0 => x % y,
        _ => return Value::Null,
    };
    float(r)
}

fn numbers(args: &[Cow<'_, Value>]) -> Vec<f64> {
    if let [single] = args
        && let Value::Array(items) = single.as_ref()
    {
        return items.iter().filter_map(Value::as_f64).collect();
    }
    args.iter().filter_map(|v| v.as_f64()).collect()
}

fn number_value(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::from(f as i64)
    } else {
        float(f)
    }
}

fn call<S: Scope + ?Sized>(f: Function, args: &[Expr], scope: &S) -> Value {
    if f == Function::If {
        let branch = if truthy(&args[0].eval(scope)) {
            &args[1]
        } else {
            &args[2]
        };
        return branch.eval(scope).into_owned();
    }
    if f == Function::Now {
        return Value::String(rfc3339_now());
    }
    let vals: Vec<Cow<'_, Value>> = args.iter().map(|a| a.eval(scope)).collect();
    match f {
        Function::Min => numbers(&vals)
            .into_iter()
            .reduce(f64::min)
            .map_or(Value::Null, number_value),
        Function::Max => numbers(&vals)
            .into_iter()
            .reduce(f64::max)
            .map_or(Value::Null, number_value),
        _ => call_on_value(f, &vals),
    }
}

/// The functions of one value (`round` also takes an optional number of digits).
fn call_on_value(f: Function, v: &[Cow<'_, Value>]) -> Value {
    let a = v[0].as_ref();
    let str_fn = |g: fn(&str) -> String| a.as_str().map_or(Value::Null, |s| Value::String(g(s)));
    let num_fn = |g: fn(f64) -> f64| a.as_f64().map_or(Value::Null, |x| number_value(g(x)));
    match f {
        Function::Len => match a {
            Value::String(s) => Value::from(s.chars().count()),
            Value::Array(x) => Value::from(x.len()),
            Value::Object(m) => Value::from(m.len()),
            _ => Value::Null,
        },
        Function::Lower => str_fn(str::to_lowercase),
        Function::Upper => str_fn(str::to_uppercase),
        Function::Trim => str_fn(|s| s.trim().to_owned()),
        Function::Round => {
            let Some(x) = a.as_f64() else {
                return Value::Null;
            };
            let digits = v
                .get(1)
                .and_then(|d| d.as_i64())
                .unwrap_or(0)
                .clamp(-15, 15);
            let scale = 10f64.powi(digits as i32);
            let r = (x * scale).round() / scale;
            if digits <= 0 {
                number_value(r)
            } else {
                float(r)
            }
        }
        Function::Floor => num_fn(f64::floor),
        Function::Ceil => num_fn(f64::ceil),
        Function::Abs => match a {
            Value::Number(n) if n.is_i64() => n
                .as_i64()
                .and_then(i64::checked_abs)
                .map_or(Value::Null, Value::from),
            _ => a.as_f64().map_or(Value::Null, |x| float(x.abs())),
        },
        Function::Sum => match a {
            Value::Array(items) => {
                let mut int: Option<i64> = Some(0);
                let mut total = 0.0;
                for n in items.iter().filter(|x| x.is_number()) {
                    int = int.and_then(|acc| n.as_i64().and_then(|i| acc.checked_add(i)));
                    total += n.as_f64().unwrap_or(0.0);
                }
                int.map_or_else(|| float(total), Value::from)
            }
            _ => Value::Null,
        },
        Function::Avg => match a {
            Value::Array(items) => {
                let ns: Vec<f64> = items.iter().filter_map(Value::as_f64).collect();
                if ns.is_empty() {
                    Value::Null
                } else {
                    float(ns.iter().sum::<f64>() / ns.len() as f64)
                }
            }
            _ => Value::Null,
        },
        Function::Contains => contains(a, &v[1]),
        Function::StartsWith | Function::EndsWith => match (a, v[1].as_ref()) {
            (Value::String(s), Value::String(p)) => Value::Bool(if f == Function::StartsWith {
                s.starts_with(p.as_str())
            } else {
                s.ends_with(p.as_str())
            }),
            _ => Value::Null,
        },
        Function::String => match a {
            Value::String(_) => a.clone(),
            Value::Null => Value::Null,
            other => Value::String(other.to_string()),
        },
        Function::Number => match a {
            Value::Number(_) => a.clone(),
            Value::String(s) => {
                let s = s.trim();
                s.parse::<i64>()
                    .map(Value::from)
                    .or_else(|_| s.parse::<f64>().map(float))
                    .unwrap_or(Value::Null)
            }
            Value::Bool(b) => Value::from(u8::from(*b)),
            _ => Value::Null,
        },
        Function::Exists => Value::Bool(!a.is_null()),
        Function::ParseTime => super::time::parse(a, v.get(1).map(AsRef::as_ref)),
        Function::FormatTime => super::time::format(a, v[1].as_ref()),
        Function::AddTime => super::time::add(a, v[1].as_ref()),
        Function::DiffTime => super::time::diff(a, v[1].as_ref(), v.get(2).map(AsRef::as_ref)),
        Function::Now => unreachable!("handled by `call`"),
        Function::Min | Function::Max | Function::If => unreachable!("handled by `call`"),
    }
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn rfc3339_now() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(since.as_secs(), since.subsec_millis())
}

/// `secs` since the Unix epoch (and `millis`) as an RFC 3339 UTC timestamp.
pub(crate) fn rfc3339(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// A short description of a literal for diagnostics: "the string `'a'`", "the number `2`".
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "`null`".into(),
        Value::Bool(b) => format!("the boolean `{b}`"),
        Value::Number(n) => format!("the number `{n}`"),
        Value::String(s) => format!("the string `'{s}'`"),
        Value::Array(_) => format!("the list `{v}`"),
        Value::Object(_) => format!("the object `{v}`"),
    }
}

/// Why `l op r` on two literals can only give null, if it can.
pub(crate) fn binary_literal_error(op: BinaryOp, l: &Value, r: &Value) -> Option<String> {
    if l.is_null() || r.is_null() || !binary(op, l, r).is_null() {
        return None;
    }
    Some(format!(
        "`{}` cannot be applied to {} and {}",
        op.symbol(),
        describe(l),
        describe(r)
    ))
}
