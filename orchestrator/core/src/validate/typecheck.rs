//! The checks that need the schema snapshot: references into a source's result, operator
//! operand types and model input types, judged by what the sources really return.

use crate::diagnostic::{Code, Diagnostic, KeyPath, suggest};
use crate::expr::{Expr, RequestPart, Root, Segment, Template};
use crate::plan::{Endpoint, InputField, InputType, SourceStep, Transform};
use crate::snapshot::ValueType;
use crate::types::Ty;

use super::Validator;

/// Why a path cannot resolve in a type.
struct PathError {
    code: Code,
    message: String,
    help: String,
}

/// `$name.a[0]['odd key']` as written.
fn shown(name: &str, segs: &[Segment]) -> String {
    let mut s = format!("${name}");
    for seg in segs {
        match seg {
            Segment::Field(f) if crate::expr::is_identifier(f) => {
                s.push('.');
                s.push_str(f);
            }
            Segment::Field(f) => s.push_str(&format!("['{f}']")),
            Segment::Index(i) => s.push_str(&format!("[{i}]")),
            Segment::All => s.push_str("[*]"),
        }
    }
    s
}

/// The type at `segs` inside a value of type `t` (the result of source `name`), or why no
/// value of that type has it. A missing field of an open object, or anything inside
/// [`Ty::Any`], is [`Ty::Any`]; passing through a nullable value or an index makes the result
/// nullable; `[*]` projects the rest over the elements.
fn walk(t: &Ty, name: &str, segs: &[Segment], from: usize) -> Result<Ty, PathError> {
    let mut t = t.clone();
    let mut nullable = false;
    for (i, seg) in segs.iter().enumerate().skip(from) {
        nullable |= t.is_nullable();
        let at = shown(name, &segs[..i]);
        let inner = t.non_null().clone();
        t = match (seg, inner) {
            (_, Ty::Any) => return Ok(Ty::Any),
            (_, Ty::Null) => return Ok(Ty::Null),
            (Segment::Field(f), Ty::Object { fields, open }) => {
                match fields.iter().find(|(k, _)| k == f) {
                    Some((_, ft)) => ft.clone(),
                    None if open => return Ok(Ty::Any),
                    None => {
                        return Err(PathError {
                            code: Code::UnknownField,
                            message: format!("`{at}` has no field `{f}`"),
                            help: suggest(
                                f,
                                fields.iter().map(|(k, _)| k.as_str()),
                                "its fields are",
                            )
                            .unwrap_or_else(|| format!("`{at}` has no fields")),
                        });
                    }
                }
            }
            (Segment::Field(f), list @ (Ty::Array(_) | Ty::Tuple(_))) => {
                return Err(PathError {
                    code: Code::ImpossiblePath,
                    message: format!("`{at}` is {}, which has no field `{f}`", list.describe()),
                    help: format!("pick an element (`{at}[0].{f}`) or project (`{at}[*].{f}`)"),
                });
            }
            (Segment::Field(f), scalar) => {
                return Err(PathError {
                    code: Code::ImpossiblePath,
                    message: format!("`{at}` is {}, which has no field `{f}`", scalar.describe()),
                    help: format!("refer to `{at}` as a whole"),
                });
            }
            (Segment::Index(_), Ty::Array(item)) => {
                nullable = true;
                *item
            }
            (Segment::Index(n), Ty::Tuple(items)) => {
                let at = if *n < 0 { items.len() as i64 + n } else { *n };
                usize::try_from(at)
                    .ok()
                    .and_then(|k| items.get(k).cloned())
                    .unwrap_or(Ty::Null)
            }
            (Segment::All, Ty::Array(item)) => {
                let rest = walk(&item, name, segs, i + 1)?;
                // A projection drops the elements that gave null.
                return Ok(Ty::Array(Box::new(rest.non_null().clone())));
            }
            (Segment::All, Ty::Tuple(items)) => {
                let item = items.into_iter().reduce(Ty::union).unwrap_or(Ty::Any);
                let rest = walk(&item, name, segs, i + 1)?;
                return Ok(Ty::Array(Box::new(rest.non_null().clone())));
            }
            (Segment::Index(_) | Segment::All, other) => {
                let help = match other {
                    Ty::Object { .. } => format!("use a field: `{at}.field`"),
                    _ => format!("refer to `{at}` as a whole"),
                };
                return Err(PathError {
                    code: Code::ImpossiblePath,
                    message: format!("`{at}` is {}, not a list", other.describe()),
                    help,
                });
            }
        };
    }
    Ok(if nullable { t.or_null() } else { t })
}

