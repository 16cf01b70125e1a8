//! Expressions: references, fallbacks, literals, operators and functions, parsed once at load.
//!
//! # Grammar
//!
//! | form | meaning |
//! |---|---|
//! | `$request.path_params.x`, `.query_params.x`, `.body.a.b`, `.headers.x-api-key` | a request input |
//! | `$request.x` | shorthand: path param `x`, else query param `x`, else body field `x` |
//! | `$profile`, `$profile.a.b`, `$orders[0].id`, `$orders[-1]`, `$orders[*].id`, `$x['odd key']` | a source's result |
//! | `$item` | the current record inside a `transform:` step, or the element of a `for_each` source |
//! | `$index` | the element's position inside a `for_each` source (from 0) |
//! | `$a.x \|\| $b.y \|\| 0` | fallback: the first operand that is not null |
//! | `700`, `1.5`, `'x'`, `"x"`, `true`, `false`, `null`, `[1, 2]` | typed literals |
//! | `==` `!=` `<` `<=` `>` `>=` `in` | comparisons (numbers by value, strings lexically, `in` for list membership or substring) |
//! | `+` `-` `*` `/` `%` | arithmetic (`+` also joins strings) |
//! | `and` `or` `not` (`!` for `not`) | boolean logic over truthiness |
//! | `len(x)`, `round(x, 2)`, … | functions, see [`Function`] |
//!
//! Precedence from loosest: `or`, `and`, `not`, comparisons, `+ -`, `* / %`, unary `-`, `||`,
//! then primaries. So `$a.x || 0 > 5` compares the fallback's result.
//!
//! Truthiness (conditions, `filter`, `and`/`or`/`not`): `null`, `false`, `0`, `""`, `[]` and `{}`
//! are false, everything else is true. A missing path is `null`, never an error. Operators
//! applied to values of the wrong type give `null` (`'a' * 2`); when both operands are literals
//! the validator rejects the expression at load instead.
//!
//! # In config values
//!
//! A string value that starts with `$` is an expression; `$=` starts an expression that does not
//! begin with a reference (`"$= round($features.score * 100, 1)"`); `$$` escapes a literal
//! leading dollar. Every other value is a literal. `condition:` and `filter:` take an expression
//! without the `$=` prefix.
//!
//! # Why not CEL or JMESPath
//!
//! The design asks for a maintained expression crate where one fits. Neither fits the config
//! language we must keep: in the seed's vocabulary `||` is a *null fallback* (`$a.x || 0`) while
//! in CEL it is boolean *or* (and an error on non-bools), and a missing field is an error in CEL
//! where our mappings need `null`; JMESPath has no `$source` roots, no arithmetic and different
//! literal syntax. Wrapping either would mean rewriting the source text and converting every
//! JSON value into the crate's value type on each evaluation, which costs more than the whole
//! engine budget. Finally the `orchestrate!` macro must build expressions at compile time with no
//! parsing left for run time, which needs an AST we own. So the grammar is small, CEL-shaped
//! where it can be, parsed into the plain data types below, and fully tested.

mod eval;
mod parse;
mod time;

use serde_json::{Map, Value};

pub use eval::{Scope, WithItem, truthy};
pub(crate) use eval::{binary as eval_binary, binary_literal_error, compare, describe, field};
pub use parse::{MAX_NESTING, MAX_OPERATORS, ParseError};

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Expr {
    /// A typed literal.
    Literal(Value),
    /// A reference into the request, a source result or the current item.
    Ref(Reference),
    /// `a || b || c`: the first non-null operand.
    Fallback(Vec<Expr>),
    /// `not x` / `!x`.
    Not(Box<Expr>),
    /// `-x`.
    Neg(Box<Expr>),
    /// A binary operator.
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// A function call, arity checked at parse.
    Call(Function, Vec<Expr>),
    /// `[a, b]`.
    List(Vec<Expr>),
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BinaryOp {
    /// `or`
    Or,
    /// `and`
    And,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `in`
    In,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
}

impl BinaryOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Or => "or",
            Self::And => "and",
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::In => "in",
            Self::Add => "+",
            Self::Sub => "-",
            Self::Mul => "*",
            Self::Div => "/",
            Self::Rem => "%",
        }
    }
}

macro_rules! functions {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $min:literal ..= $max:literal;)*) => {
        /// Built-in functions.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Function {
            $($(#[$doc])* $variant,)*
        }

        impl Function {
            /// Every function name, for "did you mean".
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            /// Looks a function up by name.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($name => Some(Self::$variant),)* _ => None }
            }

            /// The function's name.
            pub fn name(self) -> &'static str {
                match self { $(Self::$variant => $name,)* }
            }

            /// Accepted argument counts.
            pub fn arity(self) -> std::ops::RangeInclusive<usize> {
                match self { $(Self::$variant => $min..=$max,)* }
            }
        }
    };
}

