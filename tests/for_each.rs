//! `for_each`: a source run once per element of a list, with `$item` and `$index`, bounded
//! concurrency (in virtual time, and against a real server that counts what is in flight),
//! identical elements fetched once, per-element `on_error` and conditions, and what the
//! validator says about it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use api_orchestrator::RequestContext;
use api_orchestrator::config::{ConfigFiles, LoadError, Loader};
use api_orchestrator::engine::{ExecuteError, Outcome};
use api_orchestrator::source::{DataSource, SourceCall, SourceError};
use serde_json::{Value, json};
use tests::{builder, ms, orchestrator, plan_from_yaml};
use tokio::time::Instant;

fn body(items: Value) -> RequestContext {
    RequestContext::new().with_body(json!({ "items": items }))
}

/// N elements whose calls take L each, C at once, take ceil(N / C) · L.
#[tokio::test(start_paused = true)]
async fn elements_run_concurrency_at_a_time() {
    for (n, c, rounds) in [(10usize, 3usize, 4u128), (8, 8, 1), (9, 1, 9), (17, 16, 2)] {
        let o = orchestrator(&format!(
            r#"
endpoints:
  each:
    data_sources:
      - name: s
        type: sleep
        for_each: "$request.body.items"
        concurrency: {c}
        params: {{ms: 100, n: "$item", at: "$index"}}
    primary_source: s
"#
        ));
        let items: Vec<Value> = (0..n).map(|i| json!(i * 10)).collect();
        let start = Instant::now();
        let out = o.execute("each", body(json!(items))).await.unwrap();
        assert_eq!(ms(start.elapsed()), 100 * rounds, "n={n} c={c}");
        let got = out.response.as_array().unwrap();
        assert_eq!(got.len(), n);
        for (i, r) in got.iter().enumerate() {
            // In input order, each with its own element and position.
            assert_eq!(
                (r["n"].clone(), r["at"].clone()),
                (json!(i * 10), json!(i)),
                "{r}"
            );
        }
        let t = &out.trace.sources[0];
        assert_eq!((t.outcome, t.attempts as usize), (Outcome::Ok, n), "{t:?}");
        assert_eq!(
            t.notes[0],
            format!("for_each: {n} elements, {n} calls"),
            "{t:?}"
        );
    }
}

/// The default concurrency, and a null or empty list.
#[tokio::test(start_paused = true)]
async fn the_default_concurrency_and_empty_lists() {
    let o = orchestrator(
        r#"
endpoints:
  each:
    data_sources:
      - {name: s, type: sleep, for_each: "$request.body.items", params: {ms: 100, n: "$item"}}
    primary_source: s
"#,
    );
    let items: Vec<Value> = (0..40).map(|i| json!(i)).collect();
    let start = Instant::now();
    o.execute("each", body(json!(items))).await.unwrap();
    let per_round = api_orchestrator::plan::ForEach::DEFAULT_CONCURRENCY as u128;
    assert_eq!(ms(start.elapsed()), 100 * 40_u128.div_ceil(per_round));
    for empty in [json!([]), Value::Null] {
        let start = Instant::now();
        let out = o.execute("each", body(empty)).await.unwrap();
        assert_eq!((out.response.clone(), ms(start.elapsed())), (json!([]), 0));
    }
    let Err(ExecuteError::SourceFailed { error, .. }) =
        o.execute("each", body(json!({"a": 1}))).await
    else {
        panic!("an object is not a list")
    };
    assert!(
        error
            .message
            .contains("`for_each` of `s` gave an object, not a list"),
        "{error:?}"
    );
}

/// Counts its calls; answers its params.
#[derive(Debug, Default)]
struct Counting(Arc<AtomicUsize>);

#[async_trait::async_trait]
impl DataSource for Counting {
    async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Value::Object(call.params.clone()))
    }
}