fn input_type(f: &InputField) -> Ty {
    let t = match f.ty {
        InputType::String => Ty::String,
        InputType::Integer => Ty::Integer,
        InputType::Number => Ty::Number,
        InputType::Boolean => Ty::Boolean,
        InputType::Object => Ty::Any,
        InputType::Array => Ty::Array(Box::new(Ty::Any)),
    };
    if f.required { t } else { t.or_null() }
}

/// Types of an endpoint's sources and inputs, for inferring the type of its expressions.
pub(crate) struct Env<'a> {
    plan: &'a crate::plan::Plan,
    endpoint: &'a Endpoint,
    /// `$item` inside a transform step.
    item: Option<Ty>,
}

/// `f` applied to an object, or to each element of a list (as record steps apply).
fn per_record(t: Ty, f: &dyn Fn(Ty) -> Ty) -> Ty {
    match t {
        Ty::Nullable(inner) => per_record(*inner, f).or_null(),
        Ty::Array(item) => Ty::Array(Box::new(f(*item))),
        t @ Ty::Object { .. } => f(t),
        other => other,
    }
}

/// The fields of an object type, or `None` for other types.
fn fields_of(t: Ty) -> Option<(Vec<(String, Ty)>, bool)> {
    match t {
        Ty::Object { fields, open } => Some((fields, open)),
        _ => None,
    }
}

impl<'a> Env<'a> {
    pub(crate) fn new(plan: &'a crate::plan::Plan, endpoint: &'a Endpoint) -> Self {
        Self {
            plan,
            endpoint,
            item: None,
        }
    }

    fn with_item(&self, item: Ty) -> Self {
        Self {
            plan: self.plan,
            endpoint: self.endpoint,
            item: Some(item),
        }
    }

    /// The type of a source's result by the snapshot, its `transform:` steps applied.
    pub(crate) fn source(&self, name: &str) -> Option<Ty> {
        let s = self.endpoint.source(name)?;
        let raw = self
            .plan
            .snapshot
            .as_deref()?
            .step_type(self.plan, self.endpoint, s)?;
        // A `for_each` source's result is the list of its per-element results.
        let raw = if s.for_each.is_some() {
            Ty::Array(Box::new(raw))
        } else {
            raw
        };
        Some(
            s.transform
                .iter()
                .fold(raw, |t, step| self.transformed(t, step)),
        )
    }

    /// The type of a `for_each` source's elements (`$item` in its params and condition),
    /// when the list's type is known.
    pub(crate) fn element(&self, s: &SourceStep) -> Option<Ty> {
        let t = match self.infer(&s.for_each.as_ref()?.items).non_null() {
            Ty::Array(t) => t.as_ref().clone(),
            Ty::Tuple(items) => items.iter().cloned().reduce(Ty::union)?,
            _ => return None,
        };
        (!t.is_any()).then_some(t)
    }

    /// This environment for the params of `s`: with its element as `$item` when it runs
    /// per element.
    fn for_params(&self, s: &SourceStep) -> Self {
        match self.element(s) {
            Some(t) => self.with_item(t),
            None => Self::new(self.plan, self.endpoint),
        }
    }

    /// The record type each of a source's transform steps sees as `$item`, step by step
    /// (`None` for steps that have no `$item`, and all of them when the result is unknown).
    fn items(&self, s: &SourceStep) -> Vec<Option<Ty>> {
        let Some(mut t) = self
            .plan
            .snapshot
            .as_deref()
            .and_then(|snap| snap.step_type(self.plan, self.endpoint, s))
        else {
            return vec![None; s.transform.len()];
        };
        let mut out = Vec::with_capacity(s.transform.len());
        for step in &s.transform {
            let record = match t.non_null() {
                Ty::Array(item) => Some(item.as_ref().clone()),
                Ty::Any => None,
                other => Some(other.clone()),
            };
            out.push(match step {
                Transform::Compute(_)
                | Transform::Filter(_)
                | Transform::Map(_)
                | Transform::Sort { .. }
                | Transform::GroupBy(_) => record,
                _ => None,
            });
            t = self.transformed(t, step);
        }
        out
    }