functions! {
    /// `len(x)`: length of a string (chars), array or object; null otherwise.
    Len = "len", 1..=1;
    /// `lower(s)`
    Lower = "lower", 1..=1;
    /// `upper(s)`
    Upper = "upper", 1..=1;
    /// `trim(s)`
    Trim = "trim", 1..=1;
    /// `round(x)` / `round(x, digits)`
    Round = "round", 1..=2;
    /// `floor(x)`
    Floor = "floor", 1..=1;
    /// `ceil(x)`
    Ceil = "ceil", 1..=1;
    /// `abs(x)`
    Abs = "abs", 1..=1;
    /// `min(a, b, …)` or `min(list)`: smallest number.
    Min = "min", 1..=16;
    /// `max(a, b, …)` or `max(list)`: largest number.
    Max = "max", 1..=16;
    /// `sum(list)`: sum of the numbers in a list.
    Sum = "sum", 1..=1;
    /// `avg(list)`: mean of the numbers in a list, null when empty.
    Avg = "avg", 1..=1;
    /// `contains(haystack, needle)`: substring, list element or object key.
    Contains = "contains", 2..=2;
    /// `starts_with(s, prefix)`
    StartsWith = "starts_with", 2..=2;
    /// `ends_with(s, suffix)`
    EndsWith = "ends_with", 2..=2;
    /// `string(x)`: JSON text of `x`, or the string itself.
    String = "string", 1..=1;
    /// `number(x)`: a number parsed from a string, or the number itself.
    Number = "number", 1..=1;
    /// `if(cond, then, else)`: `then` when `cond` is truthy.
    If = "if", 3..=3;
    /// `exists(x)`: whether `x` is not null.
    Exists = "exists", 1..=1;
    /// `now()`: the current time, an RFC 3339 UTC string with milliseconds
    /// (`2026-12-01T14:28:52.123Z`); `$system.timestamp` is the same.
    Now = "now", 0..=0;
    /// `parse_time(text)` / `parse_time(text, format)`: a time as `now()` spells it, from RFC
    /// 3339 (any offset), `YYYY-MM-DD[ HH:MM:SS]`, epoch seconds, or a strftime `format`.
    ParseTime = "parse_time", 1..=2;
    /// `format_time(time, format)`: a time in a strftime format (`'%d.%m.%Y'`).
    FormatTime = "format_time", 2..=2;
    /// `add_time(time, duration)`: a duration of seconds, or `'90s'`, `'15m'`, `'2h'`, `'7d'`,
    /// `'-1d'`, `'250ms'`.
    AddTime = "add_time", 2..=2;
    /// `diff_time(a, b)` / `diff_time(a, b, unit)`: `a - b` in seconds, or in `'ms'`, `'m'`,
    /// `'h'`, `'d'`.
    DiffTime = "diff_time", 2..=3;
}

/// The root of a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Root {
    /// `$request…`
    Request(RequestPart),
    /// `$<source>…`
    Source(String),
    /// `$item…`: the record inside a transform step, or the element a `for_each` source runs
    /// for.
    Item,
    /// `$index`: the position of the element a `for_each` source runs for.
    Index,
}

/// Which part of the request a `$request` reference reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestPart {
    /// `$request.x`: path, then query, then body.
    Any,
    /// `$request.path_params`
    PathParams,
    /// `$request.query_params`
    QueryParams,
    /// `$request.body`
    Body,
    /// `$request.headers` (names are matched lower-case)
    Headers,
    /// `$request.auth`: the verified claims of the caller's bearer token.
    Auth,
    /// `$request.context`: what the host attached to the request.
    Context,
}

impl RequestPart {
    /// The keyword after `$request.`, or `None` for the shorthand.
    pub fn keyword(self) -> Option<&'static str> {
        match self {
            Self::Any => None,
            Self::PathParams => Some("path_params"),
            Self::QueryParams => Some("query_params"),
            Self::Body => Some("body"),
            Self::Headers => Some("headers"),
            Self::Auth => Some("auth"),
            Self::Context => Some("context"),
        }
    }
}

/// One step of a reference path.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Segment {
    /// `.name` or `['name']`
    Field(String),
    /// `[n]`; negative counts from the end.
    Index(i64),
    /// `[*]`: the rest of the path applied to every element.
    All,
}

/// A reference: a root and a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Where it starts.
    pub root: Root,
    /// Steps into the value.
    pub path: Vec<Segment>,
}

impl Reference {
    /// A reference from `root` along `path`.
    pub fn new(root: Root, path: Vec<Segment>) -> Self {
        Self { root, path }
    }