#[tokio::test]
async fn identical_elements_are_fetched_once_and_conditions_apply_per_element() {
    let calls = Arc::new(AtomicUsize::new(0));
    let plan = tests::plan_with_types(
        r#"
endpoints:
  each:
    data_sources:
      - name: s
        type: counting
        for_each: "$request.body.items"
        condition: "$item != 3"
        params: {id: "$item"}
    primary_source: s
"#,
        &["counting"],
    );
    let o = builder()
        .register("counting", Counting(calls.clone()))
        .build(plan)
        .unwrap();
    let out = o
        .execute("each", body(json!([1, 2, 1, 3, 2, 1])))
        .await
        .unwrap();
    assert_eq!(
        out.response,
        json!([{"id": 1}, {"id": 2}, {"id": 1}, null, {"id": 2}, {"id": 1}])
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2, "1 and 2, once each");
    assert_eq!(
        out.trace.sources[0].notes[0],
        "for_each: 6 elements, 2 calls, 1 skipped by the condition, 3 sharing another element's call"
    );
}

/// A condition that does not read the element is judged once: false skips the whole source.
#[tokio::test]
async fn a_condition_without_the_element_skips_the_source() {
    let o = orchestrator(
        r#"
endpoints:
  each:
    data_sources:
      - {name: s, type: fixture, operation: profile, for_each: "$request.body.items", condition: "$request.body.go", params: {echo: "$item"}}
    response_mapping: {s: "$s"}
"#,
    );
    let out = o
        .execute(
            "each",
            RequestContext::new().with_body(json!({"items": [1], "go": false})),
        )
        .await
        .unwrap();
    assert_eq!(out.response, json!({"s": null}));
    assert_eq!(out.trace.sources[0].outcome, Outcome::Skipped);
}

/// Per-element failures follow `on_error`: `skip` leaves the element null, `default` puts the
/// default there, `fail` fails the request naming the element.
#[tokio::test(start_paused = true)]
async fn failures_follow_on_error_per_element() {
    let yaml = |on_error: &str| {
        format!(
            r#"
endpoints:
  each:
    data_sources:
      - name: s
        type: flaky
        for_each: "$request.body.items"
        params: {{failures: "$item", n: "$index"}}
        {on_error}
    primary_source: s
"#
        )
    };
    // `failures: 0` answers at once; `failures: 9` always fails.
    let items = json!([0, 9, 0, 9, 0]);
    let o = orchestrator(&yaml("on_error: skip"));
    let out = o.execute("each", body(items.clone())).await.unwrap();
    assert_eq!(
        out.response,
        json!([{"attempt": 1}, null, {"attempt": 1}, null, {"attempt": 1}])
    );
    let t = &out.trace.sources[0];
    assert_eq!(t.outcome, Outcome::Partial);
    assert_eq!(t.degraded(), Some("partial"));
    assert_eq!(
        t.notes[0],
        "for_each: 5 elements, 5 calls, 2 failed and skipped"
    );
    assert!(
        t.notes
            .iter()
            .any(|n| n.starts_with("[1] skip (unavailable)")),
        "{t:?}"
    );

    let o = orchestrator(&yaml("on_error: default\n        default: {attempt: 0}"));
    let out = o.execute("each", body(items.clone())).await.unwrap();
    assert_eq!(
        out.response,
        json!([{"attempt": 1}, {"attempt": 0}, {"attempt": 1}, {"attempt": 0}, {"attempt": 1}])
    );

    let o = orchestrator(&yaml(""));
    let Err(ExecuteError::SourceFailed { error, .. }) = o.execute("each", body(items)).await else {
        panic!("an element that fails with `on_error: fail` fails the request")
    };
    assert!(error.message.starts_with("element 1: "), "{error:?}");
}

/// Above `ForEach::ITEM_NOTES_UP_TO` elements the trace has the counts only.
#[tokio::test]
async fn many_elements_are_counted_not_listed() {
    let o = orchestrator(
        r#"
endpoints:
  each:
    data_sources:
      - {name: s, type: flaky, for_each: "$request.body.items", params: {failures: "$item", n: "$index"}, on_error: skip}
    primary_source: s
"#,
    );
    let items: Vec<Value> = (0..50)
        .map(|i| json!(if i % 10 == 0 { 9 } else { 0 }))
        .collect();
    let out = o.execute("each", body(json!(items))).await.unwrap();
    let t = &out.trace.sources[0];
    assert_eq!(
        t.notes,
        ["for_each: 50 elements, 50 calls, 5 failed and skipped"],
        "{t:?}"
    );
    assert_eq!(
        out.response
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v.is_null())
            .count(),
        5
    );
}

