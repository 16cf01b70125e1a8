//! schemathesis fuzzes the demo server from its own `/openapi.json`: every operation, with
//! generated path, query, header and body values, including invalid ones. The server must
//! answer every one without a server error, with the status codes, content types, headers and
//! response bodies the document declares. Runs when `ORCHESTRATOR_TEST_SCHEMATHESIS` names the
//! `st` command (`.ci/python-servers` installs it and prints the variable).
//!
//! `ORCHESTRATOR_SCHEMATHESIS_SEED` picks another seed (the default is fixed, so a CI failure
//! reproduces); `ORCHESTRATOR_SCHEMATHESIS_EXAMPLES` the cases per operation (default 50).

mod support;

use support::{demo_config, start_server};

/// What the run checks: the server's own failures and its conformance to its document.
/// (`positive_data_acceptance` waits for typed inputs from the schema snapshots: a path
/// parameter documented as a string is bound to an integer column.)
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_headers_conformance,response_schema_conformance,missing_required_header,\
unsupported_method,allow_header_conformance";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_survives_schemathesis_and_conforms_to_its_document() {
    let Some(st) = std::env::var_os("ORCHESTRATOR_TEST_SCHEMATHESIS") else {
        println!(
            "skipped: schemathesis against the demo; set ORCHESTRATOR_TEST_SCHEMATHESIS to its `st` command (`eval \"$(.ci/python-servers)\"` installs it)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path());
    let (mut server, base) = start_server(&config, &[]).await;
    let seed = std::env::var("ORCHESTRATOR_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".into());
    let examples =
        std::env::var("ORCHESTRATOR_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "50".into());
    let out = tokio::process::Command::new(&st)
        .args(["run", &format!("{base}/api/openapi.json")])
        .args(["--url", &format!("{base}/api")])
        .args(["--checks", CHECKS])
        .args(["--max-examples", &examples, "--seed", &seed])
        .args(["--workers", "2", "--no-color"])
        .current_dir(dir.path())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{} does not run: {e}", st.to_string_lossy()));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures (seed {seed}):\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It really ran: cases were generated against every operation.
    assert!(report.contains("generated"), "{report}");
    assert!(
        server.try_wait().unwrap().is_none(),
        "the server is still up"
    );
}