    /// The first field name of the path, if the path starts with one.
    pub fn first_field(&self) -> Option<&str> {
        match self.path.first() {
            Some(Segment::Field(f)) => Some(f),
            _ => None,
        }
    }

    /// The source this reference reads, if it reads one.
    pub fn source(&self) -> Option<&str> {
        match &self.root {
            Root::Source(s) => Some(s),
            _ => None,
        }
    }
}

impl Expr {
    /// Parses an expression (without the config `$=` marker).
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        parse::parse(text)
    }

    /// Calls `f` on every reference in the expression.
    pub fn visit_references<'a>(&'a self, f: &mut dyn FnMut(&'a Reference)) {
        match self {
            Self::Literal(_) => {}
            Self::Ref(r) => f(r),
            Self::Fallback(xs) | Self::Call(_, xs) | Self::List(xs) => {
                xs.iter().for_each(|x| x.visit_references(f));
            }
            Self::Not(x) | Self::Neg(x) => x.visit_references(f),
            Self::Binary(_, a, b) => {
                a.visit_references(f);
                b.visit_references(f);
            }
        }
    }

    /// Calls `f` on this expression and every sub-expression.
    pub fn visit(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Self::Literal(_) | Self::Ref(_) => {}
            Self::Fallback(xs) | Self::Call(_, xs) | Self::List(xs) => {
                xs.iter().for_each(|x| x.visit(f));
            }
            Self::Not(x) | Self::Neg(x) => x.visit(f),
            Self::Binary(_, a, b) => {
                a.visit(f);
                b.visit(f);
            }
        }
    }
}

/// A value template: a JSON tree whose `$` strings are expressions. Used for params, response
/// mappings and `map`/`compute` transform steps.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Template {
    /// A subtree without expressions, copied as is.
    Literal(Value),
    /// An expression.
    Expr(Expr),
    /// An object whose values are templates, keys in declaration order.
    Object(Fields),
    /// An array of templates.
    Array(Vec<Template>),
}

/// The fields of an object template, in declaration order.
///
/// Also holds the output object's keys, built once: evaluating clones that object (an ordered
/// map's table is copied, not rebuilt) instead of hashing every key again per evaluation.
///
/// ```
/// use api_orchestrator_core::expr::{Fields, Template};
/// use serde_json::json;
///
/// let t = Template::from_value(&json!({"id": "$request.id", "kind": "customer"})).unwrap();
/// let Template::Object(fields) = &t else { unreachable!() };
/// assert_eq!(fields.len(), 2);
/// assert_eq!(fields[1], ("kind".to_owned(), Template::Literal(json!("customer"))));
///
/// // The same template built by hand.
/// let by_hand = Template::Object(Fields::new(vec![
///     ("id".into(), Template::from_value(&json!("$request.id")).unwrap()),
///     ("kind".into(), Template::Literal(json!("customer"))),
/// ]));
/// assert_eq!(t, by_hand);
/// ```
#[derive(Clone, Default)]
pub struct Fields {
    /// Distinct keys.
    fields: Vec<(String, Template)>,
    /// The same keys, in the same order, with null values.
    keys: Map<String, Value>,
}

impl Fields {
    /// Fields from `(key, template)` pairs in output order. A repeated key keeps its first
    /// position and its last template, as inserting into an object would.
    pub fn new(pairs: Vec<(String, Template)>) -> Self {
        let mut fields: Vec<(String, Template)> = Vec::with_capacity(pairs.len());
        for (k, t) in pairs {
            match fields.iter_mut().find(|(f, _)| *f == k) {
                Some(slot) => slot.1 = t,
                None => fields.push((k, t)),
            }
        }
        let keys = fields
            .iter()
            .map(|(k, _)| (k.clone(), Value::Null))
            .collect();
        Self { fields, keys }
    }

    /// The output object with every key set to null, in order.
    pub(crate) fn keys(&self) -> &Map<String, Value> {
        &self.keys
    }
}

impl std::ops::Deref for Fields {
    type Target = [(String, Template)];

    fn deref(&self) -> &Self::Target {
        &self.fields
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = &'a (String, Template);
    type IntoIter = std::slice::Iter<'a, (String, Template)>;

    fn into_iter(self) -> Self::IntoIter {
        self.fields.iter()
    }
}

impl From<Vec<(String, Template)>> for Fields {
    fn from(fields: Vec<(String, Template)>) -> Self {
        Self::new(fields)
    }
}

impl FromIterator<(String, Template)> for Fields {
    fn from_iter<I: IntoIterator<Item = (String, Template)>>(iter: I) -> Self {
        Self::new(iter.into_iter().collect())
    }
}

impl PartialEq for Fields {
    fn eq(&self, other: &Self) -> bool {
        self.fields == other.fields
    }
}

impl std::fmt::Debug for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.fields).finish()
    }
}