/// An API operation per element with `concurrency: 8`: the server never has more than 8
/// of them in flight (it counts), and every element gets its own answer, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_per_element_never_has_more_than_concurrency_in_flight() {
    let upstream = tests::upstream::Upstream::start().await;
    let dir = tests::config_dir(&[
        (
            "integrations/api_sources.yaml",
            &format!(
                r#"
api:
  sources:
    items:
      base_url: "{}"
      max_concurrent: 64
      operations:
        get_item: {{path: "/slow", query: {{ms: 20, id: "{{id}}"}}}}
"#,
                upstream.url()
            ),
        ),
        (
            "domains/shop.yaml",
            r#"
endpoints:
  details:
    data_sources:
      - {name: detail, type: api, operation: get_item, for_each: "$request.body.items", concurrency: 8, params: {id: "$item"}}
    response_mapping: {targets: "$detail[*].target"}
"#,
        ),
    ]);
    let o = api_orchestrator::Orchestrator::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let items: Vec<Value> = (0..64).map(|i| json!(i)).collect();
    let out = o
        .execute("details", body(json!(items)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let targets = out.response["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 64);
    for (i, t) in targets.iter().enumerate() {
        assert_eq!(t, &json!(format!("/slow?id={i}&ms=20")));
    }
    assert_eq!(upstream.calls("/slow"), 64);
    let most = upstream.max_in_flight();
    assert!(most <= 8, "{most} calls were in flight at once");
    assert!(most > 1, "the calls ran concurrently: {most}");
}

fn load(domain: &str) -> Result<api_orchestrator::ValidPlan, String> {
    Loader::new()
        .with_source_type("sleep")
        .load(&ConfigFiles::new().with_file("domains/test.yaml", domain))
        .map_err(|e| match e {
            LoadError::Invalid(d) => d.to_string(),
            other => other.to_string(),
        })
}

#[test]
fn the_validator_knows_where_item_and_index_exist() {
    let bad = load(
        r#"
endpoints:
  e:
    data_sources:
      - {name: a, type: sleep, params: {x: "$item", i: "$index"}}
      - {name: b, type: sleep, for_each: "$item.list", params: {x: "$item"}}
      - {name: c, type: sleep, concurrency: 4}
      - {name: d, type: sleep, for_each: "$d", concurrency: 0}
      - {name: f, type: sleep, for_each: "$request.body.ids", batch: {size: 10}}
      - {name: g, type: sleep, batch: {size: 10}}
    response_mapping: {a: "$a", b: "$b", c: "$c", d: "$d", f: "$f", g: "$g"}
"#,
    )
    .unwrap_err();
    for expected in [
        "error[not-yet-available]: `$item` only exists inside a `transform` step or a `for_each` source\n --> domains/test.yaml:5:44",
        "error[not-yet-available]: `$index` only exists inside a `for_each` source\n --> domains/test.yaml:5:56",
        "--> domains/test.yaml:6:42",
        "`for_each` makes the elements `$item`",
        "error[invalid-value]: `concurrency` goes with `for_each`",
        "error[invalid-value]: `concurrency: 0` would never call the source",
        "error[not-yet-available]: the `for_each` list of `d` refers to its own result",
        "error[invalid-value]: a `sleep` source cannot take several elements in one call",
        "`batch` works with `feast` sources (several entities per lookup) and `ml` sources",
        "error[invalid-value]: `batch` goes with `for_each`",
    ] {
        assert!(bad.contains(expected), "missing {expected:?} in:\n{bad}");
    }
    assert_eq!(bad.matches("error[").count(), 8, "{bad}");
    // The list's sources run first.
    let plan = plan_from_yaml(
        r#"
endpoints:
  e:
    data_sources:
      - {name: each, type: sleep, for_each: "$list.items", params: {x: "$item"}}
      - {name: list, type: sleep}
    primary_source: each
"#,
    );
    assert_eq!(plan.endpoints[0].dependencies(), [vec![1], vec![]]);
}
