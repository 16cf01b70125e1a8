//! Engine behaviour: concurrency in virtual time, error policies, retries, timeouts, mapping
//! semantics and transforms.

use api_orchestrator::RequestContext;
use api_orchestrator::engine::{ExecuteError, Outcome};
use api_orchestrator::source::SourceErrorKind;
use serde_json::{Value, json};
use tests::{ms, orchestrator};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn independent_sources_run_concurrently() {
    let o = orchestrator(
        r#"
endpoints:
  fan_out:
    data_sources:
      - {name: a, type: sleep}
      - {name: b, type: sleep}
      - {name: c, type: sleep}
    response_mapping: {a: "$a.finished_ms", b: "$b.finished_ms", c: "$c.finished_ms"}
"#,
    );
    let start = Instant::now();
    let out = o.execute("fan_out", RequestContext::new()).await.unwrap();
    assert_eq!(ms(start.elapsed()), 200);
    assert_eq!(out.response, json!({"a": 200, "b": 200, "c": 200}));
    for s in &out.trace.sources {
        assert_eq!(
            (ms(s.start), ms(s.duration), s.attempts, s.outcome),
            (0, 200, 1, Outcome::Ok),
            "{s:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_chain_runs_in_sequence() {
    let o = orchestrator(
        r#"
endpoints:
  chain:
    data_sources:
      - {name: a, type: sleep}
      - {name: b, type: sleep, params: {after: "$a.finished_ms"}}
    primary_source: b
"#,
    );
    let start = Instant::now();
    let out = o.execute("chain", RequestContext::new()).await.unwrap();
    assert_eq!(ms(start.elapsed()), 400);
    assert_eq!(out.response, json!({"after": 200, "finished_ms": 400}));
    assert_eq!(ms(out.trace.sources[1].start), 200);
}

#[tokio::test(start_paused = true)]
async fn a_diamond_takes_its_critical_path() {
    let o = orchestrator(
        r#"
endpoints:
  diamond:
    data_sources:
      - {name: d, type: sleep, params: {b: "$b.finished_ms", c: "$c.finished_ms"}}
      - {name: b, type: sleep, params: {a: "$a.finished_ms"}}
      - {name: c, type: sleep, params: {a: "$a.finished_ms"}}
      - {name: a, type: sleep}
    primary_source: d
"#,
    );
    let start = Instant::now();
    let out = o.execute("diamond", RequestContext::new()).await.unwrap();
    assert_eq!(ms(start.elapsed()), 600);
    assert_eq!(
        out.response,
        json!({"b": 400, "c": 400, "finished_ms": 600})
    );
    let starts: Vec<u128> = out.trace.sources.iter().map(|s| ms(s.start)).collect();
    assert_eq!(
        starts,
        [400, 200, 200, 0],
        "trace entries follow declaration order"
    );
}

#[tokio::test(start_paused = true)]
async fn depends_on_orders_sources_without_data() {
    let o = orchestrator(
        r#"
endpoints:
  ordered:
    data_sources:
      - {name: a, type: sleep}
      - {name: b, type: sleep, depends_on: a}
    response_mapping: {b: "$b.finished_ms"}
"#,
    );
    let out = o.execute("ordered", RequestContext::new()).await.unwrap();
    assert_eq!(out.response, json!({"b": 400}));
}

const FAILING: &str = r#"
endpoints:
  failing:
    data_sources:
      - {name: slow, type: sleep, params: {ms: 1000}}
      - {name: broken, type: flaky, params: {kind: rejected}}
      - {name: after, type: sleep, params: {x: "$broken.attempt"}}
    response_mapping: {slow: "$slow.finished_ms"}
"#;

#[tokio::test(start_paused = true)]
async fn a_failing_required_source_fails_the_execution() {
    let o = orchestrator(FAILING);
    let start = Instant::now();
    let err = o
        .execute("failing", RequestContext::new().with_request_id("r-1"))
        .await
        .unwrap_err();
    assert_eq!(
        ms(start.elapsed()),
        0,
        "siblings are cancelled, not awaited"
    );
    let ExecuteError::SourceFailed {
        source_name,
        error,
        trace,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(source_name, "broken");
    assert_eq!(error.kind, SourceErrorKind::Rejected);
    assert!(err.to_string().contains("source `broken` failed"), "{err}");
    assert_eq!(trace.request_id, "r-1");
    let outcomes: Vec<Outcome> = trace.sources.iter().map(|s| s.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Cancelled, Outcome::Failed, Outcome::NotRun]
    );
    assert_eq!(
        trace.sources[1].error.as_ref().unwrap().message,
        "attempt 1 refused"
    );
}

#[tokio::test(start_paused = true)]
async fn skip_and_default_give_partial_results() {
    let o = orchestrator(
        r#"
endpoints:
  partial:
    data_sources:
      - {name: profile, type: fixture, operation: profile}
      - {name: score, type: flaky, on_error: skip}
      - {name: features, type: flaky, on_error: default, default: {customer_lifetime_value: 0}}
      - {name: uses_skipped, type: sleep, params: {ms: 1, seen: "$score.attempt || 'none'"}}
    response_mapping:
      name: "$profile.name"
      score: "$score.attempt"
      ltv: "$features.customer_lifetime_value"
      downstream: "$uses_skipped.seen"
"#,
    );
    let out = o.execute("partial", RequestContext::new()).await.unwrap();
    assert_eq!(
        out.response,
        json!({"name": "Ada Lovelace", "score": null, "ltv": 0, "downstream": "none"})
    );
    let outcomes: Vec<Outcome> = out.trace.sources.iter().map(|s| s.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Ok,
            Outcome::FailedSkipped,
            Outcome::FailedDefaulted,
            Outcome::Ok
        ]
    );
    for failed in &out.trace.sources[1..3] {
        assert_eq!(
            failed.error.as_ref().unwrap().kind,
            SourceErrorKind::Unavailable
        );
    }
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_with_backoff() {
    let o = orchestrator(
        r#"
endpoints:
  retried:
    data_sources:
      - {name: s, type: flaky, params: {failures: 2}, retries: {max: 2, backoff: 100ms, max_backoff: 150ms}}
    primary_source: s
  not_enough:
    data_sources:
      - {name: s, type: flaky, params: {failures: 2}, retries: 1}
    primary_source: s
  not_transient:
    data_sources:
      - {name: s, type: flaky, params: {failures: 2, kind: rejected}, retries: 5}
    primary_source: s
"#,
    );
    let start = Instant::now();
    let out = o.execute("retried", RequestContext::new()).await.unwrap();
    let waited = ms(start.elapsed());
    // Backoff ceilings 100 ms then min(200, 150) ms; each wait is between half and all of it.
    assert!(
        (50 + 75..=100 + 150).contains(&waited),
        "waited {waited} ms"
    );
    assert_eq!(out.response, json!({"attempt": 3}));
    assert_eq!(out.trace.sources[0].attempts, 3);

    let err = o
        .execute("not_enough", RequestContext::new())
        .await
        .unwrap_err();
    assert_eq!(err.trace().unwrap().sources[0].attempts, 2);

    let err = o
        .execute("not_transient", RequestContext::new())
        .await
        .unwrap_err();
    assert_eq!(
        err.trace().unwrap().sources[0].attempts,
        1,
        "rejections are not retried"
    );
}

#[tokio::test(start_paused = true)]
async fn source_timeouts_and_the_endpoint_deadline() {
    let o = orchestrator(
        r#"
endpoints:
  slow_source:
    data_sources:
      - {name: s, type: sleep, params: {ms: 5000}, timeout: 1}
    primary_source: s
  slow_endpoint:
    timeout: 500ms
    data_sources:
      - {name: a, type: sleep, params: {ms: 300}}
      - {name: b, type: sleep, params: {ms: 300, after: "$a.finished_ms"}, timeout: 10}
    primary_source: b
  retry_within_budget:
    timeout: 2s
    data_sources:
      - {name: s, type: sleep, params: {ms: 5000}, timeout: 1, retries: {max: 10, backoff: 10ms}}
    primary_source: s
"#,
    );
    let start = Instant::now();
    let err = o
        .execute("slow_source", RequestContext::new())
        .await
        .unwrap_err();
    assert_eq!(ms(start.elapsed()), 1000);
    let ExecuteError::SourceFailed { error, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(error.kind, SourceErrorKind::Timeout);

    let start = Instant::now();
    let err = o
        .execute("slow_endpoint", RequestContext::new())
        .await
        .unwrap_err();
    assert_eq!(
        ms(start.elapsed()),
        500,
        "the endpoint budget caps inner timeouts"
    );
    let ExecuteError::DeadlineExceeded { trace, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(trace.sources[0].outcome, Outcome::Ok);
    assert_eq!(trace.sources[1].outcome, Outcome::Cancelled);
    assert_eq!(ms(trace.sources[1].duration), 200);

    let start = Instant::now();
    let err = o
        .execute("retry_within_budget", RequestContext::new())
        .await
        .unwrap_err();
    assert!(ms(start.elapsed()) <= 2000);
    assert!(matches!(
        err,
        ExecuteError::DeadlineExceeded { .. } | ExecuteError::SourceFailed { .. }
    ));
    assert_eq!(
        err.trace().unwrap().sources[0].attempts,
        2,
        "a third attempt would not fit the budget"
    );
}

#[tokio::test(start_paused = true)]
async fn each_attempt_times_out_at_its_own_limit() {
    // Limits that pass in a different order than the sources started. `later` starts after the
    // timer was armed for `early` (120 ms) and times out before it (110 ms). `prompt` finishes
    // (150 ms) before its limit (160 ms), which the timer is armed for next: it fires once for
    // nothing and moves on to `first` (200 ms).
    let o = orchestrator(
        r#"
endpoints:
  limits:
    timeout: 5s
    data_sources:
      - {name: early, type: sleep, params: {ms: 50}, timeout: 120ms}
      - {name: quick, type: sleep, params: {ms: 100}, timeout: 500ms}
      - {name: prompt, type: sleep, params: {ms: 150}, timeout: 160ms}
      - {name: later, type: sleep, params: {ms: 1000, after: "$quick.finished_ms"}, timeout: 10ms, on_error: skip}
      - {name: first, type: sleep, params: {ms: 400}, timeout: 200ms, on_error: default, default: {late: true}}
      - {name: slow, type: sleep, params: {ms: 5000}, timeout: 1, on_error: skip}
      - {name: slower, type: sleep, params: {ms: 5000}, timeout: 2, on_error: skip}
    response_mapping: {early: "$early.finished_ms", quick: "$quick.finished_ms", later: "$later", first: "$first.late", slow: "$slow"}
"#,
    );
    let start = Instant::now();
    let out = o.execute("limits", RequestContext::new()).await.unwrap();
    assert_eq!(ms(start.elapsed()), 2000);
    assert_eq!(
        out.response,
        json!({"early": 50, "quick": 100, "later": null, "first": true, "slow": null})
    );
    let seen: Vec<_> = out
        .trace
        .sources
        .iter()
        .map(|s| {
            (
                &*s.name,
                ms(s.start),
                ms(s.duration),
                s.attempts,
                s.outcome,
                s.error.as_ref().map(|e| e.kind),
            )
        })
        .collect();
    let timeout = Some(SourceErrorKind::Timeout);
    assert_eq!(
        seen,
        [
            ("early", 0, 50, 1, Outcome::Ok, None),
            ("quick", 0, 100, 1, Outcome::Ok, None),
            ("prompt", 0, 150, 1, Outcome::Ok, None),
            ("later", 100, 10, 1, Outcome::FailedSkipped, timeout),
            ("first", 0, 200, 1, Outcome::FailedDefaulted, timeout),
            ("slow", 0, 1000, 1, Outcome::FailedSkipped, timeout),
            ("slower", 0, 2000, 1, Outcome::FailedSkipped, timeout),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn no_source_starts_once_the_budget_has_run_out() {
    let o = orchestrator(
        r#"
endpoints:
  chain:
    timeout: 500ms
    data_sources:
      - {name: a, type: sleep, params: {ms: 5000}, timeout: 1, on_error: skip}
      - {name: b, type: sleep, params: {after: "$a.finished_ms"}}
      - {name: c, type: sleep, params: {ms: 5000}, timeout: 1, on_error: skip}
      - {name: d, type: sleep, params: {after: "$a.finished_ms"}, condition: "$a.finished_ms"}
    primary_source: b
"#,
    );
    let start = Instant::now();
    let err = o.execute("chain", RequestContext::new()).await.unwrap_err();
    assert_eq!(ms(start.elapsed()), 500);
    let ExecuteError::DeadlineExceeded { trace, .. } = &err else {
        panic!("{err:?}")
    };
    let seen: Vec<_> = trace
        .sources
        .iter()
        .map(|s| (&*s.name, s.attempts, s.outcome))
        .collect();
    // `a` and `c` were limited by the budget: both time out (and are skipped) as it runs out,
    // whichever ends first. `b` would start after that; `d`'s condition is false, so it is
    // skipped rather than not run.
    assert_eq!(
        seen,
        [
            ("a", 1, Outcome::FailedSkipped),
            ("b", 0, Outcome::NotRun),
            ("c", 1, Outcome::FailedSkipped),
            ("d", 0, Outcome::Skipped),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn conditions_skip_sources() {
    let o = orchestrator(
        r#"
endpoints:
  conditional:
    data_sources:
      - {name: profile, type: fixture, operation: profile}
      - name: vip
        type: fixture
        operation: features
        condition: "$profile.segment == 'platinum'"
      - name: regular
        type: fixture
        operation: features
        condition: "$profile.segment == 'gold' and $profile.credit_limit >= 5000"
    response_mapping:
      vip: "$vip.customer_lifetime_value"
      regular: "$regular.customer_lifetime_value"
"#,
    );
    let out = o
        .execute("conditional", RequestContext::new())
        .await
        .unwrap();
    assert_eq!(out.response, json!({"vip": null, "regular": 1520.75}));
    assert_eq!(out.trace.sources[1].outcome, Outcome::Skipped);
    assert_eq!(out.trace.sources[1].attempts, 0);
}

#[tokio::test]
async fn mapping_semantics() {
    let o = orchestrator(
        r#"
endpoints:
  customer_360:
    data_sources:
      - {name: profile, type: fixture, operation: profile, params: {echo: "$request.customer_id"}}
      - {name: orders, type: fixture, operation: orders}
      - {name: features, type: fixture, operation: features}
      - {name: never, type: fixture, operation: profile, condition: false}
    response_mapping:
      id: "$request.customer_id"
      echoed: "$profile.echo"
      personal_info:
        name: "$profile.name"
        contact: {email: "$profile.email", phone: "$profile.phone"}
      first_order: "$orders[0].order_id"
      last_order: "$orders[-1].order_id"
      order_ids: "$orders[*].order_id"
      amounts: "$orders[*].amount"
      skus: "$orders[*].items[*].sku"
      pair: ["$profile.segment", "$features.purchase_frequency", 7]
      tier: "$profile.tier || 'standard'"
      limit: "$profile.missing || $profile.credit_limit || 0"
      zero: "$profile.missing || 0"
      flag: "$profile.missing || false"
      literal_text: "plain text"
      literal_number: 3
      escaped: "$$100"
      missing: "$profile.no.such.path"
      skipped: "$never.name"
      computed: "$= round($features.customer_lifetime_value / 3, 2)"
      big_spender: "$= sum($orders[*].amount) > 200"
  primary_only:
    data_sources:
      - {name: profile, type: fixture, operation: profile}
      - {name: orders, type: fixture, operation: orders}
    primary_source: orders
    response_mapping: null
"#,
    );
    let request = RequestContext::new().with_path_param("customer_id", 42);
    let out = o.execute("customer_360", request).await.unwrap();
    assert_eq!(
        out.response,
        json!({
            "id": 42,
            "echoed": 42,
            "personal_info": {"name": "Ada Lovelace", "contact": {"email": "ada@example.com", "phone": null}},
            "first_order": 1,
            "last_order": 4,
            "order_ids": [1, 2, 3, 4],
            "amounts": [120.5, 35, 80],
            "skus": [["A", "B"], ["C"], []],
            "pair": ["gold", 3.2, 7],
            "tier": "standard",
            "limit": 5000,
            "zero": 0,
            "flag": false,
            "literal_text": "plain text",
            "literal_number": 3,
            "escaped": "$100",
            "missing": null,
            "skipped": null,
            "computed": 506.92,
            "big_spender": true
        })
    );
    assert!(
        out.response["zero"].is_i64() && out.response["flag"].is_boolean(),
        "fallback literals keep their type"
    );
    let keys: Vec<&String> = out.response.as_object().unwrap().keys().collect();
    assert_eq!(
        keys[..3],
        ["id", "echoed", "personal_info"],
        "the mapping's key order is kept"
    );

    let out = o
        .execute("primary_only", RequestContext::new())
        .await
        .unwrap();
    assert_eq!(
        out.response,
        tests::Fixtures::document("orders"),
        "a null mapping returns the primary source"
    );
}

#[tokio::test]
async fn transform_steps_on_real_shaped_results() {
    let o = orchestrator(
        r#"
endpoints:
  orders:
    data_sources:
      - name: orders
        type: fixture
        operation: orders
        transform:
          - filter: "$item.status == 'shipped'"
          - map: {id: "$item.order_id", total: "$item.amount", skus: "$item.items[*].sku"}
      - name: summary
        type: direct
        params: {ids: "$orders[*].id", total: "$= sum($orders[*].total)"}
    response_mapping: {orders: "$orders", summary: "$summary"}
  records:
    data_sources:
      - name: profile
        type: fixture
        operation: profile
        transform:
          - select: [customer_id, name, tier, segment]
          - rename: {customer_id: id, segment: group}
          - defaults: {tier: standard, country: unknown}
          - compute: {display: "$= upper($item.name)", vip: "$= $item.group == 'gold'"}
    primary_source: profile
  flattened:
    data_sources:
      - name: skus
        type: fixture
        operation: orders
        transform:
          - map: "$item.items[*].sku"
          - flatten: true
    primary_source: skus
"#,
    );
    let out = o.execute("orders", RequestContext::new()).await.unwrap();
    assert_eq!(
        out.response,
        json!({
            "orders": [{"id": 1, "total": 120.5, "skus": ["A", "B"]}, {"id": 3, "total": 80, "skus": []}],
            "summary": {"ids": [1, 3], "total": 200.5}
        }),
        "a chained source sees the transformed result"
    );

    let out = o.execute("records", RequestContext::new()).await.unwrap();
    assert_eq!(
        out.response,
        json!({"id": 42, "name": "Ada Lovelace", "tier": "standard", "group": "gold",
               "country": "unknown", "display": "ADA LOVELACE", "vip": true})
    );

    let out = o.execute("flattened", RequestContext::new()).await.unwrap();
    // Order 4 has no items: its projection is null, and flatten keeps non-array elements.
    assert_eq!(out.response, json!(["A", "B", "C", null]));
}

#[tokio::test]
async fn unknown_endpoint_and_unregistered_types() {
    let o = orchestrator("endpoints:\n  e:\n    data_sources: [{name: d, type: direct}]\n");
    let err = o.execute("nope", RequestContext::new()).await.unwrap_err();
    assert!(matches!(err, ExecuteError::UnknownEndpoint(ref n) if n == "nope"));
    assert!(err.trace().is_none());

    let plan =
        tests::plan_from_yaml("endpoints:\n  e:\n    data_sources: [{name: s, type: sleep}]\n");
    let err = api_orchestrator::Orchestrator::builder()
        .build(plan)
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("source type `sleep`"), "{text}");
}

#[tokio::test]
async fn traces_serialize_for_the_debug_view() {
    let o = orchestrator(
        "endpoints:\n  e:\n    data_sources: [{name: d, type: direct, params: {a: 1}}]\n",
    );
    let out = o
        .execute("e", RequestContext::new().with_request_id("abc"))
        .await
        .unwrap();
    let v: Value = serde_json::to_value(&out.trace).unwrap();
    assert_eq!(v["endpoint"], "e");
    assert_eq!(v["request_id"], "abc");
    assert_eq!(v["config_version"], 1);
    assert_eq!(v["sources"][0]["outcome"], "ok");
    assert_eq!(v["sources"][0]["kind"], "direct");
    assert!(v["sources"][0]["duration_ms"].is_f64());
    assert_eq!(
        out.response,
        json!({"a": 1}),
        "a single source is the primary one"
    );
}

#[tokio::test]
async fn collection_transforms_sort_limit_group_and_join() {
    let o = orchestrator(
        r#"
endpoints:
  orders:
    data_sources:
      - name: labels
        type: direct
        params:
          list: [{status: shipped, label: Sent}, {status: open, label: Open}]
          by_id: [{id: 1.0, label: one}, {id: "2", label: text}, {id: 3, label: three}, {id: 3, label: again}]
      - name: top
        type: fixture
        operation: orders
        transform:
          - sort: {by: "$item.amount", order: desc}
          - limit: 3
          - join: {with: "$labels.list", on: status, as: label}
          - map: {id: "$item.order_id", label: "$item.label.label", amount: "$item.amount"}
      - name: by_number
        type: fixture
        operation: orders
        transform:
          - join: {with: "$labels.by_id", on: {left: order_id, right: id}, as: label}
          - map: "$item.label.label"
      - name: cheapest
        type: fixture
        operation: orders
        transform:
          - sort: "$item.amount"
          - map: "$item.order_id"
      - name: by_two_keys
        type: fixture
        operation: orders
        transform:
          - sort: "[$item.status, $item.amount]"
          - map: "$item.order_id"
      - name: by_status
        type: fixture
        operation: orders
        transform:
          - group_by: "$item.status"
          - compute: {shipped: "$= len($item.shipped)"}
    response_mapping:
      top: "$top"
      cheapest: "$cheapest"
      by_number: "$by_number"
      by_two_keys: "$by_two_keys"
      shipped: "$by_status.shipped"
      groups: "$by_status"
"#,
    );
    let out = o.execute("orders", RequestContext::new()).await.unwrap();
    assert_eq!(
        out.response["top"],
        json!([
            {"id": 1, "label": "Sent", "amount": 120.5},
            {"id": 3, "label": "Sent", "amount": 80},
            {"id": 2, "label": null, "amount": 35}
        ])
    );
    // Numbers by value (1.0 is 1), not text ("2" is not 2); the first match wins.
    assert_eq!(
        out.response["by_number"],
        json!(["one", null, "three", null])
    );
    // Ascending; the order without an amount last.
    assert_eq!(out.response["cheapest"], json!([2, 3, 1, 4]));
    // By status, then by amount within a status.
    assert_eq!(out.response["by_two_keys"], json!([2, 4, 3, 1]));
    // Groups in the order first seen; `compute` then replaced one with its size.
    let groups = out.response["groups"].as_object().unwrap();
    assert_eq!(
        groups.keys().collect::<Vec<_>>(),
        ["shipped", "cancelled", "open"]
    );
    assert_eq!(out.response["shipped"], json!(2));
    assert_eq!(groups["open"][0]["order_id"], json!(4));
}

#[tokio::test]
async fn time_functions() {
    let o = orchestrator(
        r#"
endpoints:
  times:
    data_sources:
      - {name: t, type: direct, params: {signup: "2026-11-01 09:30:00", seen: "2026-12-07T10:30:00+01:00"}}
    response_mapping:
      signup: "$= parse_time($t.signup)"
      label: "$= format_time($t.signup, '%d %b %Y')"
      renewal: "$= add_time($t.signup, '30d')"
      days: "$= diff_time($t.seen, $t.signup, 'd')"
      hours: "$= diff_time('2026-12-08', $t.seen, 'h')"
      bad: "$= add_time('not a time', '1d')"
"#,
    );
    let out = o.execute("times", RequestContext::new()).await.unwrap();
    assert_eq!(
        out.response,
        json!({
            "signup": "2026-11-01T09:30:00.000Z",
            "label": "01 Nov 2026",
            "renewal": "2026-12-01T09:30:00.000Z",
            "days": 36,
            "hours": 14.5,
            "bad": null
        })
    );
}
