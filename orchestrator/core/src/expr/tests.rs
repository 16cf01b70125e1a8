use serde_json::{Value, json};

use super::*;
use crate::RequestContext;

struct TestScope {
    request: RequestContext,
    sources: Vec<(&'static str, Value)>,
    item: Option<Value>,
}

impl Scope for TestScope {
    fn request(&self) -> &RequestContext {
        &self.request
    }
    fn source(&self, name: &str) -> Option<&Value> {
        self.sources
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }
    fn item(&self) -> Option<&Value> {
        self.item.as_ref()
    }
}

fn scope() -> TestScope {
    TestScope {
        request: RequestContext::new()
            .with_path_param("customer_id", 42)
            .with_query_param("tag", "a")
            .with_query_param("tag", "b")
            .with_query_param("limit", "10")
            .with_body(json!({"customer_id": 7, "nested": {"x": [1, 2]}, "only_body": true}))
            .with_header("X-Api-Key", "k1"),
        sources: vec![
            (
                "profile",
                json!({"customer_id": 42, "name": "Ada", "score": 710, "tier": null}),
            ),
            (
                "orders",
                json!([{"id": 1, "total": 10.5, "status": "shipped"}, {"id": 2, "total": 4, "status": "open"}, {"id": 3}]),
            ),
            ("count", json!(3)),
        ],
        item: None,
    }
}

fn eval(text: &str) -> Value {
    Expr::parse(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .eval(&scope())
        .into_owned()
}

#[test]
fn request_references() {
    assert_eq!(eval("$request.path_params.customer_id"), json!(42));
    assert_eq!(eval("$request.query_params.limit"), json!("10"));
    assert_eq!(
        eval("$request.query_params.tag"),
        json!(["a", "b"]),
        "repeated keys are kept"
    );
    assert_eq!(eval("$request.body.nested.x[1]"), json!(2));
    assert_eq!(eval("$request.headers.x-api-key"), json!("k1"));
    assert_eq!(
        eval("$request.headers.X-API-KEY"),
        json!("k1"),
        "header names are case-insensitive"
    );
    // Shorthand: path, then query, then body.
    assert_eq!(eval("$request.customer_id"), json!(42));
    assert_eq!(eval("$request.limit"), json!("10"));
    assert_eq!(eval("$request.only_body"), json!(true));
    assert_eq!(eval("$request.missing"), Value::Null);
    assert_eq!(eval("$request.path_params"), json!({"customer_id": 42}));
}

#[test]
fn the_original_services_references() {
    // `$request` alone is the whole request, as the original passed it to a source.
    assert_eq!(
        eval("$request"),
        json!({
            "path_params": {"customer_id": 42},
            "query_params": {"tag": ["a", "b"], "limit": "10"},
            "body": {"customer_id": 7, "nested": {"x": [1, 2]}, "only_body": true},
        })
    );
    let bodiless = TestScope {
        request: RequestContext::new(),
        sources: Vec::new(),
        item: None,
    };
    let whole = Expr::parse("$request").unwrap();
    assert_eq!(
        whole.eval(&bodiless).into_owned(),
        json!({"path_params": {}, "query_params": {}, "body": {}})
    );
    // A numeric segment indexes a list; a colon belongs to a Feast feature name.
    assert_eq!(eval("$orders.1.id"), json!(2));
    let mut s = scope();
    s.sources
        .push(("iris", json!({"iris:sepal_length": 5.1, "iris": {"x": 1}})));
    let x = Expr::parse("$iris.iris:sepal_length").unwrap();
    assert_eq!(x.eval(&s).into_owned(), json!(5.1));
    // `$system.timestamp` is `now()`: RFC 3339 UTC with milliseconds.
    let now = eval("$system.timestamp");
    let text = now.as_str().unwrap();
    assert_eq!(
        (text.len(), &text[10..11], &text[23..]),
        (24, "T", "Z"),
        "{text}"
    );
    assert!(eval("now()").as_str().unwrap().starts_with(&text[..4]));
    // `$systems` is an ordinary source name.
    assert!(Expr::parse("$systems.x").is_ok());
}

#[test]
fn formats_timestamps() {
    use super::eval::rfc3339;
    assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
    assert_eq!(rfc3339(1_796_135_332, 123), "2026-12-01T14:28:52.123Z");
}

#[test]
fn source_references_and_paths() {
    assert_eq!(eval("$profile.name"), json!("Ada"));
    assert_eq!(eval("$profile"), scope().sources[0].1);
    assert_eq!(eval("$orders[0].id"), json!(1));
    assert_eq!(eval("$orders[-1].id"), json!(3));
    assert_eq!(eval("$orders[9].id"), Value::Null);
    assert_eq!(eval("$orders[*].id"), json!([1, 2, 3]));
    assert_eq!(
        eval("$orders[*].status"),
        json!(["shipped", "open"]),
        "projection drops nulls"
    );
    assert_eq!(eval("$profile['name']"), json!("Ada"));
    assert_eq!(
        eval("$profile.name.first"),
        Value::Null,
        "a path into a scalar is null"
    );
    assert_eq!(eval("$nobody.x"), Value::Null);
}

#[test]
fn fallbacks_and_typed_literals() {
    assert_eq!(eval("$profile.tier || 'basic'"), json!("basic"));
    assert_eq!(eval("$profile.missing || $profile.score || 0"), json!(710));
    assert_eq!(eval("$profile.missing || 700"), json!(700));
    assert!(
        eval("$profile.missing || 700").is_i64(),
        "integer literals stay integers"
    );
    assert_eq!(eval("$profile.missing || 0.5"), json!(0.5));
    assert_eq!(eval("$profile.missing || \"x\""), json!("x"));
    assert_eq!(eval("$profile.missing || false"), json!(false));
    assert_eq!(eval("$profile.missing || null"), Value::Null);
    assert_eq!(eval("$profile.missing || -1"), json!(-1));
    // `false` is not null: the fallback keeps it.
    assert_eq!(eval("$request.only_body || 'x'"), json!(true));
}

#[test]
fn operators() {
    assert_eq!(
        eval("$profile.score >= 700 and $profile.name == 'Ada'"),
        json!(true)
    );
    assert_eq!(
        eval("$profile.score < 700 or not $profile.tier"),
        json!(true)
    );
    assert_eq!(eval("!$profile.name"), json!(false));
    assert_eq!(eval("$profile.score + 10"), json!(720));
    assert_eq!(eval("$profile.score / 2"), json!(355));
    assert_eq!(eval("$profile.score / 4"), json!(177.5));
    assert_eq!(eval("7 % 4"), json!(3));
    assert_eq!(eval("$profile.name + '!'"), json!("Ada!"));
    assert_eq!(eval("'open' in $orders[*].status"), json!(true));
    assert_eq!(eval("'d' in $profile.name"), json!(true));
    assert_eq!(eval("1 == 1.0"), json!(true));
    assert_eq!(
        eval("$profile.missing || 0 > 5"),
        json!(false),
        "`||` binds tighter than comparisons"
    );
    assert_eq!(eval("-$profile.score"), json!(-710));
    assert_eq!(eval("(1 + 2) * 3"), json!(9));
    assert_eq!(
        eval("$profile.name * 2"),
        Value::Null,
        "type mismatch gives null"
    );
    assert_eq!(eval("$count / 0"), Value::Null);
}

#[test]
fn functions() {
    assert_eq!(eval("len($orders)"), json!(3));
    assert_eq!(eval("len($profile.name)"), json!(3));
    assert_eq!(eval("upper($profile.name)"), json!("ADA"));
    assert_eq!(eval("round(2.345, 2)"), json!(2.35));
    assert_eq!(eval("round(2.5)"), json!(3));
    assert_eq!(eval("sum($orders[*].total)"), json!(14.5));
    assert_eq!(eval("sum([1, 2, 3])"), json!(6));
    assert_eq!(eval("avg([1, 2])"), json!(1.5));
    assert_eq!(eval("max($orders[*].id)"), json!(3));
    assert_eq!(eval("min(4, 2, 8)"), json!(2));
    assert_eq!(
        eval("if($profile.score > 700, 'good', 'fair')"),
        json!("good")
    );
    assert_eq!(eval("exists($profile.tier)"), json!(false));
    assert_eq!(eval("number('12')"), json!(12));
    assert_eq!(eval("string(12)"), json!("12"));
    assert_eq!(eval("contains($profile, 'name')"), json!(true));
    assert_eq!(eval("starts_with($profile.name, 'A')"), json!(true));
}

#[test]
fn item_references() {
    let mut s = scope();
    s.item = Some(json!({"total": 3}));
    let e = Expr::parse("$item.total * 2").unwrap();
    assert_eq!(e.eval(&s).into_owned(), json!(6));
}

#[test]
fn templates() {
    let t = Template::from_value(&json!({
        "id": "$profile.customer_id",
        "info": {"name": "$profile.name", "static": 1},
        "list": ["$orders[0].id", "lit"],
        "price": "$$5",
        "computed": "$= round($profile.score / 3, 1)",
        "plain": "hello",
        "fixed": {"a": [1, 2]}
    }))
    .unwrap();
    assert!(
        matches!(&t, Template::Object(f) if matches!(f[6].1, Template::Literal(_))),
        "literal subtrees are folded"
    );
    assert_eq!(
        t.eval(&scope()),
        json!({"id": 42, "info": {"name": "Ada", "static": 1}, "list": [1, "lit"], "price": "$5",
               "computed": 236.7, "plain": "hello", "fixed": {"a": [1, 2]}})
    );
    let keys: Vec<String> = t
        .eval(&scope())
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        keys,
        ["id", "info", "list", "price", "computed", "plain", "fixed"],
        "mapping order is kept"
    );
}

#[test]
fn object_templates_built_by_hand() {
    let r = |text: &str| Template::Expr(Expr::parse(text).unwrap());
    // A repeated key keeps its first position and its last value, as inserting would;
    // the fields are merged when built.
    let t = Template::Object(Fields::new(vec![
        ("a".into(), r("$profile.name")),
        ("b".into(), Template::Literal(json!(1))),
        ("a".into(), r("$profile.score")),
    ]));
    let Template::Object(fields) = &t else {
        unreachable!()
    };
    assert_eq!(fields.len(), 2);
    let out = t.eval(&scope());
    assert_eq!(out, json!({"a": 710, "b": 1}));
    assert_eq!(
        out.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["a", "b"]
    );
    // Repeated evaluations do not share state.
    assert_eq!(t.eval(&scope()), out);
}

#[test]
fn lookups_in_small_and_large_objects() {
    // Objects up to a dozen keys are scanned, larger ones hashed: both find the same fields.
    for n in [1, 12, 13, 40] {
        let doc: serde_json::Map<String, Value> =
            (0..n).map(|i| (format!("k{i}"), json!(i))).collect();
        let mut s = scope();
        s.sources.push(("wide", Value::Object(doc)));
        for i in [0, n - 1] {
            let text = format!("$wide.k{i}");
            let v = Expr::parse(&text).unwrap().eval(&s).into_owned();
            assert_eq!(v, json!(i), "{text} with {n} keys");
        }
        let missing = Expr::parse("$wide.absent").unwrap().eval(&s).into_owned();
        assert_eq!(missing, Value::Null, "absent key with {n} keys");
    }
}

#[test]
fn template_errors_carry_paths_and_offsets() {
    let errs = Template::from_value(&json!({"a": {"b": ["ok", "$profile.name +"]}})).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].path,
        [
            PathStep::Key("a".into()),
            PathStep::Key("b".into()),
            PathStep::Index(1)
        ]
    );
    assert_eq!(errs[0].error.offset, 15);
}

