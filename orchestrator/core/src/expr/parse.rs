//! The expression parser: a hand-written lexer and a precedence-climbing parser.

use serde_json::{Number, Value};

use super::{BinaryOp, Expr, Function, Reference, RequestPart, Root, Segment, is_identifier};

/// A syntax error in an expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// What is wrong.
    pub message: String,
    /// Byte offset of the problem in the config string.
    pub offset: usize,
    /// How to fix it, when there is an obvious fix.
    pub help: Option<String>,
}

impl ParseError {
    fn new(message: impl Into<String>, offset: usize) -> Self {
        Self {
            message: message.into(),
            offset,
            help: None,
        }
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

pub(super) fn parse(text: &str) -> Result<Expr, ParseError> {
    parse_at(text, 0)
}

/// Parses `text`, reporting offsets shifted by `base` (the length of a stripped `$=` marker).
pub(super) fn parse_at(text: &str, base: usize) -> Result<Expr, ParseError> {
    let tokens = lex(text).map_err(|e| shift(e, base))?;
    let limits = crate::limits::current();
    let mut p = Parser {
        tokens,
        pos: 0,
        end: text.len(),
        depth: 0,
        operators: 0,
        max_nesting: limits.expression_nesting,
        max_operators: limits.expression_operators,
    };
    let expr = p.expr().map_err(|e| shift(e, base))?;
    match p.peek() {
        None => Ok(expr),
        Some((tok, at)) => Err(shift(
            ParseError::new(
                format!("unexpected {} after the expression", tok.describe()),
                at,
            ),
            base,
        )),
    }
}

fn shift(mut e: ParseError, base: usize) -> ParseError {
    e.offset += base;
    e
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ref(Reference),
    /// `$system.timestamp`, the original service's spelling of `now()`.
    Now,
    Lit(Value),
    Ident(String),
    Op(&'static str),
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Self::Ref(_) | Self::Now => "reference".into(),
            Self::Lit(v) => format!("literal `{v}`"),
            Self::Ident(i) => format!("`{i}`"),
            Self::Op(o) => format!("`{o}`"),
        }
    }
}

const OPS: &[&str] = &[
    "||", "&&", "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "!", "(", ")", "[", "]",
    ",",
];

fn lex(text: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c == b'$'
            && text[i + 1..].starts_with("system")
            && scan_ident(bytes, i + 1) == i + 1 + "system".len()
        {
            let next = lex_system(text, i)?;
            out.push((Tok::Now, start));
            i = next;
        } else if c == b'$' {
            let (r, next) = lex_reference(text, i)?;
            out.push((Tok::Ref(r), start));
            i = next;
        } else if c.is_ascii_digit()
            || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let (v, next) = lex_number(text, i)?;
            out.push((Tok::Lit(v), start));
            i = next;
        } else if c == b'\'' || c == b'"' {
            let (s, next) = lex_string(text, i)?;
            out.push((Tok::Lit(Value::String(s)), start));
            i = next;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let end = scan_ident(bytes, i);
            let word = &text[i..end];
            let tok = match word {
                "true" => Tok::Lit(Value::Bool(true)),
                "false" => Tok::Lit(Value::Bool(false)),
                "null" => Tok::Lit(Value::Null),
                _ => Tok::Ident(word.into()),
            };
            out.push((tok, start));
            i = end;
        } else if let Some(op) = OPS.iter().find(|op| text[i..].starts_with(**op)) {
            if *op == "&&" {
                return Err(ParseError::new("`&&` is not an operator here", i)
                    .help("use `and` for boolean and (`||` is the null fallback); this is not JavaScript: `len($request.body) > 0` tests that a body has fields"));
            }
            out.push((Tok::Op(op), start));
            i += op.len();
        } else {
            let ch = text[i..].chars().next().unwrap_or('?');
            return Err(ParseError::new(format!("unexpected character `{ch}`"), i));
        }
    }
    Ok(out)
}

fn scan_ident(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
        i += 1;
    }
    i
}

fn lex_number(text: &str, start: usize) -> Result<(Value, usize), ParseError> {
    let bytes = text.as_bytes();
    let mut i = start;
    let mut float = false;
    while i < bytes.len() {
        match bytes[i] {
            b'0'..=b'9' | b'_' => {}
            b'.' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => float = true,
            b'e' | b'E' => {
                float = true;
                if matches!(bytes.get(i + 1), Some(b'+' | b'-')) {
                    i += 1;
                }
            }
            _ => break,
        }
        i += 1;
    }
    let raw: String = text[start..i].chars().filter(|&c| c != '_').collect();
    let bad = || ParseError::new(format!("invalid number `{}`", &text[start..i]), start);
    let value = if float {
        let f: f64 = raw.parse().map_err(|_| bad())?;
        Number::from_f64(f).map(Value::Number).ok_or_else(bad)?
    } else if let Ok(n) = raw.parse::<i64>() {
        Value::from(n)
    } else if let Ok(n) = raw.parse::<u64>() {
        Value::from(n)
    } else {
        return Err(bad().help("integers must fit in 64 bits"));
    };
    if bytes.get(i).is_some_and(|b| b.is_ascii_alphabetic()) {
        return Err(ParseError::new(
            format!("invalid number `{}`", &text[start..=i]),
            start,
        ));
    }
    Ok((value, i))
}