    /// The type after one transform step.
    fn transformed(&self, t: Ty, step: &Transform) -> Ty {
        match step {
            Transform::Filter(_) | Transform::Sort { .. } | Transform::Limit(_) => t,
            // Keys are data: nothing is known of them.
            Transform::GroupBy(_) => Ty::Any,
            Transform::Join { with, into, .. } => {
                let matched = match self.infer(with).non_null() {
                    Ty::Array(item) => item.as_ref().clone(),
                    _ => Ty::Any,
                }
                .or_null();
                per_record(t, &|r| match fields_of(r) {
                    Some((mut fields, open)) => {
                        fields.retain(|(k, _)| k != into);
                        fields.push((into.clone(), matched.clone()));
                        Ty::Object { fields, open }
                    }
                    None => Ty::Any,
                })
            }
            Transform::Flatten => match t.non_null() {
                Ty::Array(item) => match item.non_null() {
                    Ty::Array(inner) => Ty::Array(inner.clone()),
                    Ty::Tuple(items) => Ty::Array(Box::new(
                        items.iter().cloned().reduce(Ty::union).unwrap_or(Ty::Any),
                    )),
                    _ => Ty::Any,
                },
                _ => t,
            },
            Transform::Map(template) => match t {
                Ty::Nullable(inner) => self.transformed(*inner, step).or_null(),
                Ty::Array(item) => Ty::Array(Box::new(self.with_item(*item).template(template))),
                Ty::Any => Ty::Any,
                other => self.with_item(other).template(template),
            },
            Transform::Select(keep) => per_record(t, &|r| match fields_of(r) {
                Some((fields, _)) => Ty::object(
                    fields
                        .into_iter()
                        .filter(|(k, _)| keep.contains(k))
                        .collect(),
                ),
                None => Ty::Any,
            }),
            Transform::Rename(pairs) => per_record(t, &|r| match fields_of(r) {
                Some((fields, open)) => Ty::Object {
                    fields: fields
                        .into_iter()
                        .map(|(k, v)| match pairs.iter().find(|(old, _)| *old == k) {
                            Some((_, new)) => (new.clone(), v),
                            None => (k, v),
                        })
                        .collect(),
                    open,
                },
                None => Ty::Any,
            }),
            Transform::Defaults(pairs) => per_record(t, &|r| match fields_of(r) {
                Some((mut fields, open)) => {
                    for (k, v) in pairs {
                        let d = Ty::of_value(v);
                        match fields.iter_mut().find(|(n, _)| n == k) {
                            Some((_, ft)) if !v.is_null() => {
                                *ft = ft.non_null().clone().union(d);
                            }
                            Some(_) => {}
                            None => fields.push((k.clone(), d)),
                        }
                    }
                    Ty::Object { fields, open }
                }
                None => Ty::Any,
            }),
            Transform::Compute(computed) => per_record(t, &|r| {
                let env = self.with_item(r.clone());
                match fields_of(r) {
                    Some((mut fields, open)) => {
                        for (k, template) in computed {
                            let v = env.template(template);
                            match fields.iter_mut().find(|(n, _)| n == k) {
                                Some((_, ft)) => *ft = v,
                                None => fields.push((k.clone(), v)),
                            }
                        }
                        Ty::Object { fields, open }
                    }
                    None => Ty::Any,
                }
            }),
        }
    }

    fn request(&self, part: RequestPart, segs: &[Segment]) -> Ty {
        let Some(Segment::Field(name)) = segs.first() else {
            return Ty::Any;
        };
        let input = &self.endpoint.input;
        let find = |fields: &'a [InputField]| fields.iter().find(|f| f.name == *name);
        let field = match part {
            RequestPart::PathParams => find(&input.path),
            RequestPart::QueryParams => find(&input.query),
            RequestPart::Body => find(&input.body),
            RequestPart::Any => find(&input.path)
                .or_else(|| find(&input.query))
                .or_else(|| find(&input.body)),
            RequestPart::Headers => return Ty::String.or_null(),
            _ => None,
        };
        match field {
            Some(f) if segs.len() == 1 => input_type(f),
            _ => Ty::Any,
        }
    }

    /// The type of an expression's value.
    pub(crate) fn infer(&self, x: &Expr) -> Ty {
        match x {
            Expr::Literal(v) => Ty::of_value(v),
            Expr::Ref(r) => match &r.root {
                Root::Source(name) => self
                    .source(name)
                    .and_then(|t| walk(&t, name, &r.path, 0).ok())
                    .unwrap_or(Ty::Any),
                Root::Request(part) => self.request(*part, &r.path),
                Root::Item => self
                    .item
                    .as_ref()
                    .and_then(|t| walk(t, "item", &r.path, 0).ok())
                    .unwrap_or(Ty::Any),
                Root::Index if r.path.is_empty() && self.item.is_some() => Ty::Integer,
                Root::Index => Ty::Any,
            },
            Expr::Fallback(items) => {
                let mut out: Option<Ty> = None;
                for item in items {
                    let t = self.infer(item);
                    let last = !t.is_nullable();
                    out = Some(match out {
                        None => t,
                        Some(acc) => acc.non_null().clone().union(t),
                    });
                    if last {
                        break;
                    }
                }
                out.unwrap_or(Ty::Null)
            }
            Expr::Not(_) => Ty::Boolean,
            Expr::Neg(a) => match self.infer(a).non_null() {
                Ty::Integer => Ty::Integer.or_null(),
                Ty::Number => Ty::Number.or_null(),
                Ty::Any => Ty::Any,
                _ => Ty::Null,
            },
            Expr::Binary(op, a, b) => Ty::binary(*op, &self.infer(a), &self.infer(b)),
            Expr::Call(f, args) => {
                let args: Vec<Ty> = args.iter().map(|a| self.infer(a)).collect();
                Ty::call(*f, &args)
            }
            Expr::List(items) => Ty::Tuple(items.iter().map(|i| self.infer(i)).collect()),
        }
    }

