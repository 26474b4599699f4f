//! `baton bench` at tiny sizes: every scenario runs to the end and reports
//! consistent figures. Speed is measured by running the bench, never asserted
//! here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

fn bench(backend: &str, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["--backend", backend, "--json", "bench"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "baton bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout.lines().last().expect("one JSON line");
    serde_json::from_str(last).unwrap()
}

fn number(doc: &Value, key: &str) -> f64 {
    doc[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {doc}"))
}

fn assert_common(doc: &Value, scenario: &str) {
    assert_eq!(doc["backend"], "sqlite");
    assert_eq!(doc["scenario"], scenario);
    assert!(doc["namespace"].as_str().unwrap().starts_with("bench-"));
    assert!(number(doc, "throughput_per_sec") > 0.0, "{doc}");
    assert!(number(doc, "submit_per_sec") > 0.0, "{doc}");
    assert!(number(doc, "duration_s") > 0.0, "{doc}");
    let (p50, p95, p99) = (
        number(doc, "p50_ms"),
        number(doc, "p95_ms"),
        number(doc, "p99_ms"),
    );
    assert!(0.0 <= p50 && p50 <= p95 && p95 <= p99, "{doc}");
    assert!(number(doc, "complete_p50_ms") >= p50, "{doc}");
    // The calls' own times: every completed execution went through a
    // claim call that took work and a complete call, so both were timed.
    let (claim50, claim99) = (
        number(doc, "claim_call_p50_ms"),
        number(doc, "claim_call_p99_ms"),
    );
    assert!(0.0 < claim50 && claim50 <= claim99, "{doc}");
    let (complete50, complete99) = (
        number(doc, "complete_call_p50_ms"),
        number(doc, "complete_call_p99_ms"),
    );
    assert!(0.0 < complete50 && complete50 <= complete99, "{doc}");
    assert_eq!(doc["payload_bytes"], 64);
}

#[test]
fn drain_completes_exactly_what_it_submitted() {
    let doc = bench(
        "sqlite::memory:",
        &[
            "--scenario",
            "drain",
            "--executions",
            "250",
            "--workers",
            "2",
            "--submit-batch",
            "40",
            "--claim-batch",
            "30",
            "--payload-bytes",
            "64",
        ],
    );
    assert_common(&doc, "drain");
    assert_eq!(doc["executions"], 250);
    assert_eq!(doc["submitted"], 250);
    assert_eq!(doc["workers"], 2);
    assert!(number(&doc, "drain_per_sec") > 0.0, "{doc}");
}

#[test]
fn steady_runs_submitters_and_workers_together() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?synchronous=normal",
        dir.path().join("bench.db").display()
    );
    let doc = bench(
        &url,
        &[
            "--scenario",
            "steady",
            "--duration",
            "1",
            "--workers",
            "2",
            "--payload-bytes",
            "64",
        ],
    );
    assert_common(&doc, "steady");
    assert!(doc["create_call_p50_ms"].is_null(), "{doc}");
    let (submitted, completed) = (number(&doc, "submitted"), number(&doc, "executions"));
    assert!(completed > 0.0 && completed <= submitted, "{doc}");
    assert!(doc["drain_per_sec"].is_null());
}

#[test]
fn latency_measures_every_offered_execution() {
    let doc = bench(
        "sqlite::memory:",
        &[
            "--scenario",
            "latency",
            "--duration",
            "0.5",
            "--rate",
            "200",
            "--workers",
            "1",
            "--payload-bytes",
            "64",
        ],
    );
    assert_common(&doc, "latency");
    assert_eq!(doc["rate"], 200);
    assert_eq!(doc["executions"], 100);
    assert_eq!(doc["submitted"], 100);
    // The submitter's create calls are timed in this scenario alone.
    let (create50, create99) = (
        number(&doc, "create_call_p50_ms"),
        number(&doc, "create_call_p99_ms"),
    );
    assert!(0.0 < create50 && create50 <= create99, "{doc}");
}

/// One tenant submits 100 times each other's share, first: with the fair
/// limit every tenant gets about a tenth of the claims while all have
/// work; without it the heavy tenant takes them all.
#[test]
fn fair_shares_claims_between_tenants() {
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--scenario",
            "fair",
            "--executions",
            "2180",
            "--workers",
            "1",
            "--claim-batch",
            "10",
            "--payload-bytes",
            "64",
        ];
        args.extend_from_slice(extra);
        bench("sqlite::memory:", &args)
    };
    let doc = run(&[]);
    assert_common(&doc, "fair");
    assert_eq!(doc["executions"], 2180, "20 per light tenant, 2000 heavy");
    let f = &doc["fairness"];
    assert_eq!(f["fair_limit"], true, "{doc}");
    for key in ["heavy_share", "light_share_min", "light_share_max"] {
        let share = f[key].as_f64().unwrap();
        assert!((0.08..=0.12).contains(&share), "{key} {share}: {doc}");
    }
    assert!(f["light_done_at_max"].as_f64().unwrap() < 0.2, "{doc}");
    let baseline = run(&["--without-fair-limit"]);
    let f = &baseline["fairness"];
    assert_eq!(f["fair_limit"], false);
    assert!(f["heavy_share"].as_f64().unwrap() > 0.9, "{baseline}");
}

#[test]
fn runs_on_one_database_do_not_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let args = [
        "--scenario",
        "drain",
        "--executions",
        "50",
        "--payload-bytes",
        "64",
    ];
    let first = bench(&url, &args);
    let second = bench(&url, &args);
    assert_ne!(first["namespace"], second["namespace"]);
    assert_eq!(second["executions"], 50);
}

#[test]
fn a_payload_too_small_for_the_timestamp_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args([
            "--backend",
            "sqlite::memory:",
            "bench",
            "--payload-bytes",
            "4",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("payload-bytes"));
}
