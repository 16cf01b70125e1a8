//! The DSL's tokens as a JSON-like tree that remembers where each key and value came from.
//!
//! Values: `{ key: value, … }` (keys are identifiers, keywords such as `type` included, or
//! string literals), `[ a, b ]`, string / number / `true` / `false` / `null` literals, bare
//! identifiers (`database`, `GET`) which are strings, negative numbers, and expressions: a `$`
//! and everything after it up to the next `,` at the same depth (`$profile.name || "none"`),
//! written exactly as in YAML strings.

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use serde_json::{Map, Value};

/// A parsed value and its spans.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) kind: Kind,
    /// The whole value (its first token for multi-token values).
    pub(crate) span: Span,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Scalar(Value),
    /// An expression written as tokens: its text and, for each token, its byte range in the text.
    Expr(String, TokenMap),
    Array(Vec<Node>),
    /// Keys with their spans, in order.
    Object(Vec<(String, Span, Node)>),
}

impl Node {
    /// As plain JSON (expressions become their `$…` text, as a YAML string would hold them).
    pub(crate) fn to_json(&self) -> Value {
        match &self.kind {
            Kind::Scalar(v) => v.clone(),
            Kind::Expr(text, _) => Value::String(text.clone()),
            Kind::Array(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, _, v)| (k.clone(), v.to_json()))
                    .collect::<Map<_, _>>(),
            ),
        }
    }

    /// The span of byte `offset` of a value's text (inside an expression, the token there).
    pub(crate) fn span_at(&self, offset: usize) -> Span {
        match &self.kind {
            Kind::Expr(_, tokens) => tokens
                .iter()
                .find(|(r, _)| r.contains(&offset))
                .or_else(|| tokens.last().filter(|(r, _)| offset >= r.end))
                .map_or(self.span, |(_, s)| *s),
            _ => self.span,
        }
    }
}

/// Parses the inside of a `{ … }`: `key: value` pairs separated by commas.
pub(crate) fn object(stream: TokenStream, span: Span) -> syn::Result<Node> {
    let tokens: Vec<TokenTree> = stream.into_iter().collect();
    let mut fields = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let (key, key_span) = match &tokens[i] {
            TokenTree::Ident(id) => (
                id.to_string().trim_start_matches("r#").to_owned(),
                id.span(),
            ),
            TokenTree::Literal(lit) => match syn::parse_str::<syn::LitStr>(&lit.to_string()) {
                Ok(s) => (s.value(), lit.span()),
                Err(_) => {
                    return Err(syn::Error::new(
                        lit.span(),
                        "expected a key: a name or a string",
                    ));
                }
            },
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "expected a key: a name or a string",
                ));
            }
        };
        i += 1;
        match tokens.get(i) {
            Some(TokenTree::Punct(p)) if p.as_char() == ':' => i += 1,
            Some(other) => {
                return Err(syn::Error::new(
                    other.span(),
                    format!("expected `:` after `{key}`"),
                ));
            }
            None => {
                return Err(syn::Error::new(
                    key_span,
                    format!("`{key}` has no value: write `{key}: …`"),
                ));
            }
        }
        let end = value_end(&tokens, i);
        if end == i {
            return Err(syn::Error::new(key_span, format!("`{key}` has no value")));
        }
        let node = value(&tokens[i..end])?;
        if fields
            .iter()
            .any(|(k, _, _): &(String, Span, Node)| *k == key)
        {
            return Err(syn::Error::new(key_span, format!("duplicate key `{key}`")));
        }
        fields.push((key, key_span, node));
        i = end;
        if let Some(TokenTree::Punct(p)) = tokens.get(i)
            && p.as_char() == ','
        {
            i += 1;
        }
    }
    Ok(Node {
        kind: Kind::Object(fields),
        span,
    })
}

/// Where the value starting at `from` ends: the next `,` at this depth.
fn value_end(tokens: &[TokenTree], from: usize) -> usize {
    tokens[from..]
        .iter()
        .position(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ','))
        .map_or(tokens.len(), |p| from + p)
}