    /// The type of a template's value (a response mapping, a source's params).
    pub(crate) fn template(&self, t: &Template) -> Ty {
        match t {
            Template::Literal(v) => literal(v),
            Template::Expr(x) => self.infer(x),
            Template::Object(fields) => Ty::object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), self.template(v)))
                    .collect(),
            ),
            Template::Array(items) => Ty::Tuple(items.iter().map(|i| self.template(i)).collect()),
        }
    }
}

/// A literal's type, its lists kept position by position.
fn literal(v: &serde_json::Value) -> Ty {
    match v {
        serde_json::Value::Array(items) => Ty::Tuple(items.iter().map(literal).collect()),
        serde_json::Value::Object(m) => {
            Ty::object(m.iter().map(|(k, v)| (k.clone(), literal(v))).collect())
        }
        v => Ty::of_value(v),
    }
}

impl Validator<'_> {
    /// Checks a reference's path against its source's recorded type; returns whether the
    /// snapshot knows the source (then the untyped shape check is not needed).
    pub(super) fn typed_path(
        &mut self,
        e: &Endpoint,
        name: &str,
        segs: &[Segment],
        path: &KeyPath,
    ) -> bool {
        let Some(t) = Env::new(self.plan, e).source(name) else {
            return false;
        };
        if let Err(err) = walk(&t, name, segs, 0) {
            self.report(
                Diagnostic::new(err.code, path.clone(), err.message).with_help(format!(
                    "{} (by {})",
                    err.help,
                    crate::snapshot::SNAPSHOT_FILE
                )),
            );
        }
        true
    }

    /// `$item` paths in a source's transform steps against the record each step sees.
    pub(super) fn transform_items(&mut self, e: &Endpoint, s: &SourceStep, sp: &KeyPath) {
        if self.plan.snapshot.is_none() || s.transform.is_empty() {
            return;
        }
        let items = Env::new(self.plan, e).items(s);
        let mut found = Vec::new();
        for (j, (step, item)) in s.transform.iter().zip(items).enumerate() {
            let Some(item) = item else { continue };
            let tp = sp.key("transform").index(j).key(step.key());
            let mut exprs: Vec<(KeyPath, Expr)> = Vec::new();
            let mut from_template = |t: &Template, at: &KeyPath| {
                t.visit_exprs(&mut Vec::new(), &mut |steps, x| {
                    exprs.push((at.join(steps), x.clone()))
                });
            };
            match step {
                Transform::Compute(fields) => {
                    for (k, t) in fields {
                        from_template(t, &tp.key(k));
                    }
                }
                Transform::Map(t) => from_template(t, &tp),
                Transform::Filter(x) | Transform::GroupBy(x) => exprs.push((tp.clone(), x.clone())),
                Transform::Sort { by, .. } => exprs.push((tp.key("by"), by.clone())),
                _ => {}
            }
            for (at, x) in exprs {
                x.visit_references(&mut |r| {
                    if r.root == Root::Item
                        && let Err(err) = walk(&item, "item", &r.path, 0)
                    {
                        found.push((at.clone(), err));
                    }
                });
                // Operands read from `$item` have its type here only.
                let env = Env::new(self.plan, e).with_item(item.clone());
                self.operands_in(&env, &x, &at);
            }
        }
        for (at, err) in found {
            self.report(
                Diagnostic::new(err.code, at, err.message).with_help(format!(
                    "{} (by {})",
                    err.help,
                    crate::snapshot::SNAPSHOT_FILE
                )),
            );
        }
    }

    /// `$item` paths and operands in a `for_each` source's params and condition, against the
    /// type of the list's elements.
    pub(super) fn for_each_items(&mut self, e: &Endpoint, s: &SourceStep, sp: &KeyPath) {
        if self.plan.snapshot.is_none() || s.for_each.is_none() {
            return;
        }
        let env = Env::new(self.plan, e);
        let Some(item) = env.element(s) else { return };
        let mut exprs: Vec<(KeyPath, Expr)> = Vec::new();
        for (k, t) in &s.params {
            let at = sp.key("params").key(k);
            t.visit_exprs(&mut Vec::new(), &mut |steps, x| {
                exprs.push((at.join(steps), x.clone()))
            });
        }
        if let Some(c) = &s.condition {
            exprs.push((sp.key("condition"), c.clone()));
        }
        let env = env.with_item(item.clone());
        for (at, x) in exprs {
            let mut found = Vec::new();
            x.visit_references(&mut |r| {
                if r.root == Root::Item
                    && let Err(err) = walk(&item, "item", &r.path, 0)
                {
                    found.push(err);
                }
            });
            for err in found {
                self.report(
                    Diagnostic::new(err.code, at.clone(), err.message).with_help(format!(
                        "{} (by {})",
                        err.help,
                        crate::snapshot::SNAPSHOT_FILE
                    )),
                );
            }
            self.operands_in(&env, &x, &at);
        }
    }

    /// Operators whose operands' types, by the snapshot, cannot work together.
    pub(super) fn operand_types(&mut self, e: &Endpoint, x: &Expr, path: &KeyPath) {
        if self.plan.snapshot.is_none() {
            return;
        }
        self.operands_in(&Env::new(self.plan, e), x, path);
    }

    fn operands_in(&mut self, env: &Env<'_>, x: &Expr, path: &KeyPath) {
        let mut found = Vec::new();
        x.visit(&mut |sub| {
            let Expr::Binary(op, a, b) = sub else { return };
            // Two literals are the literal check's.
            if matches!((&**a, &**b), (Expr::Literal(_), Expr::Literal(_))) {
                return;
            }
            if let Some(m) = crate::types::Ty::binary_mismatch(*op, &env.infer(a), &env.infer(b)) {
                found.push(m);
            }
        });
        for m in found {
            self.report(
                Diagnostic::new(Code::TypeMismatch, path.clone(), m).with_help(format!(
                    "compare numbers with numbers and strings with strings (`number(…)` and `string(…)` convert); the types are from {}",
                    crate::snapshot::SNAPSHOT_FILE
                )),
            );
        }
    }

    /// A model's inputs fed from values of a type its input tensor does not take.
    pub(super) fn model_inputs(&mut self, e: &Endpoint, s: &SourceStep, sp: &KeyPath) {
        let Some(snapshot) = self.plan.snapshot.as_deref() else {
            return;
        };
        let integrations = self.plan.integrations_for(e);
        let Some(op) = s.operation.as_deref() else {
            return;
        };
        let Some(service) = integrations.service_of("ml", Some(op), s.source_id.as_deref()) else {
            return;
        };
        let Some(model) = integrations
            .ml
            .sources
            .get(service.id)
            .and_then(|m| m.models.get(op))
        else {
            return;
        };
        let Some(datatype) = snapshot
            .sources_for(self.plan, e)
            .and_then(|r| r.ml.get(&format!("{}/{op}", service.id)))
            .and_then(|sig| sig.input_datatype(model))
        else {
            return;
        };
        let wanted = ValueType::of_datatype(datatype);
        let env = Env::new(self.plan, e).for_params(s);
        let mut bad = Vec::new();
        for (key, t) in &s.params {
            if !model.inputs.iter().any(|i| i == key) {
                continue;
            }
            let got = env.template(t);
            let fits = matches!(
                (wanted, got.non_null()),
                (_, Ty::Any | Ty::Null)
                    | (ValueType::Integer, Ty::Integer | Ty::Boolean)
                    | (ValueType::Number, Ty::Integer | Ty::Number | Ty::Boolean)
                    | (ValueType::Boolean, Ty::Boolean | Ty::Integer)
                    | (
                        ValueType::String,
                        Ty::String | Ty::Integer | Ty::Number | Ty::Boolean
                    )
                    | (ValueType::Json | ValueType::Unknown, _)
            );
            if !fits {
                bad.push((key.clone(), got.non_null().describe()));
            }
        }
        for (key, got) in bad {
            self.report(
                Diagnostic::new(
                    Code::TypeMismatch,
                    sp.key("params").key(&key),
                    format!(
                        "model `{op}` takes `{key}` into its {datatype} input tensor, but it is fed {got}"
                    ),
                )
                .with_help(format!(
                    "feed it a numeric field, or convert it (`$= number(…)`, a cast in the query); the types are from {}",
                    crate::snapshot::SNAPSHOT_FILE
                )),
            );
        }
    }
}
