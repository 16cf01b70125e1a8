//! Each policy layer on a single step, in virtual time: timeout, retry within its budget,
//! `on_error`, `fallback` to another source and to a literal; and a host layer, which sees every
//! attempt with the attempt's timeout inside it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_orchestrator::RequestContext;
use api_orchestrator::config::{ConfigFiles, Loader};
use api_orchestrator::engine::{ExecuteError, Outcome};
use api_orchestrator::layer::StepInfo;
use api_orchestrator::source::{DataSource, SourceCall, SourceError, SourceErrorKind};
use serde_json::{Value, json};
use tests::{builder, ms, orchestrator, plan_from_yaml};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn timeout_ends_an_attempt_at_its_limit_or_at_the_deadline() {
    let o = orchestrator(
        r#"
endpoints:
  own_limit:
    data_sources:
      - {name: s, type: sleep, params: {ms: 5000}, timeout: 300ms}
  deadline_first:
    timeout: 200ms
    data_sources:
      - {name: s, type: sleep, params: {ms: 5000}, timeout: 300ms}
  in_time:
    data_sources:
      - {name: s, type: sleep, params: {ms: 250}, timeout: 300ms}
  forever:
    timeout: 18000000000000000000
    data_sources:
      - {name: s, type: sleep, params: {ms: 10}, timeout: 18000000000000000000, retries: 1}
  skipped_at_the_deadline:
    timeout: 200ms
    data_sources:
      - {name: s, type: sleep, params: {ms: 5000}, on_error: skip, fallback: {value: 1}}
"#,
    );
    let start = Instant::now();
    let err = o
        .execute("own_limit", RequestContext::new())
        .await
        .unwrap_err();
    assert_eq!(ms(start.elapsed()), 300);
    let ExecuteError::SourceFailed { error, trace, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(error.kind, SourceErrorKind::Timeout);
    assert_eq!(trace.sources[0].attempts, 1);

    let start = Instant::now();
    let err = o
        .execute("deadline_first", RequestContext::new())
        .await
        .unwrap_err();
    assert_eq!(ms(start.elapsed()), 200);
    assert!(
        matches!(err, ExecuteError::DeadlineExceeded { .. }),
        "{err}"
    );

    let out = o.execute("in_time", RequestContext::new()).await.unwrap();
    assert_eq!(out.response["ms"], 250);

    // Durations too long for the clock (the config accepts them) do not panic.
    let out = o.execute("forever", RequestContext::new()).await.unwrap();
    assert_eq!(out.response["ms"], 10);

    // A policy may stand in for the source's result, not for the endpoint's time.
    let start = Instant::now();
    let err = o
        .execute("skipped_at_the_deadline", RequestContext::new())
        .await
        .unwrap_err();
    assert_eq!(ms(start.elapsed()), 200);
    let ExecuteError::DeadlineExceeded { trace, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(trace.sources[0].outcome, Outcome::Fallback);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_when_the_steps_budget_is_spent() {
    let o = orchestrator(
        r#"
endpoints:
  always_failing:
    data_sources:
      - {name: s, type: flaky, retries: {max: 3, backoff: 10ms}}
"#,
    );
    let start = Instant::now();
    let mut attempts = Vec::new();
    let mut refused = 0;
    for _ in 0..60 {
        let err = o
            .execute("always_failing", RequestContext::new())
            .await
            .unwrap_err();
        let source = &err.trace().unwrap().sources[0];
        attempts.push(source.attempts);
        if source.notes.iter().any(|n| n.contains("retry budget")) {
            refused += 1;
        }
    }
    // All within one budget window (10 s of virtual time).
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(attempts[0], 4, "a fresh budget allows every retry");
    // 10 retries a second over the 10 s window, plus 20 % of the 60 calls: about 112 of the
    // 180 retries wanted.
    let retries: u32 = attempts.iter().map(|a| a - 1).sum();
    assert!(
        (100..=125).contains(&retries),
        "{retries} retries: {attempts:?}"
    );
    // Once spent, only the 20 % share is left: one retry every five calls.
    assert!(refused >= 10, "{refused} refusals: {attempts:?}");
    assert!(attempts[50..].iter().all(|&a| a <= 2), "{attempts:?}");
}

#[tokio::test(start_paused = true)]
async fn on_error_turns_a_failure_into_null_or_the_default() {
    let o = orchestrator(
        r#"
endpoints:
  skipped:
    data_sources:
      - {name: s, type: flaky, params: {kind: rejected}, on_error: skip}
    response_mapping: {s: "$s", ok: true}
  defaulted:
    data_sources:
      - {name: s, type: flaky, params: {kind: rejected}, on_error: default, default: {score: 0},
         transform: [{rename: {score: points}}]}
    primary_source: s
"#,
    );
    let out = o.execute("skipped", RequestContext::new()).await.unwrap();
    assert_eq!(out.response, json!({"s": null, "ok": true}));
    let t = &out.trace.sources[0];
    assert_eq!(t.outcome, Outcome::FailedSkipped);
    assert_eq!(t.error.as_ref().unwrap().kind, SourceErrorKind::Rejected);

    let out = o.execute("defaulted", RequestContext::new()).await.unwrap();
    assert_eq!(
        out.response,
        json!({"score": 0}),
        "a default is not transformed"
    );
    assert_eq!(out.trace.sources[0].outcome, Outcome::FailedDefaulted);
}

#[tokio::test(start_paused = true)]
async fn fallback_to_another_source_gets_the_steps_params() {
    let o = orchestrator(
        r#"
endpoints:
  features:
    data_sources:
      - name: s
        type: flaky
        operation: scores
        params: {echo: "$request.id"}
        retries: {max: 1, backoff: 10ms}
        fallback: {type: fixture, operation: features}
        transform: [{select: [customer_lifetime_value, echo]}]
    primary_source: s
  too_late:
    timeout: 200ms
    data_sources:
      - {name: s, type: sleep, params: {ms: 5000}, fallback: {type: fixture, operation: features}}
  both_fail:
    data_sources:
      - {name: s, type: flaky, fallback: {type: flaky, operation: other}, on_error: skip}
    response_mapping: {s: "$s"}
"#,
    );
    let out = o
        .execute("features", RequestContext::new().with_query_param("id", 7))
        .await
        .unwrap();
    assert_eq!(
        out.response,
        json!({"customer_lifetime_value": 1520.75, "echo": 7}),
        "the fallback's own operation, the step's params, transformed like the source's answer"
    );
    let t = &out.trace.sources[0];
    assert_eq!(t.outcome, Outcome::Fallback);
    assert_eq!(t.error.as_ref().unwrap().kind, SourceErrorKind::Unavailable);
    assert_eq!(
        t.attempts, 3,
        "two attempts of the source, one of the fallback"
    );

    // Past the deadline the fallback source is not called at all.
    let err = o
        .execute("too_late", RequestContext::new())
        .await
        .unwrap_err();
    let t = &err.trace().unwrap().sources[0];
    assert_eq!(t.attempts, 1, "{:?}", t.notes);
    assert!(
        t.notes.iter().any(|n| n.contains("not tried")),
        "{:?}",
        t.notes
    );

    let out = o.execute("both_fail", RequestContext::new()).await.unwrap();
    let t = &out.trace.sources[0];
    assert_eq!(out.response, json!({"s": null}));
    assert_eq!(
        t.outcome,
        Outcome::FailedSkipped,
        "on_error applies after the fallback"
    );
    assert!(
        t.notes.iter().any(|n| n.contains("fallback failed too")),
        "{:?}",
        t.notes
    );
}

#[tokio::test(start_paused = true)]
async fn fallback_to_a_literal() {
    let o = orchestrator(
        r#"
endpoints:
  score:
    data_sources:
      - {name: s, type: sleep, params: {ms: 5000}, timeout: 1, fallback: {value: {score: 500, band: unknown}}}
    response_mapping: {score: "$s.score", band: "$s.band"}
"#,
    );
    let start = Instant::now();
    let out = o.execute("score", RequestContext::new()).await.unwrap();
    assert_eq!(ms(start.elapsed()), 1000);
    assert_eq!(out.response, json!({"score": 500, "band": "unknown"}));
    let t = &out.trace.sources[0];
    assert_eq!(t.outcome, Outcome::Fallback);
    assert_eq!(t.error.as_ref().unwrap().kind, SourceErrorKind::Timeout);
}

#[test]
fn a_fallback_is_checked_like_a_source() {
    let files = ConfigFiles::new().with_file(
        "domains/shop.yaml",
        r#"
endpoints:
  e:
    data_sources:
      - {name: a, type: direct, fallback: {type: databse, operation: x}}
      - {name: b, type: direct, fallback: {value: 1, operation: x}}
      - {name: c, type: direct, fallback: {}}
"#,
    );
    let shown = Loader::new().load(&files).unwrap_err().to_string();
    for expected in [
        "error[unknown-source-type]: unknown source type `databse`",
        "did you mean `database`?",
        "endpoints.e.data_sources[0].fallback.type",
        "`operation` does not go with a literal fallback `value:`",
        "a fallback needs `type:` (another source) or `value:` (a literal)",
    ] {
        assert!(
            shown.contains(expected),
            "missing {expected:?} in:\n{shown}"
        );
    }
}

/// Each attempt a host layer passed on: its number and how it ended.
type Attempts = Arc<Mutex<Vec<(u32, Option<SourceErrorKind>)>>>;

/// A host layer that records what it was built for and every attempt it passes on.
#[derive(Default)]
struct Recorder {
    built: Mutex<Vec<String>>,
    seen: Attempts,
}

struct Recorded {
    inner: Arc<dyn DataSource>,
    seen: Attempts,
}

#[async_trait::async_trait]
impl DataSource for Recorded {
    async fn fetch(&self, call: SourceCall<'_>) -> Result<Value, SourceError> {
        let result = self.inner.fetch(call).await;
        let kind = result.as_ref().err().map(|e| e.kind);
        self.seen.lock().unwrap().push((call.attempt, kind));
        result
    }
}

#[tokio::test(start_paused = true)]
async fn a_host_layer_sees_every_attempt_with_its_timeout_inside() {
    let recorder = Arc::new(Recorder::default());
    let layer = {
        let recorder = recorder.clone();
        move |inner: Arc<dyn DataSource>, step: &StepInfo<'_>| -> Arc<dyn DataSource> {
            recorder.built.lock().unwrap().push(format!(
                "{}.{}{} {:?} {:?}",
                step.endpoint.name,
                step.step.name,
                if step.fallback { " (fallback)" } else { "" },
                step.timeout,
                step.retry.map(|r| r.max_retries)
            ));
            Arc::new(Recorded {
                inner,
                seen: recorder.seen.clone(),
            })
        }
    };
    let o = builder()
        .layer(layer)
        .build(plan_from_yaml(
            r#"
endpoints:
  slow:
    data_sources:
      - {name: s, type: sleep, params: {ms: 5000}, timeout: 100ms, retries: {max: 2, backoff: 10ms},
         fallback: {type: flaky}}
"#,
        ))
        .unwrap();
    assert_eq!(
        *recorder.built.lock().unwrap(),
        ["slow.s (fallback) 100ms None", "slow.s 100ms Some(2)"],
        "built once per step and fallback, with the resolved policies"
    );
    let err = o.execute("slow", RequestContext::new()).await.unwrap_err();
    assert_eq!(err.trace().unwrap().sources[0].attempts, 4);
    let timeout = Some(SourceErrorKind::Timeout);
    assert_eq!(
        *recorder.seen.lock().unwrap(),
        [
            (1, timeout),
            (2, timeout),
            (3, timeout),
            (1, Some(SourceErrorKind::Unavailable)) // the fallback
        ]
    );
}