#[test]
fn syntax_errors() {
    for (text, needle) in [
        ("$", "expected a source name"),
        ("$system.now", "has one field, `timestamp`"),
        ("$a.", "field name"),
        ("$a[", "expected an index"),
        ("$a[x]", "expected an index"),
        ("$a && $b", "`&&`"),
        ("$a ==", "expected an operand"),
        ("$a == 1 == 2", "chained"),
        ("'open", "unterminated"),
        ("lenn($a)", "unknown name"),
        ("len($a, $b)", "takes 1 argument"),
        ("$a $b", "unexpected reference"),
        ("len", "is a function"),
        ("1.2.3", "invalid number"),
        ("99999999999999999999", "invalid number"),
    ] {
        let err = Expr::parse(text).expect_err(text);
        assert!(
            err.message.contains(needle) || err.help.as_deref().is_some_and(|h| h.contains(needle)),
            "{text}: {err:?}"
        );
    }
    let err = Expr::parse("lenn($a)").unwrap_err();
    assert_eq!(err.help.as_deref(), Some("did you mean `len(…)`?"));
}

#[test]
fn literal_type_errors() {
    let check = |text: &str| {
        let mut found = None;
        Expr::parse(text).unwrap().visit(&mut |e| {
            if let Expr::Binary(op, a, b) = e
                && let (Expr::Literal(l), Expr::Literal(r)) = (&**a, &**b)
            {
                found = found.take().or_else(|| binary_literal_error(*op, l, r));
            }
        });
        found
    };
    assert!(check("'a' * 2").is_some());
    assert!(check("'abc' > 5").is_some());
    assert!(check("1 + 2").is_none());
    assert!(check("'a' + 'b'").is_none());
}