/// A string that should have been an expression but did not parse.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    /// Path below the template's root, as `(key or index)` steps.
    pub path: Vec<PathStep>,
    /// The parse error.
    pub error: ParseError,
}

/// One step of a path inside a template or a config document.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathStep {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

impl Template {
    /// Builds a template from a JSON value: strings starting with `$` are parsed as expressions
    /// (`$=` for ones that start with something else, `$$` escapes a literal dollar). Collects
    /// every parse error.
    pub fn from_value(value: &Value) -> Result<Self, Vec<TemplateError>> {
        let (t, errors) = Self::from_value_lossy(value);
        if errors.is_empty() {
            Ok(t)
        } else {
            Err(errors)
        }
    }

    /// Like [`Template::from_value`], but also returns the template with every string that did
    /// not parse replaced by null, so the rest can still be checked.
    pub fn from_value_lossy(value: &Value) -> (Self, Vec<TemplateError>) {
        let mut errors = Vec::new();
        let t = Self::build(value, &mut Vec::new(), &mut errors);
        (t, errors)
    }

    fn build(value: &Value, path: &mut Vec<PathStep>, errors: &mut Vec<TemplateError>) -> Self {
        match value {
            Value::String(s) => match parse_template_string(s) {
                Ok(t) => t,
                Err(error) => {
                    errors.push(TemplateError {
                        path: path.clone(),
                        error,
                    });
                    Self::Literal(Value::Null)
                }
            },
            Value::Object(map) => {
                let mut fields = Vec::with_capacity(map.len());
                for (k, v) in map {
                    path.push(PathStep::Key(k.clone()));
                    fields.push((k.clone(), Self::build(v, path, errors)));
                    path.pop();
                }
                if fields.iter().all(|(_, t)| matches!(t, Self::Literal(_))) {
                    Self::Literal(Self::fold_object(fields))
                } else {
                    Self::Object(Fields::new(fields))
                }
            }
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, v) in items.iter().enumerate() {
                    path.push(PathStep::Index(i));
                    out.push(Self::build(v, path, errors));
                    path.pop();
                }
                if out.iter().all(|t| matches!(t, Self::Literal(_))) {
                    Self::Literal(Value::Array(
                        out.into_iter()
                            .map(|t| match t {
                                Self::Literal(v) => v,
                                _ => unreachable!("checked above"),
                            })
                            .collect(),
                    ))
                } else {
                    Self::Array(out)
                }
            }
            other => Self::Literal(other.clone()),
        }
    }

    fn fold_object(fields: Vec<(String, Template)>) -> Value {
        Value::Object(
            fields
                .into_iter()
                .map(|(k, t)| match t {
                    Self::Literal(v) => (k, v),
                    _ => unreachable!("only called on literal fields"),
                })
                .collect(),
        )
    }

    /// Calls `f` on every reference in the template.
    pub fn visit_references<'a>(&'a self, f: &mut dyn FnMut(&'a Reference)) {
        match self {
            Self::Literal(_) => {}
            Self::Expr(e) => e.visit_references(f),
            Self::Object(fields) => fields.iter().for_each(|(_, t)| t.visit_references(f)),
            Self::Array(items) => items.iter().for_each(|t| t.visit_references(f)),
        }
    }

    /// Calls `f` on every expression in the template with its path below the template root.
    pub fn visit_exprs(&self, path: &mut Vec<PathStep>, f: &mut dyn FnMut(&[PathStep], &Expr)) {
        match self {
            Self::Literal(_) => {}
            Self::Expr(e) => f(path, e),
            Self::Object(fields) => {
                for (k, t) in fields {
                    path.push(PathStep::Key(k.clone()));
                    t.visit_exprs(path, f);
                    path.pop();
                }
            }
            Self::Array(items) => {
                for (i, t) in items.iter().enumerate() {
                    path.push(PathStep::Index(i));
                    t.visit_exprs(path, f);
                    path.pop();
                }
            }
        }
    }
}

/// Parses one config string: `$…` is an expression, `$=…` an expression with the marker removed,
/// `$$…` a literal with one dollar removed, anything else a literal string.
pub fn parse_template_string(s: &str) -> Result<Template, ParseError> {
    if let Some(rest) = s.strip_prefix("$$") {
        return Ok(Template::Literal(Value::String(format!("${rest}"))));
    }
    if let Some(rest) = s.strip_prefix("$=") {
        return parse::parse_at(rest, 2).map(Template::Expr);
    }
    if s.starts_with('$') {
        return Expr::parse(s).map(Template::Expr);
    }
    Ok(Template::Literal(Value::String(s.to_owned())))
}

/// Whether `s` is an identifier: ASCII letter or `_`, then letters, digits or `_`.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests;
