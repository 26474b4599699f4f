//! The `baton` binary against a fresh SQLite file: what a person types, and
//! what a script parses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use serde_json::Value;

struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        Cli {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("baton.db").display())
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(args)
            .env("BATON_BACKEND", self.url())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "baton {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// Opens the CLI's database in this process and claims one execution
    /// of `lane` in namespace `default` as `worker`: a worker's side of a
    /// test, beside the commands under test.
    async fn claim_one(
        &self,
        lane: &str,
        worker: &str,
    ) -> (baton_sqlite::SqliteBackend, baton_core::Claim) {
        use baton_core::{ClaimRequest, EngineBackend, Lane, Namespace, WorkerId};
        let b = baton_sqlite::SqliteBackend::connect(&self.url())
            .await
            .unwrap();
        let request = ClaimRequest::new(
            Namespace::new("default").unwrap(),
            Lane::new(lane).unwrap(),
            WorkerId::new(worker).unwrap(),
            1,
        );
        let claim = b.claim(request).await.unwrap().pop().unwrap();
        (b, claim)
    }

    /// Runs a command that must fail; answers (exit code, stderr).
    fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        assert!(!out.status.success(), "baton {args:?} should have failed");
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }
}

#[test]
fn submit_list_describe_cancel_on_a_new_file() {
    let cli = Cli::new();
    let sub = cli.json(&[
        "submit",
        "email.send",
        "--payload",
        r#"{"to":"a@example.com"}"#,
        "--lane",
        "emails",
        "--tag",
        "customer=42",
        "--priority",
        "7",
    ]);
    assert_eq!(sub["state"], "waiting");
    assert_eq!(sub["created"], true);
    let id = sub["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("{p:"), "{id}");

    let list = cli.json(&["list", "--lane", "emails"]);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(list["next_cursor"], Value::Null);

    let table = cli.ok(&["list"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains(&id) && table.contains("waiting"), "{table}");

    let snap = cli.json(&["describe", &id]);
    assert_eq!(snap["kind"], "email.send");
    assert_eq!(snap["payload"]["to"], "a@example.com");
    assert_eq!(snap["tags"]["customer"], "42");
    assert_eq!(snap["priority"], 7);
    assert_eq!(snap["max_attempts"], 3);
    assert_eq!(snap["attempts"], 0);

    let human = cli.ok(&["describe", &id]);
    assert!(
        human.contains("state") && human.contains("waiting"),
        "{human}"
    );

    let cancelled = cli.json(&["cancel", &id, "--reason", "not needed"]);
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(cancelled["cancel_reason"], "not needed");
    // Cancelling again is a no-op that keeps the first reason.
    let again = cli.json(&["cancel", &id, "--reason", "other"]);
    assert_eq!(again["cancel_reason"], "not needed");

    let stats = cli.json(&["stats"]);
    assert_eq!(stats["lanes"]["emails"]["cancelled"], 1);
    assert_eq!(stats["lanes"]["emails"]["waiting"], 0);
}

#[test]
fn idempotency_key_returns_the_first_execution() {
    let cli = Cli::new();
    let a = cli.json(&["submit", "k", "--idempotency-key", "order-1"]);
    let b = cli.json(&["submit", "k", "--idempotency-key", "order-1"]);
    assert_eq!(a["id"], b["id"]);
    assert_eq!(b["created"], false);
    let text = cli.ok(&["submit", "k", "--idempotency-key", "order-1"]);
    assert!(text.contains("already submitted"), "{text}");
}

#[test]
fn delayed_submission_and_state_filter() {
    let cli = Cli::new();
    let d = cli.json(&["submit", "later", "--delay-ms", "600000"]);
    assert_eq!(d["state"], "delayed");
    cli.json(&["submit", "now"]);
    let delayed = cli.json(&["list", "--state", "delayed"]);
    assert_eq!(delayed["items"].as_array().unwrap().len(), 1);
    assert_eq!(delayed["items"][0]["kind"], "later");
    assert!(delayed["items"][0]["run_at"].is_string());
}

#[test]
fn list_pages_with_a_cursor() {
    let cli = Cli::new();
    for i in 0..5 {
        cli.json(&["submit", "k", "--payload", &i.to_string()]);
    }
    let first = cli.json(&["list", "--limit", "3"]);
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let second = cli.json(&["list", "--limit", "3", "--cursor", &cursor]);
    let payloads: Vec<i64> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|s| s["payload"].as_i64().unwrap())
        .collect();
    assert_eq!(payloads, [0, 1, 2, 3, 4]);
    assert_eq!(second["next_cursor"], Value::Null);
}

#[test]
fn bad_input_gets_a_clear_message_and_exit_code_2() {
    let cli = Cli::new();
    let cases: &[(&[&str], &str)] = &[
        (&["describe", "nope"], "invalid id \"nope\""),
        (&["submit", "k", "--max-attempts", "0"], "max_attempts"),
        (&["submit", "k", "--delay-ms", "-5"], "must not be negative"),
        (&["submit", "k", "--payload", "{bad"], "not valid JSON"),
        (&["submit", "bad kind"], "kind contains ' '"),
        (&["submit", "k", "--lane", ""], "lane must not be empty"),
        (&["submit", "k", "--tag", "novalue"], "KEY=VALUE"),
        (&["list", "--state", "bogus"], "expected one of waiting"),
        (&["list", "--cursor", "garbage"], "next_cursor"),
        (&["list", "--limit", "0"], "limit"),
        (&["submit", "k", "--deadline", "yesterday"], "RFC 3339"),
    ];
    for (args, needle) in cases {
        let (code, err) = cli.fails(args);
        assert_eq!(code, 2, "baton {args:?}: {err}");
        assert!(
            err.contains(needle),
            "baton {args:?}: {err:?} lacks {needle:?}"
        );
    }
    // Nothing was created by any of them.
    let stats = cli.json(&["stats"]);
    assert_eq!(stats["lanes"], serde_json::json!({}));
}

#[test]
fn unknown_id_is_not_found_with_a_hint() {
    let elsewhere = Cli::new();
    let id = elsewhere.json(&["submit", "k"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let cli = Cli::new();
    for args in [["describe", id.as_str()], ["cancel", id.as_str()]] {
        let (code, err) = cli.fails(&args);
        assert_eq!(code, 3, "{err}");
        assert!(err.contains("not found") && err.contains(&id), "{err}");
        assert!(err.contains("hint:"), "{err}");
    }
}

#[test]
fn unsupported_backend_says_how_to_fix_it() {
    let cli = Cli::new();
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["--backend", "mysql://x", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("sqlite://baton.db"), "{err}");
    assert!(!cli.dir.path().join("baton.db").exists());
}

#[test]
fn migrate_reports_the_schema_version() {
    let cli = Cli::new();
    let m = cli.json(&["migrate"]);
    assert_eq!(m["backend"], "sqlite");
    assert_eq!(m["schema_version"], 20);
    assert_eq!(m["partitions"], 16);
    assert!(cli.dir.path().join("baton.db").exists());
}

#[test]
fn payloads_come_back_as_typed() {
    let cli = Cli::new();
    for payload in [
        "123456789012345678901234567890",
        "-9223372036854775809",
        "1e400",
        "[1.7976931348623157e309]",
        r#"{"b":1.50,"a":[]}"#,
    ] {
        let arg = format!("--payload={payload}");
        let sub = cli.json(&["submit", "k", &arg]);
        let id = sub["id"].as_str().unwrap();
        let text = cli.ok(&["--json", "describe", id]);
        assert!(
            text.contains(&format!("\"payload\":{payload},")),
            "{payload} became: {text}"
        );
    }
    let (code, err) = cli.fails(&["submit", "k", "--payload", r#""\ud800""#]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("surrogate"), "{err}");
    let deep = "[".repeat(101) + &"]".repeat(101);
    let (code, err) = cli.fails(&["submit", "k", "--payload", &deep]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("depth"), "{err}");
}

/// The ids the README and `baton --help` show belong to a default
/// deployment (16 partitions): describing one answers "not found", not
/// "invalid id".
#[test]
fn the_documented_example_id_fits_a_default_deployment() {
    let readme = include_str!("../../../README.md");
    let id = readme
        .split('\'')
        .find(|s| s.starts_with("{p:") && s.len() > 40)
        .expect("the README shows an example id");
    let cli = Cli::new();
    let (code, err) = cli.fails(&["describe", id]);
    assert_eq!(code, 3, "{id}: {err}");
    assert!(err.contains("not found"), "{err}");
}

/// A Valkey URL where nothing listens answers "unavailable" (exit status 5)
/// at once instead of retrying the connection for minutes.
#[test]
fn an_unreachable_valkey_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["--backend", &format!("redis://127.0.0.1:{port}"), "list"])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("unavailable"), "{err}");
}

/// `submit --parent` makes a child in its parent's partition, `list
/// --parent` lists exactly the children, and an unknown parent is exit 2.
#[test]
fn children_are_submitted_and_listed_by_parent() {
    let cli = Cli::new();
    let parent = cli.json(&["submit", "flow.root"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    cli.json(&["submit", "unrelated"]);
    let child = cli.json(&["submit", "flow.child", "--parent", &parent]);
    let child_id = child["id"].as_str().unwrap().to_string();
    let prefix = |id: &str| id.split('-').next().unwrap().to_string();
    assert_eq!(prefix(&child_id), prefix(&parent), "same partition");
    let listed = cli.json(&["list", "--parent", &parent]);
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["id"], child_id.as_str());
    assert_eq!(items[0]["parent"], parent.as_str());
    assert_eq!(items[0]["root"], parent.as_str());
    let unknown = "{p:13}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071";
    let (code, err) = cli.fails(&["submit", "orphan", "--parent", unknown]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("parent") && err.contains(unknown), "{err}");
}

/// `baton tree` draws the flow from any member's id, `--json` answers the
/// HTTP API's tree; `cancel --only` leaves the descendants running and a
/// plain cancel reaches them and says how many; `children` lists one level;
/// `submit --child-key` answers the first child for a repeated key.
#[test]
fn tree_children_and_cancel_of_a_flow() {
    let cli = Cli::new();
    let id = |v: Value| v["id"].as_str().unwrap().to_string();
    let root = id(cli.json(&["submit", "report.build"]));
    let a = id(cli.json(&[
        "submit",
        "report.section",
        "--parent",
        &root,
        "--child-key",
        "a",
    ]));
    let again = cli.ok(&[
        "submit",
        "report.section",
        "--parent",
        &root,
        "--child-key",
        "a",
    ]);
    assert!(
        again.contains("already submitted with this child key") && again.contains(&a),
        "{again}"
    );
    let b = id(cli.json(&["submit", "report.section", "--parent", &root]));
    let chart = id(cli.json(&["submit", "report.chart", "--parent", &a]));

    let text = cli.ok(&["tree", &chart]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{root}  report.build  waiting"),
            format!("├─ {a}  report.section  waiting"),
            format!("│  └─ {chart}  report.chart  waiting"),
            format!("└─ {b}  report.section  waiting"),
            format!("4 members in flow {root}"),
        ],
        "{text}"
    );
    let cut = cli.ok(&["tree", &root, "--limit", "2"]);
    assert_eq!(cut.lines().count(), 3, "{cut}");
    assert!(cut.contains("showing the first 2 members"), "{cut}");
    let tree = cli.json(&["tree", &root]);
    assert_eq!(tree["root"], root.as_str());
    assert_eq!(tree["truncated"], false);
    assert_eq!(tree["items"][3]["parent"], a.as_str());

    let kids = cli.json(&["children", &root]);
    let ids: Vec<&str> = kids["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a.as_str(), b.as_str()]);
    assert_eq!(kids["items"][0]["child_key"], "a");
    let table = cli.ok(&["children", &root, "--limit", "1"]);
    assert!(table.starts_with("ID") && table.contains(&a), "{table}");
    assert!(table.contains("more: baton children"), "{table}");

    let only = cli.ok(&["cancel", &a, "--only", "--reason", "not this one"]);
    assert!(
        only.contains("cancelled") && only.contains("descendants were left"),
        "{only}"
    );
    assert_eq!(cli.json(&["describe", &chart])["state"], "waiting");
    let all = cli.json(&["cancel", &root]);
    assert_eq!(all["state"], "cancelled");
    assert_eq!(all["cascaded"], 2, "{all}");
    assert_eq!(all["cascade_pending"], false);
    let text = cli.ok(&["tree", &root]);
    assert_eq!(text.matches("cancelled").count(), 4, "{text}");
    // Cancelled already: nothing left to reach, and the text says so.
    let again = cli.ok(&["cancel", &root]);
    assert!(again.contains("0 descendants cancelled with it"), "{again}");

    let bad: &[(&[&str], &str)] = &[
        (&["tree", &root, "--limit", "0"], "limit"),
        (&["tree", &root, "--limit", "10001"], "limit"),
        (&["children", &root, "--limit", "0"], "limit"),
        (&["tree", "nope"], "invalid id"),
    ];
    for (args, needle) in bad {
        let (code, err) = cli.fails(args);
        assert_eq!(code, 2, "baton {args:?}: {err}");
        assert!(err.contains(needle), "baton {args:?}: {err}");
    }
    // --child-key needs --parent (clap refuses it before any call).
    let (code, err) = cli.fails(&["submit", "k", "--child-key", "x"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--parent"), "{err}");
}

#[test]
fn flow_commands_have_help() {
    let cli = Cli::new();
    for (cmd, needle) in [
        ("tree", "indented tree"),
        ("children", "children"),
        ("cancel", "--only"),
        ("submit", "--child-key"),
    ] {
        let help = cli.ok(&[cmd, "--help"]);
        assert!(help.contains(needle), "baton {cmd} --help: {help}");
    }
}

/// `baton describe` says why a blocked parent is not running (and the stats
/// table counts it).
#[test]
fn describe_explains_a_parent_waiting_for_its_children() {
    let cli = Cli::new();
    let parent = cli.json(&["submit", "report.build", "--lane", "flow"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    cli.ok(&[
        "submit",
        "report.section",
        "--lane",
        "flow",
        "--parent",
        &parent,
    ]);
    // A worker's first attempt: claim the parent, then wait for its child.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use baton_core::EngineBackend;
        let (b, claim) = cli.claim_one("flow", "w").await;
        assert_eq!(claim.id.to_string(), parent);
        b.wait_children(&claim.lease).await.unwrap();
        b.close().await;
    });
    let text = cli.ok(&["describe", &parent]);
    assert!(text.contains("blocked"), "{text}");
    assert!(
        text.contains("waiting_on") && text.contains("children: waiting for 1 unfinished child;"),
        "{text}"
    );
    let stats = cli.ok(&["stats"]);
    assert!(stats.contains("BLOCKED"), "{stats}");
}

/// `baton describe` shows what a suspended execution waits for; `baton
/// signal` delivers a signal (printing what it did) and `baton signals`
/// lists what the execution holds.
#[test]
fn signal_resumes_a_suspended_execution() {
    let cli = Cli::new();
    let id = cli.json(&["submit", "refund", "--lane", "approvals"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use baton_core::{EngineBackend, OnTimeout, SignalName, SuspendRequest};
        let (b, claim) = cli.claim_one("approvals", "w").await;
        let wait = SuspendRequest::signals([SignalName::new("approval").unwrap()])
            .with_timeout(std::time::Duration::from_secs(3600), OnTimeout::Cancel);
        b.suspend(&claim.lease, wait).await.unwrap();
        b.close().await;
    });
    let text = cli.ok(&["describe", &id]);
    assert!(text.contains("suspended"), "{text}");
    assert!(
        text.contains("signals: waiting for signal approval; at "),
        "{text}"
    );
    assert!(
        text.contains("on_timeout") && text.contains("cancel"),
        "{text}"
    );
    let out = cli.ok(&["signal", &id, "comment", "--data", "\"later\""]);
    assert!(out.contains("buffered"), "{out}");
    let out = cli.json(&[
        "signal",
        &id,
        "approval",
        "--data",
        r#"{"by":"ana"}"#,
        "--key",
        "k1",
    ]);
    assert_eq!(out["outcome"], "resumed");
    let again = cli.json(&["signal", &id, "approval", "--key", "k1"]);
    assert_eq!(again["outcome"], "duplicate");
    assert_eq!(cli.json(&["describe", &id])["state"], "waiting");
    let table = cli.ok(&["signals", &id]);
    assert!(
        table.contains("buffered") && table.contains("approval"),
        "{table}"
    );
    let listed = cli.json(&["signals", &id]);
    assert_eq!(listed["items"][1]["payload"]["by"], "ana");
    assert_eq!(listed["items"][1]["wait"], 1);
    let (code, err) = cli.fails(&["signal", &id, "no spaces"]);
    assert_eq!(code, 2, "{err}");
}

/// `baton describe --steps` lists the checkpointed steps.
#[test]
fn describe_lists_the_steps() {
    let cli = Cli::new();
    let id = cli.json(&[
        "submit",
        "order",
        "--lane",
        "wf",
        "--payload",
        "123456789012345678901234567890",
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use baton_core::{EngineBackend, StepName, StepOutcome};
        let (b, claim) = cli.claim_one("wf", "w").await;
        let done = StepOutcome::Done(br#"{"charged":25}"#.to_vec());
        b.record_step(&claim.lease, StepName::new("charge").unwrap(), done)
            .await
            .unwrap();
        let failed = StepOutcome::Failed("label service down".into());
        b.record_step(&claim.lease, StepName::new("label").unwrap(), failed)
            .await
            .unwrap();
        b.close().await;
    });
    let text = cli.ok(&["describe", &id, "--steps"]);
    assert!(text.contains("STEP") && text.contains("charge"), "{text}");
    assert!(text.contains("label service down"), "{text}");
    let doc = cli.json(&["describe", &id, "--steps"]);
    assert_eq!(doc["steps"][0]["output"]["charged"], 25);
    assert_eq!(doc["steps"][1]["failures"], 1);
    assert_eq!(doc["state"], "running");
    let text = cli.ok(&["--json", "describe", &id, "--steps"]);
    assert!(
        text.contains("\"payload\":123456789012345678901234567890"),
        "{text}"
    );
}

/// `baton wait` is woken when another process finishes the execution;
/// `baton watch` prints the status and frames; `describe --state` lists
/// the key-value state; exit status 6 for an execution that finished
/// otherwise, 7 when the time ran out.
#[test]
fn wait_watch_and_describe_follow_an_execution() {
    let cli = Cli::new();
    let submit = |kind: &str| {
        cli.json(&["submit", kind, "--lane", "mem"])["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let id = submit("import");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (backend, lease) = rt.block_on(async {
        use baton_core::{AdminBackend, EngineBackend, StateKey};
        let (b, claim) = cli.claim_one("mem", "w").await;
        b.set_status(&claim.lease, br#"{"stage":"reading"}"#.to_vec())
            .await
            .unwrap();
        for n in 1..=2 {
            b.append_progress(&claim.lease, format!("{{\"page\":{n}}}").into_bytes())
                .await
                .unwrap();
        }
        let key = StateKey::new("cursor").unwrap();
        b.set_state(&claim.lease, key, Some(b"41".to_vec()))
            .await
            .unwrap();
        assert_eq!(b.state(&claim.id).await.unwrap().len(), 1);
        (b, claim.lease)
    });
    let text = cli.ok(&["describe", &id, "--state"]);
    assert!(text.contains("v1") && text.contains("reading"), "{text}");
    assert!(text.contains("cursor") && text.contains("41"), "{text}");
    let doc = cli.json(&["describe", &id, "--state"]);
    assert_eq!(doc["execution_state"][0]["value"], 41);
    assert_eq!(
        (doc["state"].clone(), doc["progress_seq"].clone()),
        ("running".into(), 2.into())
    );

    // A waiting `baton wait` in another process, woken by this one's complete.
    let waiter = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["wait", &id, "--timeout", "30s"])
        .env("BATON_BACKEND", cli.url())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    rt.block_on(async {
        use baton_core::EngineBackend;
        backend
            .complete(&lease, br#"{"rows":2}"#.to_vec())
            .await
            .unwrap();
        backend.close().await;
    });
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("completed") && text.contains("rows"),
        "{text}"
    );

    let watched = cli.ok(&["watch", &id]);
    let lines: Vec<&str> = watched.lines().collect();
    assert!(lines.iter().any(|l| l.contains("status v1")), "{watched}");
    let frames: Vec<&&str> = lines.iter().filter(|l| l.contains("  #")).collect();
    assert_eq!(frames.len(), 2, "{watched}");
    assert!(
        frames[0].contains("#1") && frames[1].contains(r#"{"page":2}"#),
        "{watched}"
    );
    assert!(
        watched.trim_end().ends_with(r#"completed  {"rows":2}"#),
        "{watched}"
    );
    let events: Vec<Value> = cli
        .ok(&["--json", "watch", &id])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["state", "status", "progress", "progress"]);

    let idle = submit("idle");
    let (code, err) = cli.fails(&["wait", &idle, "--timeout", "200ms"]);
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("still waiting"), "{err}");
    cli.ok(&["cancel", &idle]);
    let (code, err) = cli.fails(&["wait", &idle]);
    assert_eq!(code, 6, "{err}");
    let (code, err) = cli.fails(&["wait", &idle, "--timeout", "soon"]);
    assert_eq!(code, 2, "{err}");
}

/// `baton priority`, `tag`, `untag`, `revoke` and `workers`.
#[test]
fn operators_edit_revoke_and_list_workers() {
    let cli = Cli::new();
    let submit = |kind: &str| {
        cli.json(&["submit", kind, "--lane", "ops"])["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let first = submit("a");
    let second = submit("b");
    let text = cli.ok(&["priority", &second, "-3"]);
    assert!(text.contains("priority -3"), "{text}");
    assert_eq!(cli.json(&["priority", &second, "7"])["priority"], 7);
    let text = cli.ok(&["tag", &first, "team=core"]);
    assert!(text.contains("team=core"), "{text}");
    let listed = cli.json(&["list", "--tag", "team=core"]);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    let text = cli.ok(&["untag", &first, "team"]);
    assert!(text.contains("no tags"), "{text}");
    let (code, err) = cli.fails(&["tag", &first, "no-equals"]);
    assert_eq!(code, 2, "{err}");
    let (code, err) = cli.fails(&["revoke", &first]);
    assert_eq!(code, 4, "a waiting execution has no lease: {err}");
    let text = cli.ok(&["workers"]);
    assert!(text.contains("no live workers"), "{text}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let claimed = rt.block_on(async {
        let (b, claim) = cli.claim_one("ops", "cli-w").await;
        b.close().await;
        claim.id.to_string()
    });
    assert_eq!(claimed, second, "the higher priority first");
    let text = cli.ok(&["workers"]);
    assert!(
        text.contains("WORKER") && text.contains("cli-w") && text.contains("ops"),
        "{text}"
    );
    let text = cli.ok(&["explain", &second]);
    assert!(
        text.contains("(leased)") && text.contains("cli-w"),
        "{text}"
    );
    let text = cli.ok(&["explain", &first]);
    assert!(
        text.contains("(queued)") && text.contains("next in lane ops"),
        "{text}"
    );
    assert_eq!(cli.json(&["explain", &first])["waiting_on"], "queued");
    let text = cli.ok(&["revoke", &second]);
    // The default retry policy backs off before attempt 2.
    assert!(text.contains("delayed for attempt 2"), "{text}");
    let snap = cli.json(&["describe", &second, "--attempts"]);
    assert_eq!(snap["state"], "delayed");
    assert_eq!(snap["attempt_history"][0]["outcome"], "lease_expired");
}

/// `baton pause`, `resume`, `replay`, `lane pause|resume` and `lanes`.
#[test]
fn operators_pause_resume_replay_and_pause_lanes() {
    let cli = Cli::new();
    let id = cli.json(&["submit", "job", "--lane", "held"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let text = cli.ok(&["pause", &id]);
    assert!(text.contains("is paused (it was waiting)"), "{text}");
    let answer = cli.json(&["pause", &id, "--only"]);
    assert_eq!(
        (answer["state"].clone(), answer["cascaded"].clone()),
        (serde_json::json!("paused"), serde_json::json!(0))
    );
    let text = cli.ok(&["explain", &id]);
    assert!(text.contains("(paused)"), "{text}");
    let text = cli.ok(&["lanes"]);
    assert!(text.contains("PAUSED") && text.contains("held"), "{text}");
    let text = cli.ok(&["resume", &id]);
    assert!(text.contains("is waiting"), "{text}");
    let text = cli.ok(&["lane", "pause", "held"]);
    assert!(
        text.contains("lane held of namespace default is paused"),
        "{text}"
    );
    let text = cli.ok(&["lane", "pause", "held"]);
    assert!(text.contains("(it already was)"), "{text}");
    let lanes = cli.json(&["lanes"]);
    assert_eq!(lanes["lanes"][0]["paused"], true, "{lanes}");
    assert_eq!(cli.json(&["explain", &id])["waiting_on"], "lane_paused");
    let text = cli.ok(&["lanes"]);
    assert!(text.contains("since "), "{text}");
    assert_eq!(cli.json(&["lane", "resume", "held"])["changed"], true);
    let (code, err) = cli.fails(&["replay", &id]);
    assert_eq!(code, 4, "a waiting execution is not replayed: {err}");
    cli.ok(&["cancel", &id]);
    let text = cli.ok(&["replay", &id]);
    assert!(
        text.contains("is waiting again: attempt 1 is next"),
        "{text}"
    );
    let (code, err) = cli.fails(&["pause", "not-an-id"]);
    assert_eq!(code, 2, "{err}");
}

/// `baton list` with several states, time ranges and `--key`.
#[test]
fn list_filters_by_states_times_and_key() {
    let cli = Cli::new();
    let keyed = cli.json(&[
        "submit",
        "job",
        "--lane",
        "fl",
        "--idempotency-key",
        "order-9",
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = cli.json(&["submit", "job", "--lane", "fl"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    cli.ok(&["cancel", &other]);
    let count = |args: &[&str]| {
        let mut all = vec!["list", "--lane", "fl"];
        all.extend_from_slice(args);
        cli.json(&all)["items"].as_array().unwrap().len()
    };
    assert_eq!(count(&["--state", "waiting,cancelled"]), 2);
    assert_eq!(count(&["--state", "cancelled"]), 1);
    assert_eq!(count(&["--key", "order-9"]), 1);
    assert_eq!(count(&["--created-after", "1h"]), 2);
    assert_eq!(count(&["--created-before", "1h"]), 0);
    assert_eq!(count(&["--finished-after", "2000-01-01T00:00:00Z"]), 1);
    let listed = cli.json(&["list", "--key", "order-9"]);
    assert_eq!(listed["items"][0]["id"], keyed.as_str());
    let (code, err) = cli.fails(&["list", "--created-after", "soon"]);
    assert_eq!(code, 2, "{err}");
}

/// `baton serve --retention` takes a duration of at least a second.
#[test]
fn serve_refuses_a_retention_under_a_second() {
    let cli = Cli::new();
    let (code, err) = cli.fails(&["serve", "--retention", "0s", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("shorter than a second"), "{err}");
    let (code, err) = cli.fails(&["serve", "--retention", "soon", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, 2, "{err}");
}

/// `baton cancel` and `baton replay` by filter: a dry run counts, a run
/// without a terminal needs --yes, then every match is worked through.
#[test]
fn cancel_and_replay_by_filter() {
    let cli = Cli::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            cli.json(&["submit", "job", "--lane", "bk"])["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    cli.ok(&["submit", "job", "--lane", "untouched"]);
    cli.ok(&["cancel", &ids[0]]);
    let text = cli.ok(&["cancel", "--lane", "bk", "--dry-run"]);
    assert!(
        text.contains("would change 2 of the 3 matching executions"),
        "{text}"
    );
    let (code, err) = cli.fails(&["cancel", "--lane", "bk"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--yes"), "{err}");
    let (code, err) = cli.fails(&["cancel"]);
    assert_eq!(code, 2, "no id, no filter: {err}");
    let (code, err) = cli.fails(&["cancel", &ids[1], "--dry-run"]);
    assert_eq!(
        code, 2,
        "an id with bulk flags is refused, never acted on: {err}"
    );
    assert_eq!(cli.json(&["describe", &ids[1]])["state"], "waiting");
    let (code, err) = cli.fails(&["cancel", "--state", "", "--yes"]);
    assert_eq!(code, 2, "an empty state list is not every state: {err}");
    assert_eq!(
        cli.json(&["list", "--lane", "bk", "--created-after", "7d"])["items"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "days are a unit"
    );
    let text = cli.ok(&["cancel", "--lane", "bk", "--yes", "--reason", "cleanup"]);
    assert!(text.contains("2 changed, 1 skipped, of 3"), "{text}");
    let snap = cli.json(&["describe", &ids[2]]);
    assert_eq!(snap["cancel_reason"], "cleanup");
    let untouched = cli.json(&["list", "--lane", "untouched", "--state", "waiting"]);
    assert_eq!(untouched["items"].as_array().unwrap().len(), 1);
    let out = cli.json(&["replay", "--lane", "bk", "--state", "cancelled", "--yes"]);
    assert_eq!(
        (out["matched"].clone(), out["changed"].clone()),
        (serde_json::json!(3), serde_json::json!(3))
    );
    let waiting = cli.json(&["list", "--lane", "bk", "--state", "waiting"]);
    assert_eq!(waiting["items"].as_array().unwrap().len(), 3);
}

/// `baton delete ID [--force]` and `baton purge` by filter: a finished
/// execution goes, an unfinished one needs --force, a purge previews,
/// needs --yes without a terminal and skips unfinished work unless --force.
#[test]
fn delete_and_purge() {
    let cli = Cli::new();
    let id = |v: serde_json::Value| v["id"].as_str().unwrap().to_owned();
    let waiting = id(cli.json(&["submit", "job", "--lane", "del"]));
    let (code, err) = cli.fails(&["delete", &waiting]);
    assert_eq!(code, 4, "an unfinished execution needs --force: {err}");
    assert!(err.contains("force"), "{err}");
    let text = cli.ok(&["delete", &waiting, "--force"]);
    assert!(text.contains("cancelled and deleted"), "{text}");
    let (code, _) = cli.fails(&["describe", &waiting]);
    assert_eq!(code, 3, "a deleted execution is not found");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(id(cli.json(&["submit", "job", "--lane", "old"])));
    }
    cli.ok(&["submit", "job", "--lane", "keep"]);
    cli.ok(&["cancel", &ids[0]]);
    cli.ok(&["cancel", &ids[1]]);
    let out = cli.json(&["delete", &ids[0]]);
    assert_eq!(
        (out["deleted"].clone(), out["cancelled"].clone()),
        (serde_json::json!(1), serde_json::json!(false))
    );
    let text = cli.ok(&["purge", "--lane", "old", "--dry-run"]);
    assert!(
        text.contains("would change 1 of the 2 matching executions"),
        "{text}"
    );
    let (code, err) = cli.fails(&["purge", "--lane", "old"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--yes"), "{err}");
    let (code, err) = cli.fails(&["purge", "--yes"]);
    assert_eq!(code, 2, "no filter: {err}");
    let text = cli.ok(&["purge", "--lane", "old", "--yes"]);
    assert!(text.contains("1 changed, 1 skipped, of 2"), "{text}");
    let out = cli.json(&["purge", "--lane", "old", "--yes", "--force"]);
    assert_eq!(
        (out["matched"].clone(), out["changed"].clone()),
        (serde_json::json!(1), serde_json::json!(1))
    );
    assert_eq!(
        cli.json(&["list", "--lane", "old"])["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        cli.json(&["list", "--lane", "keep"])["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// `baton retention set|list|remove`: rules as a table and as JSON, a
/// replaced keep named, bad input refused with a hint.
#[test]
fn retention_rules_are_set_listed_and_removed() {
    let cli = Cli::new();
    assert!(
        cli.ok(&["retention", "list"])
            .contains("no retention rules"),
        "none at first"
    );
    assert!(
        cli.ok(&["retention", "set", "shop", "30d"])
            .contains("namespace shop keeps finished executions 30d")
    );
    let out = cli.ok(&["retention", "set", "shop", "36h"]);
    assert!(out.contains("36h (was 30d)"), "{out}");
    let out = cli.json(&["retention", "set", "shop", "90m", "--lane", "mail"]);
    assert_eq!(
        out,
        serde_json::json!({"namespace": "shop", "lane": "mail", "keep_ms": 5_400_000, "previous_ms": null})
    );
    let table = cli.ok(&["retention", "list"]);
    for word in ["NAMESPACE", "LANE", "KEEP", "(all)", "36h", "mail", "90m"] {
        assert!(table.contains(word), "{word} in {table}");
    }
    let list = cli.json(&["retention", "list"]);
    assert_eq!(
        list["items"],
        serde_json::json!([
            {"namespace": "shop", "lane": null, "keep": "36h", "keep_ms": 129_600_000},
            {"namespace": "shop", "lane": "mail", "keep": "90m", "keep_ms": 5_400_000},
        ])
    );
    let (_, err) = cli.fails(&["retention", "set", "shop", "3 weeks"]);
    assert!(err.contains("use ms, s, m, h or d"), "{err}");
    let (_, err) = cli.fails(&["retention", "set", "shop", "500ms"]);
    assert!(err.contains("between 1s and 36500d"), "{err}");
    let out = cli.ok(&["retention", "remove", "shop", "--lane", "mail"]);
    assert!(
        out.contains("removed the rule of lane mail of shop (it kept 90m)"),
        "{out}"
    );
    assert!(
        cli.ok(&["retention", "remove", "shop", "--lane", "mail"])
            .contains("had no retention rule")
    );
    assert_eq!(
        cli.json(&["retention", "remove", "shop"])["previous_ms"],
        129_600_000
    );
    assert_eq!(
        cli.json(&["retention", "list"])["items"],
        serde_json::json!([])
    );
}

/// `baton limit set|list|usage|rm`: limits as a table and as JSON, a
/// replaced limit named, claims held at the cap, bad input refused with a
/// hint.
#[test]
fn limits_are_set_listed_used_and_removed() {
    let cli = Cli::new();
    assert!(
        cli.ok(&["limit", "list"]).contains("no limits"),
        "none at first"
    );
    let out = cli.ok(&[
        "limit",
        "set",
        "tenants",
        "--key",
        "tag:tenant",
        "--max-running",
        "1",
    ]);
    assert!(
        out.contains("limit tenants on namespace default, per tag:tenant: at most 1 running"),
        "{out}"
    );
    let out = cli.ok(&[
        "limit",
        "set",
        "tenants",
        "--key",
        "tag:tenant",
        "--max-running",
        "1",
        "--rate",
        "5/1s",
    ]);
    assert!(out.contains("at most 5 claims per 1s (was:"), "{out}");
    let table = cli.ok(&["limit", "list"]);
    for word in [
        "NAME",
        "MAX RUNNING",
        "RATE",
        "tenants",
        "tag:tenant",
        "(all)",
        "5/1s",
    ] {
        assert!(table.contains(word), "{word} in {table}");
    }
    assert_eq!(
        cli.json(&["limit", "list", "--namespace", "default"])["items"],
        serde_json::json!([{"name": "tenants", "namespace": "default", "lane": null,
            "key": "tag:tenant", "max_running": 1, "rate": {"count": 5, "per_ms": 1000},
            "fair": false}])
    );
    for _ in 0..2 {
        cli.ok(&["submit", "job", "--lane", "capped", "--tag", "tenant=acme"]);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use baton_core::{ClaimRequest, EngineBackend, Lane, Namespace, WorkerId};
        let (b, _claim) = cli.claim_one("capped", "w").await;
        let request = ClaimRequest::new(
            Namespace::new("default").unwrap(),
            Lane::new("capped").unwrap(),
            WorkerId::new("w").unwrap(),
            5,
        );
        assert_eq!(
            b.claim(request).await.unwrap().len(),
            0,
            "the cap of 1 holds"
        );
        b.close().await;
    });
    let usage = cli.ok(&["limit", "usage", "tenants"]);
    for word in ["KEY", "RUNNING", "CLAIMS IN WINDOW", "acme"] {
        assert!(usage.contains(word), "{word} in {usage}");
    }
    assert_eq!(
        cli.json(&["limit", "usage", "tenants"])["items"],
        serde_json::json!([{"key_value": "acme", "running": 1, "window_claims": 1}])
    );
    let (_, err) = cli.fails(&["limit", "set", "x", "--key", "kind"]);
    assert!(err.contains("neither max_running nor rate"), "{err}");
    assert!(err.contains("fair"), "the hint names --fair too: {err}");
    // A fair-only limit: keys take turns; shown in the table and as JSON.
    let out = cli.ok(&["limit", "set", "turns", "--key", "kind", "--fair"]);
    assert!(
        out.contains("limit turns on namespace default, per kind: keys take turns"),
        "{out}"
    );
    let table = cli.ok(&["limit", "list"]);
    assert!(table.contains("FAIR") && table.contains("yes"), "{table}");
    assert_eq!(
        cli.json(&["limit", "list"])["items"][1]["fair"],
        serde_json::json!(true)
    );
    assert!(
        cli.ok(&["limit", "rm", "turns"])
            .contains("removed limit turns")
    );
    let (_, err) = cli.fails(&["limit", "set", "x", "--key", "kind", "--rate", "fast"]);
    assert!(err.contains("COUNT/WINDOW"), "{err}");
    let (_, err) = cli.fails(&["limit", "set", "x", "--key", "color", "--max-running", "1"]);
    assert!(err.contains("tag:<key>"), "{err}");
    assert!(
        cli.ok(&["limit", "rm", "tenants"])
            .contains("removed limit tenants")
    );
    assert!(
        cli.ok(&["limit", "rm", "tenants"])
            .contains("nothing changed")
    );
    assert_eq!(cli.json(&["limit", "list"])["items"], serde_json::json!([]));
}

/// `baton events ID`: the history as a table, and as JSON.
#[test]
fn events_show_the_history() {
    let cli = Cli::new();
    assert!(cli.ok(&["history"]).contains("is off"), "off by default");
    assert!(
        cli.ok(&["history", "on"])
            .contains("is on for executions created from now on")
    );
    assert_eq!(cli.json(&["history", "show"])["enabled"], true);
    let id = cli.json(&["submit", "job"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    cli.ok(&["priority", &id, "9"]);
    cli.ok(&["cancel", &id, "--reason", "changed my mind"]);
    let text = cli.ok(&["events", &id]);
    for word in [
        "created",
        "priority_changed",
        "cancelled",
        "waiting -> cancelled",
        "changed my mind",
    ] {
        assert!(text.contains(word), "{word} in {text}");
    }
    let out = cli.json(&["events", &id]);
    let items = out["items"].as_array().unwrap();
    let names: Vec<_> = items.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["created", "priority_changed", "cancelled"]);
    assert_eq!(items[2]["detail"], "changed my mind");
    let later = cli.json(&["events", &id, "--after", "2"]);
    assert_eq!(later["items"].as_array().unwrap().len(), 1);
    // A bulk run leaves its audit event in each execution it changed.
    let bulk = cli.json(&["submit", "job", "--lane", "tidy"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    cli.ok(&["cancel", "--lane", "tidy", "--yes"]);
    let out = cli.json(&["events", &bulk]);
    let last = out["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event"], "audit", "{out}");
    assert!(
        last["detail"]
            .as_str()
            .unwrap()
            .starts_with("bulk cancel by cli:"),
        "{out}"
    );
}

/// `baton submit --session --version` reach the execution; `describe`
/// shows them; `workers` shows a worker's version range; a malformed
/// version is refused with exit code 2.
#[test]
fn sessions_and_versions_are_submitted_and_shown() {
    let cli = Cli::new();
    let id = cli.json(&[
        "submit",
        "chat",
        "--lane",
        "rooms",
        "--session",
        "room-7",
        "--version",
        "2.1",
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let snap = cli.json(&["describe", &id]);
    assert_eq!(
        (snap["session"].clone(), snap["version"].clone()),
        (serde_json::json!("room-7"), serde_json::json!("2.1"))
    );
    let text = cli.ok(&["describe", &id]);
    assert!(text.contains("room-7") && text.contains("2.1"), "{text}");
    let (code, err) = cli.fails(&["submit", "chat", "--version", "v2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("version"), "{err}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let claimed = rt.block_on(async {
        let (b, claim) = cli.claim_one("rooms", "room-worker").await;
        b.close().await;
        claim
    });
    assert_eq!(claimed.id.to_string(), id);
    assert_eq!(
        claimed.session.map(|s| s.to_string()),
        Some("room-7".into())
    );
    let text = cli.ok(&["workers"]);
    assert!(text.contains("VERSIONS") && text.contains("any"), "{text}");
}