fn lex_string(text: &str, start: usize) -> Result<(String, usize), ParseError> {
    let quote = text.as_bytes()[start] as char;
    let mut out = String::new();
    let mut chars = text[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((out, start + 1 + off + 1)),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, c @ ('\\' | '\'' | '"'))) => out.push(c),
                Some((o, c)) => {
                    return Err(ParseError::new(
                        format!("unknown escape `\\{c}`"),
                        start + 1 + o - 1,
                    ));
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(ParseError::new("unterminated string literal", start)
        .help(format!("close it with {quote}")))
}

/// `$system.timestamp`: the only field of `$system`.
fn lex_system(text: &str, start: usize) -> Result<usize, ParseError> {
    const NOW: &str = "$system.timestamp";
    let end = start + NOW.len();
    if text[start..].starts_with(NOW) && scan_ident(text.as_bytes(), end) == end {
        return Ok(end);
    }
    Err(
        ParseError::new("`$system` has one field, `timestamp`", start)
            .help("write `$system.timestamp` (or `now()`) for the current time"),
    )
}

fn lex_reference(text: &str, start: usize) -> Result<(Reference, usize), ParseError> {
    let bytes = text.as_bytes();
    let name_start = start + 1;
    let name_end = scan_ident(bytes, name_start);
    let name = &text[name_start..name_end];
    if !is_identifier(name) {
        return Err(
            ParseError::new("expected a source name or `request` after `$`", start)
                .help("write `$source.field` or `$request.name`; use `$$` for a literal dollar"),
        );
    }
    let mut i = name_end;
    let mut path = Vec::new();
    let root = match name {
        "request" => {
            let part = if bytes.get(i) == Some(&b'.') {
                let end = scan_ident(bytes, i + 1);
                match &text[i + 1..end] {
                    "path_params" => Some(RequestPart::PathParams),
                    "query_params" => Some(RequestPart::QueryParams),
                    "body" => Some(RequestPart::Body),
                    "headers" => Some(RequestPart::Headers),
                    "auth" => Some(RequestPart::Auth),
                    "context" => Some(RequestPart::Context),
                    _ => None,
                }
                .inspect(|_| i = end)
            } else {
                None
            };
            // `$request` alone is the whole request: `{path_params, query_params, body}`.
            Root::Request(part.unwrap_or(RequestPart::Any))
        }
        "item" => Root::Item,
        "index" => Root::Index,
        other => Root::Source(other.into()),
    };
    let headers = root == Root::Request(RequestPart::Headers);
    loop {
        match bytes.get(i) {
            Some(b'.') => {
                let mut end = i + 1;
                while end < bytes.len()
                    && (bytes[end].is_ascii_alphanumeric()
                        || bytes[end] == b'_'
                        || (headers && bytes[end] == b'-')
                        // Feast's `view:feature` names, as the original service wrote them.
                        || (bytes[end] == b':'
                            && end > i + 1
                            && bytes
                                .get(end + 1)
                                .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')))
                {
                    end += 1;
                }
                if end == i + 1 {
                    return Err(ParseError::new("expected a field name after `.`", i)
                        .help("quote unusual names: `$source['odd name']`"));
                }
                let field = &text[i + 1..end];
                path.push(if headers {
                    Segment::Field(field.to_ascii_lowercase())
                } else if field.bytes().all(|b| b.is_ascii_digit()) {
                    // `$orders.0.id`, the original service's list index.
                    field
                        .parse()
                        .map_or_else(|_| Segment::Field(field.into()), Segment::Index)
                } else {
                    Segment::Field(field.into())
                });
                i = end;
            }
            Some(b'[') => {
                let (seg, next) = lex_index(text, i)?;
                path.push(match seg {
                    Segment::Field(f) if headers => Segment::Field(f.to_ascii_lowercase()),
                    other => other,
                });
                i = next;
            }
            _ => break,
        }
    }
    Ok((Reference { root, path }, i))
}

fn lex_index(text: &str, open: usize) -> Result<(Segment, usize), ParseError> {
    let bytes = text.as_bytes();
    let mut i = open + 1;
    let seg = match bytes.get(i) {
        Some(b'*') => {
            i += 1;
            Segment::All
        }
        Some(b'\'' | b'"') => {
            let (s, next) = lex_string(text, i)?;
            i = next;
            Segment::Field(s)
        }
        Some(b'-' | b'0'..=b'9') => {
            let s = i;
            i += 1;
            while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            let n = text[s..i]
                .parse::<i64>()
                .map_err(|_| ParseError::new(format!("invalid index `{}`", &text[s..i]), s))?;
            Segment::Index(n)
        }
        _ => {
            return Err(
                ParseError::new("expected an index, `*` or a quoted key after `[`", open)
                    .help("write `[0]`, `[-1]`, `[*]` or `['key']`"),
            );
        }
    };
    if bytes.get(i) != Some(&b']') {
        return Err(ParseError::new("expected `]`", i));
    }
    Ok((seg, i + 1))
}

/// `-x`, folded into the literal when `x` is a number literal so `-1` stays a typed literal.
fn negate(inner: Expr) -> Expr {
    if let Expr::Literal(Value::Number(n)) = &inner {
        if let Some(i) = n.as_i64().and_then(i64::checked_neg) {
            return Expr::Literal(Value::from(i));
        }
        if !n.is_i64()
            && !n.is_u64()
            && let Some(f) = n.as_f64().and_then(|f| Number::from_f64(-f))
        {
            return Expr::Literal(Value::Number(f));
        }
    }
    Expr::Neg(Box::new(inner))
}

/// How deep parentheses, lists, calls and unary operators may nest in one expression, unless
/// `limits.expression_nesting` says otherwise ([`Limits`](crate::plan::Limits)).
pub const MAX_NESTING: usize = 32;
/// How many operators one expression may have, unless `limits.expression_operators` says
/// otherwise. Together with [`MAX_NESTING`] this bounds the depth of the tree every later
/// pass (validation, evaluation, drop) recurses over, so a config cannot overflow a thread's
/// stack.
pub const MAX_OPERATORS: usize = 256;

struct Parser {
    tokens: Vec<(Tok, usize)>,
    pos: usize,
    end: usize,
    /// Current nesting depth.
    depth: usize,
    /// Operators so far.
    operators: usize,
    /// The limits in force ([`MAX_NESTING`], [`MAX_OPERATORS`] unless raised).
    max_nesting: usize,
    max_operators: usize,
}

impl Parser {
    /// The position of the current token (the end when there is none), for errors.
    fn here(&self) -> usize {
        self.peek().map_or(self.end, |(_, at)| at)
    }

    /// Runs `f` one nesting level deeper, within the nesting limit.
    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        if self.depth >= self.max_nesting {
            return Err(ParseError::new(
                format!(
                    "the expression nests deeper than {} levels",
                    self.max_nesting
                ),
                self.here(),
            )
            .help("split it: compute parts in a `transform` step or another source (or raise `limits.expression_nesting` in config.yaml)"));
        }
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }

    /// Counts one more operator, within the operator limit.
    fn operator(&mut self) -> Result<(), ParseError> {
        self.operators += 1;
        if self.operators > self.max_operators {
            return Err(ParseError::new(
                format!(
                    "the expression has more than {} operators",
                    self.max_operators
                ),
                self.here(),
            )
            .help("split it: compute parts in a `transform` step or another source (or raise `limits.expression_operators` in config.yaml)"));
        }
        Ok(())
    }

    fn peek(&self) -> Option<(&Tok, usize)> {
        self.tokens.get(self.pos).map(|(t, at)| (t, *at))
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some((Tok::Op(o), _)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some((Tok::Ident(w), _)) if w == word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_op(&mut self, op: &str) -> Result<(), ParseError> {
        if self.eat_op(op) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{op}`")))
        }
    }

    fn unexpected(&self, wanted: &str) -> ParseError {
        match self.peek() {
            Some((tok, at)) => {
                ParseError::new(format!("expected {wanted}, found {}", tok.describe()), at)
            }
            None => ParseError::new(format!("expected {wanted}, found the end"), self.end),
        }
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        self.nested(Self::or)
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut lhs = self.and()?;
        while self.eat_word("or") {
            self.operator()?;
            let rhs = self.and()?;
            lhs = Expr::Binary(BinaryOp::Or, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut lhs = self.not()?;
        while self.eat_word("and") {
            self.operator()?;
            let rhs = self.not()?;
            lhs = Expr::Binary(BinaryOp::And, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.eat_word("not") || self.eat_op("!") {
            self.operator()?;
            return Ok(Expr::Not(Box::new(self.nested(Self::not)?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let lhs = self.additive()?;
        let op = match self.peek() {
            Some((Tok::Op(o), _)) => match *o {
                "==" => BinaryOp::Eq,
                "!=" => BinaryOp::Ne,
                "<" => BinaryOp::Lt,
                "<=" => BinaryOp::Le,
                ">" => BinaryOp::Gt,
                ">=" => BinaryOp::Ge,
                _ => return Ok(lhs),
            },
            Some((Tok::Ident(w), _)) if w == "in" => BinaryOp::In,
            _ => return Ok(lhs),
        };
        self.pos += 1;
        self.operator()?;
        let rhs = self.additive()?;
        if let Some((Tok::Op("==" | "!=" | "<" | "<=" | ">" | ">="), at)) = self.peek() {
            return Err(ParseError::new("comparisons cannot be chained", at)
                .help("combine them with `and`"));
        }
        Ok(Expr::Binary(op, Box::new(lhs), Box::new(rhs)))
    }

    fn additive(&mut self) -> Result<Expr, ParseError> {
        let mut lhs = self.multiplicative()?;
        loop {
            let op = if self.eat_op("+") {
                BinaryOp::Add
            } else if self.eat_op("-") {
                BinaryOp::Sub
            } else {
                return Ok(lhs);
            };
            self.operator()?;
            let rhs = self.multiplicative()?;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, ParseError> {
        let mut lhs = self.unary()?;
        loop {
            let op = if self.eat_op("*") {
                BinaryOp::Mul
            } else if self.eat_op("/") {
                BinaryOp::Div
            } else if self.eat_op("%") {
                BinaryOp::Rem
            } else {
                return Ok(lhs);
            };
            self.operator()?;
            let rhs = self.unary()?;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.eat_op("-") {
            self.operator()?;
            return Ok(negate(self.nested(Self::unary)?));
        }
        self.fallback()
    }

    fn fallback(&mut self) -> Result<Expr, ParseError> {
        let first = self.primary()?;
        if !matches!(self.peek(), Some((Tok::Op("||"), _))) {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_op("||") {
            self.operator()?;
            // Operands may be negative literals: `$a.x || -1`.
            let item = if self.eat_op("-") {
                negate(self.primary()?)
            } else {
                self.primary()?
            };
            items.push(item);
        }
        Ok(Expr::Fallback(items))
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let Some((tok, at)) = self.peek() else {
            return Err(self.unexpected("an operand"));
        };
        let tok = tok.clone();
        self.pos += 1;
        match tok {
            Tok::Lit(v) => Ok(Expr::Literal(v)),
            Tok::Ref(r) => Ok(Expr::Ref(r)),
            Tok::Now => Ok(Expr::Call(Function::Now, Vec::new())),
            Tok::Op("(") => {
                let e = self.expr()?;
                self.expect_op(")")?;
                Ok(e)
            }
            Tok::Op("[") => {
                let items = self.list("]")?;
                if items.iter().all(|e| matches!(e, Expr::Literal(_))) {
                    Ok(Expr::Literal(Value::Array(
                        items
                            .into_iter()
                            .map(|e| match e {
                                Expr::Literal(v) => v,
                                _ => unreachable!("checked above"),
                            })
                            .collect(),
                    )))
                } else {
                    Ok(Expr::List(items))
                }
            }
            Tok::Ident(name) => {
                let Some(func) = Function::from_name(&name) else {
                    let mut e = ParseError::new(format!("unknown name `{name}`"), at);
                    e = match crate::diagnostic::did_you_mean(
                        &name,
                        Function::NAMES.iter().copied(),
                    ) {
                        Some(s) => e.help(format!("did you mean `{s}(…)`?")),
                        None if self.eat_op("(") => {
                            e.help(format!("functions are: {}", Function::NAMES.join(", ")))
                        }
                        None => e.help(format!(
                            "references start with `$` (`${name}`); strings are quoted (`'{name}'`)"
                        )),
                    };
                    return Err(e);
                };
                if !self.eat_op("(") {
                    return Err(ParseError::new(format!("`{name}` is a function"), at)
                        .help(format!("call it: `{name}(…)`")));
                }
                let args = self.list(")")?;
                let arity = func.arity();
                if !arity.contains(&args.len()) {
                    let want = if arity.start() == arity.end() {
                        arity.start().to_string()
                    } else {
                        format!("{} to {}", arity.start(), arity.end())
                    };
                    return Err(ParseError::new(
                        format!("`{name}` takes {want} argument(s), found {}", args.len()),
                        at,
                    ));
                }
                Ok(Expr::Call(func, args))
            }
            Tok::Op(op) => Err(ParseError::new(
                format!("expected an operand, found `{op}`"),
                at,
            )),
        }
    }

    fn list(&mut self, close: &str) -> Result<Vec<Expr>, ParseError> {
        let mut items = Vec::new();
        if self.eat_op(close) {
            return Ok(items);
        }
        loop {
            items.push(self.expr()?);
            if self.eat_op(close) {
                return Ok(items);
            }
            if !self.eat_op(",") {
                return Err(self.unexpected(&format!("`,` or `{close}`")));
            }
        }
    }
}