fn value(tokens: &[TokenTree]) -> syn::Result<Node> {
    let first = &tokens[0];
    let span = first.span();
    if let TokenTree::Punct(p) = first
        && p.as_char() == '$'
    {
        let (text, map) = expression_text(tokens);
        return Ok(Node {
            kind: Kind::Expr(text, map),
            span,
        });
    }
    let one = |node: Node| {
        if tokens.len() > 1 {
            Err(syn::Error::new(
                tokens[1].span(),
                "unexpected token: separate items with `,`, and start expressions with `$`",
            ))
        } else {
            Ok(node)
        }
    };
    match first {
        TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => {
            one(object(g.stream(), g.span())?)
        }
        TokenTree::Group(g) if g.delimiter() == Delimiter::Bracket => {
            let inner: Vec<TokenTree> = g.stream().into_iter().collect();
            let mut items = Vec::new();
            let mut i = 0;
            while i < inner.len() {
                let end = value_end(&inner, i);
                if end > i {
                    items.push(value(&inner[i..end])?);
                }
                i = end + 1;
            }
            one(Node {
                kind: Kind::Array(items),
                span: g.span(),
            })
        }
        TokenTree::Group(g) => Err(syn::Error::new(g.span(), "expected `{ … }` or `[ … ]`")),
        TokenTree::Ident(id) => one(Node {
            kind: Kind::Scalar(match id.to_string().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                other => Value::String(other.trim_start_matches("r#").to_owned()),
            }),
            span,
        }),
        TokenTree::Literal(lit) => one(Node {
            kind: Kind::Scalar(literal(lit)?),
            span,
        }),
        TokenTree::Punct(p) if p.as_char() == '-' => match tokens.get(1) {
            Some(TokenTree::Literal(lit)) if tokens.len() == 2 => {
                let v = literal(lit)?;
                let neg = match v {
                    Value::Number(n) if n.is_f64() => n.as_f64().map(|f| Value::from(-f)),
                    Value::Number(n) => n.as_i64().and_then(i64::checked_neg).map(Value::from),
                    _ => None,
                };
                neg.map(|v| Node {
                    kind: Kind::Scalar(v),
                    span,
                })
                .ok_or_else(|| syn::Error::new(lit.span(), "expected a number after `-`"))
            }
            _ => Err(syn::Error::new(span, "expected a number after `-`")),
        },
        TokenTree::Punct(p) => Err(syn::Error::new(
            p.span(),
            format!("unexpected `{}`: expressions start with `$`", p.as_char()),
        )),
    }
}

fn literal(lit: &proc_macro2::Literal) -> syn::Result<Value> {
    let text = lit.to_string();
    match syn::parse_str::<syn::Lit>(&text) {
        Ok(syn::Lit::Str(s)) => Ok(Value::String(s.value())),
        // `300ms`, `30s`, `1.5s`: a number with a unit is the text YAML would read
        // (`timeout: 300ms`), not the bare number.
        Ok(syn::Lit::Int(i)) if !i.suffix().is_empty() => Ok(Value::String(text)),
        Ok(syn::Lit::Float(f)) if !f.suffix().is_empty() => Ok(Value::String(text)),
        Ok(syn::Lit::Int(i)) => i
            .base10_parse::<i64>()
            .map(Value::from)
            .or_else(|_| i.base10_parse::<u64>().map(Value::from)),
        Ok(syn::Lit::Float(f)) => f.base10_parse::<f64>().map(Value::from),
        Ok(syn::Lit::Bool(b)) => Ok(Value::Bool(b.value)),
        _ => Err(syn::Error::new(
            lit.span(),
            "expected a string, a number, `true`, `false` or `null`",
        )),
    }
}

/// The source text of an expression's tokens, spaced as written (tokens that touch in the
/// source touch in the text), and each token's byte range in it.
fn expression_text(tokens: &[TokenTree]) -> (String, TokenMap) {
    let mut text = String::new();
    let mut map = Vec::new();
    let mut last_end: Option<proc_macro2::LineColumn> = None;
    flatten(tokens, &mut text, &mut map, &mut last_end);
    (text, map)
}

type TokenMap = Vec<(std::ops::Range<usize>, Span)>;

/// Appends one token's text, with a space before it unless it touches the previous token.
fn push(
    s: &str,
    span: Span,
    text: &mut String,
    map: &mut TokenMap,
    last_end: &mut Option<proc_macro2::LineColumn>,
) {
    if let Some(end) = *last_end
        && end != span.start()
        && !text.is_empty()
    {
        text.push(' ');
    }
    let from = text.len();
    text.push_str(s);
    map.push((from..text.len(), span));
    *last_end = Some(span.end());
}

fn flatten(
    tokens: &[TokenTree],
    text: &mut String,
    map: &mut TokenMap,
    last_end: &mut Option<proc_macro2::LineColumn>,
) {
    for t in tokens {
        match t {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::None => ("", ""),
                };
                push(open, g.span_open(), text, map, last_end);
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                flatten(&inner, text, map, last_end);
                push(close, g.span_close(), text, map, last_end);
            }
            other => push(&other.to_string(), other.span(), text, map, last_end),
        }
    }
}
