//! `baton serve` end to end: the real binary on a fresh SQLite file, on a
//! fresh Postgres schema, on a fresh key prefix of Valkey 9 and of the
//! three-node Valkey Cluster, and a free loopback port, spoken to over plain
//! HTTP/1.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpStream;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::server::{Server, encoded};

/// The backend a test's server runs on.
#[derive(Clone, Debug)]
enum Bk {
    Sqlite,
    /// A URL naming a fresh schema of the test kit's Postgres server.
    Postgres(String),
    /// A `redis://` or `redis+cluster://` URL with a fresh key prefix.
    Valkey(String),
}

impl Bk {
    /// A fresh Postgres schema, or `None` (the test skips loudly) when no
    /// server can be started outside CI.
    fn postgres() -> Option<Bk> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let server = rt.block_on(baton_testkit::servers::postgres())?;
        let schema = baton_testkit::servers::PostgresServer::unique_schema();
        Some(Bk::Postgres(server.schema_url(&schema)))
    }

    /// A fresh key prefix on the test kit's Valkey 9 server (`cluster`:
    /// its three-node cluster), or `None` (the test skips loudly).
    fn valkey(cluster: bool) -> Option<Bk> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let server = if cluster {
            rt.block_on(baton_testkit::servers::valkey_cluster())?
        } else {
            rt.block_on(baton_testkit::servers::valkey())?
        };
        let prefix = baton_testkit::servers::RedisServer::unique_prefix();
        Some(Bk::Valkey(format!("{}?prefix={prefix}", server.url())))
    }
}

/// Every test below runs once per backend: `sqlite::<name>`,
/// `postgres::<name>`, `valkey::<name>` and `valkey_cluster::<name>`.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(super::Bk::Sqlite);
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    if let Some(b) = super::Bk::postgres() {
                        super::$name(b);
                    }
                }
            )*
        }
        mod valkey {
            $(
                #[test]
                fn $name() {
                    if let Some(b) = super::Bk::valkey(false) {
                        super::$name(b);
                    }
                }
            )*
        }
        mod valkey_cluster {
            $(
                #[test]
                fn $name() {
                    if let Some(b) = super::Bk::valkey(true) {
                        super::$name(b);
                    }
                }
            )*
        }
    };
}

on_every_backend!(
    health_and_openapi_describe_the_server,
    submit_describe_list_and_stats,
    worker_protocol_claim_renew_complete,
    failures_retry_with_backoff_or_fail_for_good,
    errors_use_the_contract_codes,
    a_bearer_token_guards_every_route_but_healthz,
    a_waiting_claim_gets_work_submitted_after_it,
    an_unrenewed_lease_is_reclaimed_by_the_scheduler,
    metrics_count_what_happened,
    sigterm_ends_waiting_claims_and_exits_cleanly,
    payloads_and_results_come_back_as_sent,
    text_with_nul_is_refused,
    a_tag_key_with_a_colon_can_be_filtered,
    an_http_worker_runs_a_fan_out_fan_in_flow,
    an_http_worker_runs_a_dag_with_upstream_results,
    an_http_worker_suspends_and_a_waitpoint_token_resumes_it,
    an_http_worker_replays_its_steps,
    status_progress_and_state_over_http_with_woken_long_polls,
    operators_edit_priority_and_tags_revoke_and_list_workers,
    operators_pause_resume_and_replay_executions_and_pause_lanes,
    lists_filter_by_several_states_times_and_key_and_describe_many,
    serve_trims_finished_work_after_its_retention,
    bulk_cancel_and_replay_over_http,
    delete_and_bulk_delete_over_http,
    the_history_of_an_execution_over_http,
    retention_rules_over_http,
    limits_over_http,
    sessions_and_versions_over_http,
);

impl Server {
    fn start(b: &Bk) -> Server {
        Server::start_with(b, &[])
    }

    /// Starts `baton serve --listen 127.0.0.1:0` on `b` with `env` added
    /// (see [`Server::launch`]).
    fn start_with(b: &Bk, env: &[(&str, &str)]) -> Server {
        match b {
            Bk::Sqlite => Server::launch(None, env),
            Bk::Postgres(url) | Bk::Valkey(url) => Server::launch(Some(url), env),
        }
    }
}

fn claim_one(s: &Server, lane: &str, extra: Value) -> (String, String) {
    let mut body = json!({"worker_id": "w1"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let claims = s.claim(lane, body);
    assert_eq!(claims.len(), 1, "{claims:?}");
    (
        claims[0]["id"].as_str().unwrap().to_owned(),
        claims[0]["lease"]["token"].as_str().unwrap().to_owned(),
    )
}

fn health_and_openapi_describe_the_server(b: Bk) {
    let s = Server::start(&b);
    let h = s.get("/healthz").json();
    assert_eq!(h["status"], "ok");
    let kind = match b {
        Bk::Sqlite => "sqlite",
        Bk::Postgres(_) => "postgres",
        Bk::Valkey(_) => "valkey",
    };
    assert_eq!(h["backend"], kind);

    let a = s.get("/v1/openapi.json");
    assert_eq!(a.status, 200);
    assert!(
        a.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let doc = a.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/executions", "post"),
        ("/v1/executions", "get"),
        ("/v1/executions/batch", "post"),
        ("/v1/executions/{id}", "get"),
        ("/v1/executions/{id}/cancel", "post"),
        ("/v1/executions/{id}/children", "get"),
        ("/v1/executions/{id}/tree", "get"),
        ("/v1/executions/{id}/complete", "post"),
        ("/v1/executions/{id}/fail", "post"),
        ("/v1/lanes/{lane}/claim", "post"),
        ("/v1/leases/renew", "post"),
        ("/v1/stats", "get"),
        ("/healthz", "get"),
        ("/metrics", "get"),
        ("/v1/openapi.json", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "openapi.json lacks {method} {path}"
        );
    }
}

fn submit_describe_list_and_stats(b: Bk) {
    let s = Server::start(&b);

    // Defaults of a submission with only a kind.
    let a = s.post(
        "/v1/executions",
        json!({"kind": "email.send", "payload": {"to": "ada"}}),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let created = a.json();
    assert_eq!(created["state"], "waiting");
    assert_eq!(created["created"], true);
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("{p:"), "{id}");
    let snap = s.describe(&id);
    assert_eq!(snap["namespace"], "default");
    assert_eq!(snap["lane"], "default");
    assert_eq!(snap["kind"], "email.send");
    assert_eq!(snap["priority"], 0);
    assert_eq!(snap["payload"], json!({"to": "ada"}));
    assert_eq!(snap["attempts"], 0);
    assert_eq!(snap["max_attempts"], 3);
    assert_eq!(
        snap["backoff"],
        json!({"initial_ms": 1000, "max_ms": 60000, "multiplier": 2.0, "jitter": true})
    );
    assert_eq!(snap["result"], Value::Null);
    assert_eq!(snap["attempt_history"], json!([]));
    for key in [
        "created_at",
        "updated_at",
        "run_at",
        "deadline",
        "last_error",
        "cancel_reason",
        "tags",
    ] {
        assert!(snap.get(key).is_some(), "snapshot lacks {key}");
    }
    // The id works raw and percent-encoded.
    let same = s.get(&format!("/v1/executions/{}", encoded(&id)));
    assert_eq!(same.status, 200, "{}", same.body);
    assert_eq!(same.json()["id"], id.as_str());

    // Idempotency: the second submission answers the first id with 200.
    let first = s.post(
        "/v1/executions",
        json!({"kind": "report", "lane": "reports", "idempotency_key": "r-1"}),
    );
    assert_eq!(first.status, 201);
    let again = s.post(
        "/v1/executions",
        json!({"kind": "report", "lane": "reports", "idempotency_key": "r-1"}),
    );
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["created"], false);
    assert_eq!(again.json()["id"], first.json()["id"]);

    // A delay makes it delayed; run_at and deadline round-trip as RFC 3339.
    let delayed = s.ok(
        "/v1/executions",
        json!({"kind": "report", "lane": "reports", "delay_ms": 600000,
               "deadline": "2999-01-01T00:00:00Z", "priority": 7,
               "tags": {"customer": "42"}}),
    );
    assert_eq!(delayed["state"], "delayed");
    let d = s.describe(delayed["id"].as_str().unwrap());
    assert_eq!(d["deadline"], "2999-01-01T00:00:00.000Z");
    assert!(d["run_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(d["priority"], 7);
    assert_eq!(d["tags"], json!({"customer": "42"}));

    // A batch answers in request order.
    let batch = s.post(
        "/v1/executions/batch",
        json!({"executions": [
            {"kind": "a", "lane": "bulk"},
            {"kind": "b", "lane": "bulk", "tags": {"customer": "42"}},
            {"kind": "report", "lane": "reports", "idempotency_key": "r-1"},
            {"kind": "c", "lane": "bulk", "payload": [1, 2, 3]}
        ]}),
    );
    assert_eq!(batch.status, 201, "{}", batch.body);
    let results = batch.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 4);
    assert_eq!(
        results
            .iter()
            .map(|r| r["created"].clone())
            .collect::<Vec<_>>(),
        [json!(true), json!(true), json!(false), json!(true)]
    );
    assert_eq!(results[2]["id"], first.json()["id"]);

    // Walking the cursor with a small page visits everything exactly once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/executions?limit=2&cursor={c}"),
            None => "/v1/executions?limit=2".to_owned(),
        };
        let page = s.get(&path);
        assert_eq!(page.status, 200, "{}", page.body);
        let page = page.json();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 20, "the cursor walk does not end");
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert_eq!(unique.len(), 6, "{seen:?}");

    // Filters.
    let ids = |path: &str| -> usize {
        let a = s.get(path);
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        a.json()["items"].as_array().unwrap().len()
    };
    assert_eq!(ids("/v1/executions?lane=bulk"), 3);
    assert_eq!(ids("/v1/executions?state=delayed"), 1);
    assert_eq!(ids("/v1/executions?kind=report"), 2);
    assert_eq!(ids("/v1/executions?tag=customer:42"), 2);
    assert_eq!(ids("/v1/executions?namespace=other"), 0);

    // Stats per lane, every state present.
    let stats = s.get("/v1/stats").json();
    assert_eq!(stats["lanes"]["bulk"]["waiting"], 3);
    assert_eq!(stats["lanes"]["reports"]["waiting"], 1);
    assert_eq!(stats["lanes"]["reports"]["delayed"], 1);
    assert_eq!(stats["lanes"]["default"]["expired"], 0);
    assert_eq!(
        s.get("/v1/stats?namespace=other").json(),
        json!({"lanes": {}})
    );
}

fn worker_protocol_claim_renew_complete(b: Bk) {
    let s = Server::start(&b);
    let id = s.submit(json!({"kind": "email.send", "lane": "emails", "payload": {"n": 1}}));

    let claims = s.claim(
        "emails",
        json!({"worker_id": "w1", "max": 5, "lease_ms": 30000}),
    );
    assert_eq!(claims.len(), 1);
    let c = &claims[0];
    assert_eq!(c["id"], id.as_str());
    assert_eq!(c["kind"], "email.send");
    assert_eq!(c["payload"], json!({"n": 1}));
    assert_eq!(c["attempt"], 1);
    let lease = c["lease"]["token"].as_str().unwrap().to_owned();
    assert!(c["lease"]["expires_at"].as_str().is_some());
    assert_eq!(s.describe(&id)["state"], "running");
    // Nothing left to claim.
    assert!(s.claim("emails", json!({"worker_id": "w2"})).is_empty());

    // One renew call, the real lease and a malformed one.
    let renewed = s.ok(
        "/v1/leases/renew",
        json!({"worker_id": "w1", "lease_ms": 60000, "leases": [lease, "not-a-lease"]}),
    );
    let leases = renewed["leases"].as_array().unwrap();
    assert_eq!(leases[0]["token"], lease.as_str());
    assert_eq!(leases[0]["status"], "renewed");
    assert!(leases[0]["expires_at"].as_str().is_some());
    assert_eq!(leases[1]["status"], "lost");
    assert_eq!(leases[1]["expires_at"], Value::Null);

    let done = s.ok(
        &format!("/v1/executions/{id}/complete"),
        json!({"lease": lease, "result": {"sent": true}}),
    );
    assert_eq!(done["state"], "completed");
    assert_eq!(done["result"], json!({"sent": true}));
    let snap = s.describe(&id);
    assert_eq!(snap["state"], "completed");
    assert_eq!(snap["attempts"], 1);
    assert_eq!(snap["attempt_history"][0]["outcome"], "completed");
    assert_eq!(snap["attempt_history"][0]["worker_id"], "w1");

    // Replaying the same completion is harmless; a different result is a conflict.
    let replay = s.post(
        &format!("/v1/executions/{}/complete", encoded(&id)),
        json!({"lease": lease, "result": {"sent": true}}),
    );
    assert_eq!(replay.status, 200, "{}", replay.body);
    s.post(
        &format!("/v1/executions/{id}/complete"),
        json!({"lease": lease, "result": "other"}),
    )
    .error(409, "conflict");
    // Cancelling a completed execution contradicts it.
    s.post(
        &format!("/v1/executions/{id}/cancel"),
        json!({"reason": "too late"}),
    )
    .error(409, "conflict");
}

/// A flow driven by a worker that only speaks HTTP: the parent's first
/// attempt submits children (child keys), hands its lease back with
/// `wait-children` (blocked, with a readable `waiting_on`), the children run
/// and complete, the last one releases the parent, whose second attempt
/// reads its children and completes; the tree shows the whole flow; a
/// second flow is cancelled with its tree.
fn an_http_worker_runs_a_fan_out_fan_in_flow(b: Bk) {
    let s = Server::start(&b);
    let parent = s.submit(json!({"kind": "join", "lane": "flow", "payload": 3}));
    let (id, lease) = claim_one(&s, "flow", json!({}));
    assert_eq!(id, parent);
    for i in 0..3 {
        let child = json!({"kind": "part", "lane": "flow", "parent": parent,
            "child_key": format!("part-{i}"), "payload": i});
        s.submit(child.clone());
        // A retried submission of the same child creates nothing.
        let again = s.post("/v1/executions", child);
        assert_eq!(again.status, 200, "{}", again.body);
        assert_eq!(again.json()["created"], false);
    }
    let blocked = s.ok(
        &format!("/v1/executions/{}/wait-children", encoded(&parent)),
        json!({"lease": lease}),
    );
    assert_eq!(blocked["state"], "blocked");
    assert_eq!(blocked["waiting_on"]["reason"], "children");
    assert_eq!(blocked["waiting_on"]["children"], 3);
    assert!(
        blocked["waiting_on"]["detail"]
            .as_str()
            .unwrap()
            .contains('3')
    );
    // The old lease is dead; the parent is not claimable while blocked.
    s.post(
        &format!("/v1/executions/{}/complete", encoded(&parent)),
        json!({"lease": lease}),
    )
    .error(409, "lease_lost");
    let claims = s.claim("flow", json!({"worker_id": "w1", "max": 10}));
    assert_eq!(claims.len(), 3, "only the children: {claims:?}");
    for c in &claims {
        assert_eq!(c["kind"], "part");
        let n = c["payload"].as_i64().unwrap();
        s.ok(
            &format!(
                "/v1/executions/{}/complete",
                encoded(c["id"].as_str().unwrap())
            ),
            json!({"lease": c["lease"]["token"], "result": n * 10}),
        );
    }
    assert_eq!(s.describe(&parent)["state"], "waiting");
    let (again, lease) = claim_one(&s, "flow", json!({}));
    assert_eq!(again, parent);
    let kids = s.get(&format!("/v1/executions/{}/children", encoded(&parent)));
    assert_eq!(kids.status, 200, "{}", kids.body);
    let sum: i64 = kids.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["result"].as_i64().unwrap())
        .sum();
    assert_eq!(sum, 30);
    let done = s.ok(
        &format!("/v1/executions/{}/complete", encoded(&parent)),
        json!({"lease": lease, "result": sum}),
    );
    assert_eq!(done["state"], "completed");
    assert_eq!(done["attempts"], 2);
    let snap = s.describe(&parent);
    let outcomes: Vec<&str> = snap["attempt_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["released", "completed"]);
    let tree = s.get(&format!("/v1/executions/{}/tree", encoded(&parent)));
    let tree = tree.json();
    assert_eq!(tree["root"], parent.as_str());
    assert_eq!(tree["items"].as_array().unwrap().len(), 4);
    assert_eq!(tree["truncated"], false);

    // Cancel reaches a whole tree.
    let root = s.submit(json!({"kind": "join", "lane": "idle"}));
    for _ in 0..2 {
        s.submit(json!({"kind": "part", "lane": "idle", "parent": root}));
    }
    let out = s.ok(
        &format!("/v1/executions/{}/cancel", encoded(&root)),
        json!({"reason": "stop"}),
    );
    assert_eq!(out["state"], "cancelled");
    assert_eq!(out["cascaded"], 2);
}

/// Dependencies over HTTP: a `quorum` join is `blocked` with a readable
/// `waiting_on` until two of its three upstreams complete, and its claim
/// carries every upstream's outcome; an `all_of` dependent of the one that
/// failed is `skipped` and counted as such; bad dependencies are refused
/// with the field they name.
fn an_http_worker_runs_a_dag_with_upstream_results(b: Bk) {
    let s = Server::start(&b);
    let root = s.submit(json!({"kind": "dag", "lane": "idle"}));
    let ups: Vec<String> = (0..3)
        .map(|i| s.submit(json!({"kind": "part", "lane": "dag", "parent": root, "payload": i})))
        .collect();
    let join = s.post(
        "/v1/executions",
        json!({"kind": "join", "lane": "dag", "parent": root, "depends_on": ups,
            "dependency_policy": {"mode": "quorum", "k": 2, "on_upstream_failure": "fail"}}),
    );
    assert_eq!(join.status, 201, "{}", join.body);
    assert_eq!(join.json()["state"], "blocked");
    let join = join.json()["id"].as_str().unwrap().to_owned();
    let strict = s.submit(json!({"kind": "strict", "lane": "dag", "parent": root,
        "depends_on": [ups[2]]}));
    let snap = s.describe(&join);
    assert_eq!(snap["waiting_on"]["reason"], "dependencies");
    assert_eq!(snap["waiting_on"]["dependencies"], 3);
    let bad = [
        (
            json!({"kind": "x", "parent": root, "depends_on": [root, root]}),
            "depends_on",
        ),
        (json!({"kind": "x", "depends_on": [ups[0]]}), "depends_on"),
        (
            json!({"kind": "x", "parent": root, "depends_on": [ups[0]],
                "dependency_policy": {"mode": "quorum"}}),
            "dependency_policy.k",
        ),
    ];
    for (body, field) in bad {
        let a = s.post("/v1/executions", body.clone());
        let message = a.error(400, "invalid_input");
        assert_eq!(a.json()["error"]["field"], field, "{body}: {message}");
    }
    let claims = s.claim("dag", json!({"worker_id": "w1", "max": 10}));
    assert_eq!(claims.len(), 3, "only the upstreams: {claims:?}");
    for c in &claims {
        assert!(c.get("upstream").is_none(), "no dependencies: {c}");
        let n = c["payload"].as_i64().unwrap();
        let id = encoded(c["id"].as_str().unwrap());
        if n == 2 {
            s.ok(
                &format!("/v1/executions/{id}/fail"),
                json!({"lease": c["lease"]["token"], "error": "no", "retryable": false}),
            );
        } else {
            s.ok(
                &format!("/v1/executions/{id}/complete"),
                json!({"lease": c["lease"]["token"], "result": {"n": n}}),
            );
        }
    }
    assert_eq!(s.describe(&strict)["state"], "skipped");
    let claims = s.claim("dag", json!({"worker_id": "w1", "max": 10}));
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert_eq!(claims[0]["id"], join.as_str());
    let upstream = &claims[0]["upstream"];
    assert_eq!(
        upstream[&ups[0]],
        json!({"state": "completed", "result": {"n": 0}})
    );
    assert_eq!(
        upstream[&ups[1]],
        json!({"state": "completed", "result": {"n": 1}})
    );
    assert_eq!(
        upstream[&ups[2]],
        json!({"state": "failed", "result": null})
    );
    let stats = s.get("/v1/stats").json();
    let text = stats.to_string();
    assert!(text.contains("\"skipped\":1"), "{text}");
}

fn failures_retry_with_backoff_or_fail_for_good(b: Bk) {
    let s = Server::start(&b);
    let slow = json!({"initial_ms": 600000, "max_ms": 600000, "jitter": false});
    let id = s.submit(json!({"kind": "k", "lane": "jobs", "backoff": slow}));
    let (claimed, lease) = claim_one(&s, "jobs", json!({}));
    assert_eq!(claimed, id);
    let snap = s.ok(
        &format!("/v1/executions/{id}/fail"),
        json!({"lease": lease, "error": "smtp timeout", "retryable": true}),
    );
    assert_eq!(snap["state"], "delayed");
    assert_eq!(snap["attempts"], 1);
    assert_eq!(snap["last_error"], "smtp timeout");
    // run_at is the backoff (600 s, no jitter) after the failure.
    let run_at = snap["run_at"].as_str().unwrap();
    let updated = snap["updated_at"].as_str().unwrap();
    assert!(run_at > updated, "run_at {run_at} not after {updated}");
    let history = s.describe(&id)["attempt_history"].clone();
    assert_eq!(history[0]["outcome"], "failed");
    assert_eq!(history[0]["error"], "smtp timeout");
    // A replay of the same failure answers the snapshot unchanged.
    let replay = s.ok(
        &format!("/v1/executions/{id}/fail"),
        json!({"lease": lease, "error": "smtp timeout"}),
    );
    assert_eq!(replay["state"], "delayed");

    let id = s.submit(json!({"kind": "k", "lane": "jobs", "max_attempts": 5}));
    let (_, lease) = claim_one(&s, "jobs", json!({}));
    let snap = s.ok(
        &format!("/v1/executions/{id}/fail"),
        json!({"lease": lease, "error": "bad address", "retryable": false}),
    );
    assert_eq!(snap["state"], "failed");
    assert_eq!(snap["last_error"], "bad address");

    // Zero backoff retries at once: waiting again, and claimable.
    let id = s.submit(json!({"kind": "k", "lane": "now",
        "backoff": {"initial_ms": 0, "max_ms": 0, "multiplier": 1.0, "jitter": false}}));
    let (_, lease) = claim_one(&s, "now", json!({}));
    let snap = s.ok(
        &format!("/v1/executions/{id}/fail"),
        json!({"lease": lease, "error": "flaky"}),
    );
    assert_eq!(snap["state"], "waiting");
    let claims = s.claim("now", json!({"worker_id": "w2"}));
    assert_eq!(claims[0]["attempt"], 2);
}

fn errors_use_the_contract_codes(b: Bk) {
    let s = Server::start(&b);
    let id = s.submit(json!({"kind": "k"}));

    // 400: malformed JSON, a bad field, a negative delay, a malformed id.
    let a = s
        .try_request("POST", "/v1/executions", Some(b"{\"kind\": "), &[])
        .unwrap();
    let m = a.error(400, "invalid_input");
    assert!(m.contains("JSON"), "{m}");
    let m = s
        .post("/v1/executions", json!({"kind": "k", "lane": "no spaces"}))
        .error(400, "invalid_input");
    assert!(m.contains("lane"), "{m}");
    let m = s
        .post("/v1/executions", json!({"kind": "k", "delay_ms": -5}))
        .error(400, "invalid_input");
    assert!(m.contains("delay_ms"), "{m}");
    let m = s
        .post("/v1/executions", json!({"lane": "x"}))
        .error(400, "invalid_input");
    assert!(m.contains("kind"), "{m}");
    let m = s
        .post("/v1/executions", json!({"kind": "k", "priorty": 1}))
        .error(400, "invalid_input");
    assert!(m.contains("priorty"), "{m}");
    let m = s
        .post(
            "/v1/executions/batch",
            json!({"executions": [{"kind": "k"}, {"kind": "k", "max_attempts": 0}]}),
        )
        .error(400, "invalid_input");
    assert!(m.contains("max_attempts"), "{m}");
    let m = s.get("/v1/executions/nope").error(400, "invalid_input");
    assert!(m.contains("id"), "{m}");
    s.get("/v1/executions?limit=5000")
        .error(400, "invalid_input");
    s.get("/v1/executions?state=sleeping")
        .error(400, "invalid_input");
    s.post("/v1/lanes/bad%20lane/claim", json!({"worker_id": "w"}))
        .error(400, "invalid_input");
    s.post(
        "/v1/lanes/x/claim",
        json!({"worker_id": "w", "lease_ms": 5}),
    )
    .error(400, "invalid_input");
    // Nothing was written by any of the rejected calls.
    assert_eq!(
        s.get("/v1/executions").json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // 404: an unknown execution, an unknown route.
    let unknown = "{p:0}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071";
    let a = s.get(&format!("/v1/executions/{unknown}"));
    // The id may belong to another partition under this deployment's count.
    assert!(a.status == 404 || a.status == 400, "{}", a.body);
    // Same partition tag and hash (the hash reads the uuid's second half),
    // another creation time: well formed, never created.
    let other = s.submit(json!({"kind": "k", "lane": "tmp"}));
    let (tag, uuid) = other.split_once("}-").unwrap();
    let flipped = if uuid.starts_with('0') { '1' } else { '0' };
    let never = format!("{tag}}}-{flipped}{}", &uuid[1..]);
    let m = s
        .get(&format!("/v1/executions/{never}"))
        .error(404, "not_found");
    assert!(m.contains(&never), "{m}");
    s.post(&format!("/v1/executions/{never}/cancel"), json!({}))
        .error(404, "not_found");
    s.get("/v1/nothing-here").error(404, "not_found");
    s.request("DELETE", "/v1/stats", None)
        .error(405, "method_not_allowed");

    // 409 lease_lost: a lease of a cancelled execution.
    let (claimed, lease) = claim_one(&s, "default", json!({}));
    assert_eq!(claimed, id);
    let cancelled = s.ok(
        &format!("/v1/executions/{id}/cancel"),
        json!({"reason": "not needed"}),
    );
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(cancelled["cancel_reason"], "not needed");
    s.post(
        &format!("/v1/executions/{id}/complete"),
        json!({"lease": lease, "result": 1}),
    )
    .error(409, "lease_lost");
    s.post(
        &format!("/v1/executions/{id}/fail"),
        json!({"lease": lease, "error": "x"}),
    )
    .error(409, "lease_lost");
    // Cancelling again is a no-op that keeps the first reason; empty body allowed.
    let again = s.request("POST", &format!("/v1/executions/{id}/cancel"), None);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["cancel_reason"], "not needed");
    let renewed = s.ok(
        "/v1/leases/renew",
        json!({"worker_id": "w1", "leases": [lease]}),
    );
    assert_eq!(renewed["leases"][0]["status"], "cancelled");

    // A lease sent to another execution's URL.
    let other = s.submit(json!({"kind": "k", "lane": "pair"}));
    let (_, lease) = claim_one(&s, "pair", json!({}));
    let m = s
        .post(
            &format!("/v1/executions/{id}/complete"),
            json!({"lease": lease}),
        )
        .error(400, "invalid_input");
    assert!(m.contains(&other), "{m}");
    s.post(
        &format!("/v1/executions/{other}/complete"),
        json!({"lease": "garbage"}),
    )
    .error(400, "invalid_input");

    // Oversize: a payload over the backend's limit inside an acceptable body
    // is 400; a body over the server's limit is refused unread with 413.
    let big = "x".repeat(1024 * 1024 + 10);
    let m = s
        .post("/v1/executions", json!({"kind": "k", "payload": big}))
        .error(400, "invalid_input");
    assert!(m.contains("payload"), "{m}");
    let huge = vec![b' '; 3 * 1024 * 1024];
    let a = s
        .try_request(
            "POST",
            "/v1/executions",
            Some(&huge),
            &[("Expect", "100-continue")],
        )
        .unwrap();
    a.error(413, "invalid_input");
}

fn a_bearer_token_guards_every_route_but_healthz(b: Bk) {
    let s = Server::start_with(&b, &[("BATON_API_TOKEN", "s3cret")]);
    assert_eq!(s.get("/healthz").status, 200);
    for (method, path) in [
        ("GET", "/v1/stats"),
        ("GET", "/v1/executions"),
        ("POST", "/v1/executions"),
        ("GET", "/metrics"),
        ("GET", "/v1/openapi.json"),
    ] {
        let a = s.request(method, path, Some(&json!({"kind": "k"})));
        a.error(401, "unauthorized");
        assert!(a.header("www-authenticate").is_some());
    }
    let body = serde_json::to_vec(&json!({"kind": "k"})).unwrap();
    let wrong = s
        .try_request(
            "POST",
            "/v1/executions",
            Some(&body),
            &[("Authorization", "Bearer s3creT")],
        )
        .unwrap();
    wrong.error(401, "unauthorized");
    let right = s
        .try_request(
            "POST",
            "/v1/executions",
            Some(&body),
            &[("Authorization", "Bearer s3cret")],
        )
        .unwrap();
    assert_eq!(right.status, 201, "{}", right.body);
    // Nothing was created by the refused calls.
    let stats = s
        .try_request(
            "GET",
            "/v1/stats",
            None,
            &[("Authorization", "Bearer s3cret")],
        )
        .unwrap();
    assert_eq!(stats.json()["lanes"]["default"]["waiting"], 1);

    // Without a token configured, any or no Authorization header is fine.
    let open = Server::start(&b);
    assert_eq!(open.get("/v1/stats").status, 200);
    let a = open
        .try_request(
            "GET",
            "/v1/stats",
            None,
            &[("Authorization", "Bearer whatever")],
        )
        .unwrap();
    assert_eq!(a.status, 200);
}

fn a_waiting_claim_gets_work_submitted_after_it(b: Bk) {
    let s = Server::start(&b);
    let (tx, rx) = mpsc::channel();
    thread::scope(|scope| {
        scope.spawn(|| {
            let claims = s.claim(
                "inbox",
                json!({"worker_id": "w1", "wait_ms": 5000, "lease_ms": 30000}),
            );
            tx.send(claims).unwrap();
        });
        // Give the claim a head start so it is parked when the work arrives;
        // the assertion below holds either way.
        thread::sleep(Duration::from_millis(300));
        let id = s.submit(json!({"kind": "k", "lane": "inbox"}));
        let claims = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        assert_eq!(claims.len(), 1, "{claims:?}");
        assert_eq!(claims[0]["id"], id.as_str());
    });
    // With nothing to claim, a waiting claim answers empty.
    assert!(
        s.claim("inbox", json!({"worker_id": "w1", "wait_ms": 200}))
            .is_empty()
    );
}

fn an_unrenewed_lease_is_reclaimed_by_the_scheduler(b: Bk) {
    let s = Server::start(&b);
    let id = s.submit(json!({"kind": "k", "lane": "crashy"}));
    let (_, lease) = claim_one(&s, "crashy", json!({"lease_ms": 200, "worker_id": "ghost"}));
    // The worker "crashes": no renew. The scheduler reclaims the attempt.
    let start = Instant::now();
    let snap = loop {
        let snap = s.describe(&id);
        if snap["state"] == "waiting" || snap["state"] == "delayed" {
            break snap;
        }
        assert_eq!(snap["state"], "running", "{snap}");
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the lease was not reclaimed: {snap}"
        );
        thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(snap["attempts"], 1);
    let history = snap["attempt_history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["outcome"], "lease_expired");
    assert_eq!(history[0]["worker_id"], "ghost");
    // The old lease is dead for good.
    let renewed = s.ok(
        "/v1/leases/renew",
        json!({"worker_id": "ghost", "leases": [lease]}),
    );
    assert_eq!(renewed["leases"][0]["status"], "lost");
    s.post(
        &format!("/v1/executions/{id}/complete"),
        json!({"lease": lease, "result": null}),
    )
    .error(409, "lease_lost");
    let metrics = s.get("/metrics").body;
    let reclaimed = metrics
        .lines()
        .find_map(|l| l.strip_prefix("baton_executions_reclaimed_total "))
        .unwrap();
    assert!(reclaimed.parse::<u64>().unwrap() >= 1, "{metrics}");
}

fn metrics_count_what_happened(b: Bk) {
    let s = Server::start(&b);
    let id = s.submit(json!({"kind": "k", "lane": "m"}));
    s.submit(json!({"kind": "k", "lane": "m"}));
    s.submit(json!({"kind": "k", "lane": "m", "max_attempts": 1}));
    let (first, lease) = claim_one(&s, "m", json!({}));
    assert_eq!(first, id);
    s.ok(
        &format!("/v1/executions/{id}/complete"),
        json!({"lease": lease, "result": 1}),
    );
    let (second, lease) = claim_one(&s, "m", json!({}));
    s.ok(
        &format!("/v1/executions/{second}/fail"),
        json!({"lease": lease, "error": "again"}),
    );
    let (third, lease) = claim_one(&s, "m", json!({}));
    s.ok(
        &format!("/v1/executions/{third}/fail"),
        json!({"lease": lease, "error": "done"}),
    );

    let a = s.get("/metrics");
    assert_eq!(a.status, 200);
    assert!(a.header("content-type").unwrap().starts_with("text/plain"));
    let text = a.body;
    for line in [
        "baton_executions_submitted_total 3",
        "baton_executions_claimed_total 3",
        "baton_executions_completed_total 1",
        "baton_executions_retried_total 1",
        "baton_executions_failed_total 1",
        "baton_queue_depth{namespace=\"default\",lane=\"m\"} 0",
        "baton_executions{namespace=\"default\",lane=\"m\",state=\"completed\"} 1",
        "# TYPE baton_executions_reclaimed_total counter",
        "# TYPE baton_executions_promoted_total counter",
        "# TYPE baton_executions_expired_total counter",
        "# TYPE baton_executions_trimmed_total counter",
        "# TYPE baton_executions_cascaded_total counter",
        "# TYPE baton_http_request_duration_seconds histogram",
        "# TYPE baton_queue_oldest_waiting_age_seconds gauge",
    ] {
        assert!(text.contains(line), "/metrics lacks {line:?}:\n{text}");
    }
    assert!(
        text.lines().any(|l| l.starts_with(
            "baton_http_request_duration_seconds_count{route=\"/v1/executions\",method=\"POST\"}"
        )),
        "{text}"
    );
    // A namespace only another process wrote to has its gauges too.
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args([
            "--backend",
            &s.url,
            "submit",
            "k",
            "--namespace",
            "elsewhere",
            "--lane",
            "x",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = s.get("/metrics").body;
    assert!(
        text.contains("baton_queue_depth{namespace=\"elsewhere\",lane=\"x\"} 1"),
        "{text}"
    );
    // A waiting execution shows its age.
    s.submit(json!({"kind": "k", "lane": "m"}));
    let text = s.get("/metrics").body;
    assert!(
        text.contains("baton_queue_depth{namespace=\"default\",lane=\"m\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("baton_queue_oldest_waiting_age_seconds{namespace=\"default\",lane=\"m\"}"),
        "{text}"
    );
}

fn sigterm_ends_waiting_claims_and_exits_cleanly(b: Bk) {
    let mut s = Server::start(&b);
    let (tx, rx) = mpsc::channel();
    thread::scope(|scope| {
        let server = &s;
        scope.spawn(move || {
            let body = serde_json::to_vec(&json!({"worker_id": "w", "wait_ms": 60000})).unwrap();
            let a = server.try_request("POST", "/v1/lanes/idle/claim", Some(&body), &[]);
            tx.send(a.map(|a| (a.status, a.body))).unwrap();
        });
        // Let the claim start waiting; if the signal comes first, the claim
        // is refused instead and the assertion below says so.
        thread::sleep(Duration::from_millis(300));
        server.sigterm();
        let (status, body) = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap()
            .expect("the waiting claim got no answer");
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({"claims": []})
        );
    });
    let status = s.wait_exit();
    assert!(status.success(), "exit status {status:?}");
    // The listener is closed.
    assert!(TcpStream::connect(&s.addr).is_err());
}

/// The JSON text of `field` in a compact answer body, up to the next field.
fn raw_field<'a>(body: &'a str, field: &str, next: &str) -> &'a str {
    let start = body.find(&format!("\"{field}\":")).unwrap() + field.len() + 3;
    let end = body[start..].find(&format!(",\"{next}\":")).unwrap();
    &body[start..start + end]
}

fn payloads_and_results_come_back_as_sent(b: Bk) {
    let s = Server::start(&b);
    let deep = "[".repeat(100) + &"]".repeat(100);
    for text in [
        "123456789012345678901234567890",
        "-9223372036854775809",
        "1e400",
        "[1.7976931348623157e309]",
        "{\"a\": 1.50, \"b\": \"\\ud83d\\ude00\\u0000\"}",
        deep.as_str(),
    ] {
        let body = format!(r#"{{"kind": "k", "lane": "fid", "payload": {text}}}"#);
        let a = s
            .try_request("POST", "/v1/executions", Some(body.as_bytes()), &[])
            .unwrap();
        assert_eq!(a.status, 201, "{}", a.body);
        let a = s.post("/v1/lanes/fid/claim", json!({"worker_id": "w"}));
        assert_eq!(raw_field(&a.body, "payload", "attempt"), text);
        // Read as text: a generic JSON parser may refuse `1e400`.
        let id = encoded(raw_field(&a.body, "id", "namespace").trim_matches('"'));
        let lease = raw_field(&a.body, "token", "expires_at").trim_matches('"');
        let body = format!(r#"{{"lease": "{lease}", "result": {text}}}"#);
        let path = format!("/v1/executions/{id}/complete");
        let a = s
            .try_request("POST", &path, Some(body.as_bytes()), &[])
            .unwrap();
        assert_eq!(a.status, 200, "{}", a.body);
        let a = s.get(&format!("/v1/executions/{id}"));
        assert_eq!(raw_field(&a.body, "payload", "tags"), text);
        assert_eq!(raw_field(&a.body, "result", "last_error"), text);
    }
    let too_deep = "[".repeat(101) + &"]".repeat(101);
    for text in [too_deep.as_str(), r#""\ud800""#] {
        let body = format!(r#"{{"kind": "k", "payload": {text}}}"#);
        let a = s
            .try_request("POST", "/v1/executions", Some(body.as_bytes()), &[])
            .unwrap();
        a.error(400, "invalid_input");
        assert_eq!(a.json()["error"]["field"], "payload");
    }
}

fn text_with_nul_is_refused(b: Bk) {
    let s = Server::start(&b);
    let id = s.submit(json!({"kind": "k"}));
    let (_, lease) = claim_one(&s, "default", json!({}));
    let a = s.post(
        &format!("/v1/executions/{id}/fail"),
        json!({"lease": lease, "error": "disk\u{0}full"}),
    );
    a.error(400, "invalid_input");
    assert_eq!(a.json()["error"]["field"], "error");
    let a = s.post(
        &format!("/v1/executions/{id}/cancel"),
        json!({"reason": "no\u{0}pe"}),
    );
    a.error(400, "invalid_input");
    assert_eq!(a.json()["error"]["field"], "reason");
    assert_eq!(s.describe(&id)["state"], "running");
}

fn a_tag_key_with_a_colon_can_be_filtered(b: Bk) {
    let s = Server::start(&b);
    let want = s.submit(json!({"kind": "k", "tags": {"app:env": "prod"}}));
    s.submit(json!({"kind": "k", "tags": {"app": "env:prod"}}));
    let a = s.get("/v1/executions?tag_key=app%3Aenv&tag_value=prod");
    assert_eq!(a.status, 200, "{}", a.body);
    let items = a.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["id"], want.as_str());
    // `tag=` still splits at the first colon.
    let items = s.get("/v1/executions?tag=app:env:prod").json()["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(items, 1);
    s.get("/v1/executions?tag_key=app%3Aenv")
        .error(400, "invalid_input");
}

/// The approval flow over HTTP alone, with an API token and a waitpoint
/// secret: the worker suspends and hands out the waitpoint's token; without
/// the API token only that token signals that waitpoint of that execution
/// (a forged one, or one for another waitpoint or execution, is 401 and
/// changes nothing); the signal resumes it, and the next claim carries it.
/// Then a release spends no attempt, and a durable sleep wakes up through
/// the server's scheduler.
fn an_http_worker_suspends_and_a_waitpoint_token_resumes_it(b: Bk) {
    let s = Server::start_with(
        &b,
        &[
            ("BATON_API_TOKEN", "s3cret"),
            ("BATON_WAITPOINT_SECRET", "k1:0123456789abcdef0123"),
        ],
    );
    let bearer = [("Authorization", "Bearer s3cret")];
    let call = |method: &str, path: &str, body: Option<Value>, headers: &[(&str, &str)]| {
        let bytes = body.map(|b| serde_json::to_vec(&b).unwrap());
        s.try_request(method, path, bytes.as_deref(), headers)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    };
    let ok = |path: &str, body: Value| {
        let a = call("POST", path, Some(body), &bearer);
        assert!(
            a.status == 200 || a.status == 201,
            "POST {path}: {} {}",
            a.status,
            a.body
        );
        a.json()
    };
    let describe = |id: &str| {
        let a = call(
            "GET",
            &format!("/v1/executions/{}", encoded(id)),
            None,
            &bearer,
        );
        assert_eq!(a.status, 200, "{}", a.body);
        a.json()
    };
    let claim = || {
        let claims = ok("/v1/lanes/approvals/claim", json!({"worker_id": "w1"}))["claims"].clone();
        assert_eq!(claims.as_array().unwrap().len(), 1, "{claims}");
        claims[0].clone()
    };
    let id = ok(
        "/v1/executions",
        json!({"kind": "refund", "lane": "approvals", "max_attempts": 1}),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = ok(
        "/v1/executions",
        json!({"kind": "other", "lane": "elsewhere"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = claim();
    let e = encoded(&id);
    let answer = ok(
        &format!("/v1/executions/{e}/suspend"),
        json!({"lease": first["lease"]["token"], "waitpoints": ["approval"],
            "timeout_ms": 600000, "on_timeout": "fail"}),
    );
    assert_eq!(answer["state"], "suspended", "{answer}");
    assert_eq!(answer["execution"]["state"], "suspended");
    assert_eq!(answer["waitpoints"][0]["name"], "approval");
    let token = answer["waitpoints"][0]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(token.starts_with("v1.k1."), "{token}");
    let snap = describe(&id);
    assert_eq!(snap["waiting_on"]["reason"], "signals", "{snap}");
    assert_eq!(snap["waiting_on"]["signals"], json!(["approval"]));
    assert_eq!(snap["suspension"]["on_timeout"], "fail");
    assert_eq!(snap["suspension"]["condition"], "all");

    // Refused without a valid credential for exactly this waitpoint.
    let body = json!({"payload": {"by": "mallory"}});
    let forged = format!(
        "{}{}",
        &token[..token.len() - 1],
        if token.ends_with('0') { "1" } else { "0" }
    );
    let refusals = [
        (format!("/v1/executions/{e}/signals/approval"), None),
        (
            format!("/v1/executions/{e}/signals/approval"),
            Some(forged.as_str()),
        ),
        (
            format!("/v1/executions/{e}/signals/other"),
            Some(token.as_str()),
        ),
        (
            format!("/v1/executions/{}/signals/approval", encoded(&other)),
            Some(token.as_str()),
        ),
        (
            format!("/v1/executions/{e}/signals/approval"),
            Some("v1.k9.1.00"),
        ),
    ];
    for (path, t) in &refusals {
        let headers: Vec<(&str, &str)> = t
            .map(|t| ("Baton-Waitpoint-Token", t))
            .into_iter()
            .collect();
        let a = call("POST", path, Some(body.clone()), &headers);
        a.error(401, "unauthorized");
    }
    // A presented token is checked even beside a valid API token, and
    // every presented token must be valid.
    let path = format!("/v1/executions/{e}/signals/approval");
    let with_bearer = [bearer[0], ("Baton-Waitpoint-Token", forged.as_str())];
    call("POST", &path, Some(body.clone()), &with_bearer).error(401, "unauthorized");
    let both = format!("{path}?token={token}");
    let header = [("Baton-Waitpoint-Token", forged.as_str())];
    call("POST", &both, Some(body.clone()), &header).error(401, "unauthorized");
    // Unauthorised callers learn nothing about their body.
    call("POST", &path, Some(json!({"nonsense": true})), &[]).error(401, "unauthorized");
    let held = call("GET", &format!("/v1/executions/{e}/signals"), None, &bearer).json();
    assert_eq!(held["items"], json!([]), "the refusals stored nothing");
    assert_eq!(describe(&id)["state"], "suspended");

    // The token in the query resumes it; the same key again is a duplicate.
    let path = format!("/v1/executions/{e}/signals/approval?token={token}");
    let a = call(
        "POST",
        &path,
        Some(json!({"payload": {"by": "ana"}, "idempotency_key": "mail-1"})),
        &[],
    );
    assert_eq!(
        (a.status, a.json()["outcome"].clone()),
        (200, json!("resumed")),
        "{}",
        a.body
    );
    let headers = [("Baton-Waitpoint-Token", token.as_str())];
    let path = format!("/v1/executions/{e}/signals/approval");
    let a = call(
        "POST",
        &path,
        Some(json!({"payload": 1, "idempotency_key": "mail-1"})),
        &headers,
    );
    assert_eq!(a.json()["outcome"], "duplicate", "{}", a.body);
    let second = claim();
    assert_eq!(second["attempt"], 2);
    assert_eq!(second["waits"], json!(["signalled"]));
    assert_eq!(second["signals"][0]["payload"], json!({"by": "ana"}));
    assert_eq!(second["signals"][0]["wait"], 1);
    let held = call("GET", &format!("/v1/executions/{e}/signals"), None, &bearer).json();
    assert_eq!(held["items"][0]["idempotency_key"], "mail-1", "{held}");

    // Released (a worker shutting down): no attempt spent, even past the
    // one allowed; then completed.
    let snap = ok(
        &format!("/v1/executions/{e}/release"),
        json!({"lease": second["lease"]["token"]}),
    );
    assert_eq!(
        (snap["state"].clone(), snap["attempts"].clone()),
        (json!("waiting"), json!(2))
    );
    let third = claim();
    ok(
        &format!("/v1/executions/{e}/complete"),
        json!({"lease": third["lease"]["token"], "result": "refunded"}),
    );
    assert_eq!(describe(&id)["state"], "completed");
    let a = call("POST", &path, Some(json!({"payload": 2})), &headers);
    assert_eq!(a.json()["outcome"], "ignored", "{}", a.body);

    // A durable sleep, woken by the scheduler of `baton serve`.
    let sleeper = ok(
        "/v1/executions",
        json!({"kind": "nap", "lane": "approvals"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let nap = claim();
    let answer = ok(
        &format!("/v1/executions/{}/suspend", encoded(&sleeper)),
        json!({"lease": nap["lease"]["token"], "timeout_ms": 200}),
    );
    assert_eq!(
        (answer["state"].clone(), answer["waitpoints"].clone()),
        (json!("suspended"), json!([]))
    );
    assert_eq!(describe(&sleeper)["waiting_on"]["reason"], "timer");
    let start = Instant::now();
    while describe(&sleeper)["state"] != "waiting" {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the sleeper never woke"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let woken = claim();
    assert_eq!(
        (woken["attempt"].clone(), woken["waits"].clone()),
        (json!(2), json!(["timed_out"]))
    );
}

/// Checkpointed steps over HTTP alone: an attempt records a done step and
/// a failed one, then fails; the next claim carries the done step's output
/// (exactly as sent), a repeat of it is a no-op, another output a 409, and
/// `GET …/steps` lists both with the failure counted.
fn an_http_worker_replays_its_steps(b: Bk) {
    let s = Server::start(&b);
    let id = s.submit(json!({"kind": "order", "lane": "wf", "max_attempts": 3,
        "backoff": {"initial_ms": 0, "max_ms": 0, "multiplier": 1.0, "jitter": false}}));
    let e = encoded(&id);
    let (_, lease) = claim_one(&s, "wf", json!({}));
    let step = s.ok(
        &format!("/v1/executions/{e}/steps/charge"),
        json!({"lease": lease, "output": {"amount": 25.50}}),
    );
    assert_eq!(
        (step["status"].clone(), step["attempt"].clone()),
        (json!("done"), json!(1))
    );
    let failed = s.ok(
        &format!("/v1/executions/{e}/steps/label"),
        json!({"lease": lease, "error": "label service down"}),
    );
    assert_eq!(
        (failed["status"].clone(), failed["failures"].clone()),
        (json!("failed"), json!(1))
    );
    let both = s.post(
        &format!("/v1/executions/{e}/steps/x"),
        json!({"lease": lease, "output": 1, "error": "and"}),
    );
    both.error(400, "invalid_input");
    s.ok(
        &format!("/v1/executions/{e}/fail"),
        json!({"lease": lease, "error": "crashed"}),
    );
    let claims = s.claim("wf", json!({"worker_id": "w2"}));
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert_eq!(claims[0]["attempt"], 2);
    assert_eq!(claims[0]["steps"], json!({"charge": {"amount": 25.50}}));
    let raw = s.request(
        "POST",
        "/v1/lanes/wf/claim",
        Some(&json!({"worker_id": "w3"})),
    );
    assert_eq!(raw.json()["claims"], json!([]));
    let lease = claims[0]["lease"]["token"].clone();
    let again = s.ok(
        &format!("/v1/executions/{e}/steps/charge"),
        json!({"lease": lease, "output": {"amount": 25.50}}),
    );
    assert_eq!(again["attempt"], 1, "a repeat changes nothing: {again}");
    let other = s.post(
        &format!("/v1/executions/{e}/steps/charge"),
        json!({"lease": lease, "output": {"amount": 1}}),
    );
    other.error(409, "conflict");
    let listed = s.get(&format!("/v1/executions/{e}/steps")).json();
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["charge", "label"]);
    assert_eq!(listed["items"][1]["error"], "label service down");
    s.ok(
        &format!("/v1/executions/{e}/complete"),
        json!({"lease": lease, "result": "shipped"}),
    );
    let late = s.post(
        &format!("/v1/executions/{e}/steps/ship"),
        json!({"lease": lease, "output": true}),
    );
    late.error(409, "lease_lost");
}

/// Custom status, progress frames and key-value state over HTTP alone, and
/// the long-polls that follow them: a reader parked on `GET …/progress`
/// gets the next frame, one parked on `GET /v1/executions/{id}?wait_ms=`
/// gets the completed snapshot — each well before its 20 s wait ends.
fn status_progress_and_state_over_http_with_woken_long_polls(b: Bk) {
    let s = Server::start(&b);
    let id = s.submit(json!({"kind": "import", "lane": "mem"}));
    let e = encoded(&id);
    let (_, lease) = claim_one(&s, "mem", json!({}));
    let put = |path: &str, body: Value| s.request("PUT", path, Some(&body));
    let status = put(
        &format!("/v1/executions/{e}/status"),
        json!({"lease": lease, "status": {"stage": "reading", "rows": 10}}),
    );
    assert_eq!((status.status, status.json()), (200, json!({"version": 1})));
    let again = put(
        &format!("/v1/executions/{e}/status"),
        json!({"lease": lease, "status": {"stage": "reading", "rows": 10}}),
    );
    assert_eq!(
        again.json(),
        json!({"version": 1}),
        "a repeat keeps the version"
    );
    let snap = s.describe(&e);
    assert_eq!(
        (
            snap["custom_status"].clone(),
            snap["status_version"].clone()
        ),
        (json!({"stage": "reading", "rows": 10}), json!(1))
    );
    for n in 1..=2 {
        let appended = s.ok(
            &format!("/v1/executions/{e}/progress"),
            json!({"lease": lease, "frame": {"done": n}}),
        );
        assert_eq!(appended, json!({"seq": n}));
    }
    let read = s
        .get(&format!("/v1/executions/{e}/progress?after=0"))
        .json();
    assert_eq!(
        read["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["seq"].clone(), f["frame"].clone()))
            .collect::<Vec<_>>(),
        vec![
            (json!(1), json!({"done": 1})),
            (json!(2), json!({"done": 2}))
        ]
    );
    assert_eq!(
        (read["progress_seq"].clone(), read["state"].clone()),
        (json!(2), json!("running"))
    );
    // State: set, read, clear; a key past the path rules is refused.
    let set = put(
        &format!("/v1/executions/{e}/state/cursor"),
        json!({"lease": lease, "value": {"page": 3}}),
    );
    assert_eq!(set.status, 204, "{}", set.body);
    let held = s.get(&format!("/v1/executions/{e}/state")).json();
    assert_eq!(held["items"][0]["key"], "cursor");
    assert_eq!(held["items"][0]["value"], json!({"page": 3}));
    let cleared = s.request(
        "DELETE",
        &format!("/v1/executions/{e}/state/cursor"),
        Some(&json!({"lease": lease})),
    );
    assert_eq!(cleared.status, 204, "{}", cleared.body);
    assert_eq!(
        s.get(&format!("/v1/executions/{e}/state")).json()["items"],
        json!([])
    );
    put(
        &format!("/v1/executions/{e}/state/no%20spaces"),
        json!({"lease": lease, "value": 1}),
    )
    .error(400, "invalid_input");
    put(
        &format!("/v1/executions/{e}/status"),
        json!({"lease": lease, "status": "x".repeat(70_000)}),
    )
    .error(400, "invalid_input");

    std::thread::scope(|scope| {
        // Parked for the next frame: the append wakes it.
        let reader = scope.spawn(|| {
            let start = Instant::now();
            let got = s
                .get(&format!(
                    "/v1/executions/{e}/progress?after=2&wait_ms=20000"
                ))
                .json();
            (got, start.elapsed())
        });
        thread::sleep(Duration::from_millis(300));
        s.ok(
            &format!("/v1/executions/{e}/progress"),
            json!({"lease": lease, "frame": "third"}),
        );
        let (got, took) = reader.join().unwrap();
        assert_eq!(got["frames"][0]["frame"], "third", "{got}");
        assert!(
            took < Duration::from_secs(15),
            "the append did not wake the reader ({took:?})"
        );

        // Parked for the outcome: the completion wakes it.
        let waiter = scope.spawn(|| {
            let start = Instant::now();
            let got = s.get(&format!("/v1/executions/{e}?wait_ms=20000")).json();
            (got, start.elapsed())
        });
        thread::sleep(Duration::from_millis(300));
        s.ok(
            &format!("/v1/executions/{e}/complete"),
            json!({"lease": lease, "result": {"rows": 10}}),
        );
        let (got, took) = waiter.join().unwrap();
        assert_eq!(got["state"], "completed", "{got}");
        assert_eq!(got["result"], json!({"rows": 10}));
        assert!(
            took < Duration::from_secs(15),
            "the completion did not wake the waiter ({took:?})"
        );
    });
    // Terminal already: at once; frames after the last: none, state says done.
    let done = s.get(&format!("/v1/executions/{e}?wait_ms=20000")).json();
    assert_eq!(done["status_version"], 1);
    let tail = s
        .get(&format!(
            "/v1/executions/{e}/progress?after=3&wait_ms=20000"
        ))
        .json();
    assert_eq!(
        (tail["frames"].clone(), tail["state"].clone()),
        (json!([]), json!("completed"))
    );
    put(
        &format!("/v1/executions/{e}/status"),
        json!({"lease": lease, "status": "late"}),
    )
    .error(409, "lease_lost");
    // Not terminal and nothing changes: the wait ends with the snapshot as is.
    let other = s.submit(json!({"kind": "idle", "lane": "mem"}));
    let quiet = s
        .get(&format!("/v1/executions/{}?wait_ms=200", encoded(&other)))
        .json();
    assert_eq!(quiet["state"], "waiting");
}

/// Operator control over HTTP: a priority edit reorders claims, tags are
/// set and removed with filters following, a revoke retries the execution
/// and kills the old lease, and the claiming worker is listed as live.
fn operators_edit_priority_and_tags_revoke_and_list_workers(b: Bk) {
    let s = Server::start(&b);
    let first = s.submit(json!({"kind": "a", "lane": "ops", "max_attempts": 2,
        "backoff": {"initial_ms": 0, "max_ms": 0, "multiplier": 1.0, "jitter": false}}));
    let second = s.submit(json!({"kind": "b", "lane": "ops"}));
    let (f, sec) = (encoded(&first), encoded(&second));
    let put = |path: &str, body: Value| s.request("PUT", path, Some(&body));
    let why = s.get(&format!("/v1/executions/{f}/explain")).json();
    assert_eq!(
        (why["state"].clone(), why["waiting_on"].clone()),
        (json!("waiting"), json!("no_capable_worker")),
        "{why}"
    );
    let edited = put(
        &format!("/v1/executions/{sec}/priority"),
        json!({"priority": 5}),
    );
    assert_eq!(edited.status, 200, "{}", edited.body);
    assert_eq!(edited.json()["priority"], 5);
    put(
        &format!("/v1/executions/{sec}/priority"),
        json!({"priority": "high"}),
    )
    .error(400, "invalid_input");
    let tagged = put(
        &format!("/v1/executions/{f}/tags/team"),
        json!({"value": "core"}),
    )
    .json();
    assert_eq!(tagged["tags"], json!({"team": "core"}));
    let listed = s
        .get("/v1/executions?namespace=default&tag=team:core")
        .json();
    assert_eq!(listed["items"][0]["id"], first.as_str());
    let untagged = s.request("DELETE", &format!("/v1/executions/{f}/tags/team"), None);
    assert_eq!(untagged.status, 200, "{}", untagged.body);
    assert_eq!(untagged.json()["tags"], json!({}));
    let listed = s
        .get("/v1/executions?namespace=default&tag=team:core")
        .json();
    assert_eq!(listed["items"], json!([]));
    // The edited one comes first.
    let claims = s.claim("ops", json!({"worker_id": "op-w", "max": 1}));
    assert_eq!(claims[0]["id"], second.as_str());
    let claims = s.claim("ops", json!({"worker_id": "op-w", "max": 1}));
    assert_eq!(claims[0]["id"], first.as_str());
    let lease = claims[0]["lease"]["token"].clone();
    let why = s.get(&format!("/v1/executions/{f}/explain")).json();
    assert_eq!(why["waiting_on"], "leased", "{why}");
    assert!(why["detail"].as_str().unwrap().contains("op-w"), "{why}");
    let workers = s.get("/v1/workers?namespace=default").json();
    assert_eq!(workers["workers"][0]["worker_id"], "op-w");
    assert_eq!(workers["workers"][0]["lanes"], json!(["ops"]));
    let revoked = s.post(&format!("/v1/executions/{f}/revoke"), json!({}));
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert_eq!(revoked.json()["state"], "waiting");
    s.post(
        &format!("/v1/executions/{f}/complete"),
        json!({"lease": lease, "result": 1}),
    )
    .error(409, "lease_lost");
    s.post(&format!("/v1/executions/{f}/revoke"), json!({}))
        .error(409, "conflict");
    let snap = s.describe(&f);
    assert_eq!(snap["attempt_history"][0]["outcome"], "lease_expired");
}

/// Pause, resume, replay and lane pause over HTTP: a paused running
/// execution's worker learns it at its renew and its lease is dead; a
/// resumed one runs again without having used an attempt; a paused lane
/// gives claims nothing; a failed execution is replayed once.
fn operators_pause_resume_and_replay_executions_and_pause_lanes(b: Bk) {
    let s = Server::start(&b);
    let id = s.submit(json!({"kind": "job", "lane": "p", "max_attempts": 1}));
    let e = encoded(&id);
    let claims = s.claim("p", json!({"worker_id": "pw", "max": 1}));
    let lease = claims[0]["lease"]["token"].clone();
    let paused = s.post(&format!("/v1/executions/{e}/pause"), json!({}));
    assert_eq!(paused.status, 200, "{}", paused.body);
    let paused = paused.json();
    assert_eq!(paused["state"], "paused");
    assert_eq!(paused["pause"], json!({"from": "waiting", "via": null}));
    assert_eq!(
        (
            paused["cascaded"].clone(),
            paused["cascade_pending"].clone()
        ),
        (json!(0), json!(false))
    );
    assert_eq!(paused["waiting_on"]["reason"], "paused");
    let renewed = s.ok(
        "/v1/leases/renew",
        json!({"worker_id": "pw", "leases": [lease]}),
    );
    assert_eq!(renewed["leases"][0]["status"], "paused");
    s.post(
        &format!("/v1/executions/{e}/complete"),
        json!({"lease": lease, "result": 1}),
    )
    .error(409, "lease_lost");
    assert_eq!(s.describe(&e)["attempt_history"][0]["outcome"], "paused");
    let stats = s.get("/v1/stats?namespace=default").json();
    assert_eq!(stats["lanes"]["p"]["paused"], 1, "{stats}");
    assert!(s.claim("p", json!({"worker_id": "pw"})).is_empty());
    s.post(
        &format!("/v1/executions/{e}/pause"),
        json!({"scope": "sideways"}),
    )
    .error(400, "invalid_input");
    let resumed = s.post(
        &format!("/v1/executions/{e}/resume"),
        json!({"scope": "execution"}),
    );
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    assert_eq!(resumed.json()["state"], "waiting");

    // A paused lane gives claims nothing, and says so.
    let lane = s.post("/v1/lanes/p/pause", json!({"namespace": "default"}));
    assert_eq!(lane.status, 200, "{}", lane.body);
    assert_eq!(
        lane.json(),
        json!({"lane": "p", "paused": true, "changed": true})
    );
    assert_eq!(
        s.post("/v1/lanes/p/pause", json!({})).json()["changed"],
        false
    );
    assert!(s.claim("p", json!({"worker_id": "pw"})).is_empty());
    let why = s.get(&format!("/v1/executions/{e}/explain")).json();
    assert_eq!(why["waiting_on"], "lane_paused", "{why}");
    let lanes = s.get("/v1/lanes?namespace=default").json();
    assert_eq!(lanes["lanes"][0]["lane"], "p", "{lanes}");
    assert_eq!(lanes["lanes"][0]["paused"], true);
    assert_eq!(lanes["lanes"][0]["counts"]["waiting"], 1);
    let lane = s.post("/v1/lanes/p/resume", json!({})).json();
    assert_eq!(
        (lane["paused"].clone(), lane["changed"].clone()),
        (json!(false), json!(true))
    );
    assert_eq!(s.get("/v1/lanes").json()["lanes"][0]["paused"], false);

    // Its one attempt was not used by the pause: it runs, fails, is replayed.
    let claims = s.claim("p", json!({"worker_id": "pw", "max": 1}));
    assert_eq!(claims[0]["attempt"], 2);
    let failed = s.ok(
        &format!("/v1/executions/{e}/fail"),
        json!({"lease": claims[0]["lease"]["token"], "error": "boom"}),
    );
    assert_eq!(failed["state"], "failed");
    let replayed = s.post(&format!("/v1/executions/{e}/replay"), json!({}));
    assert_eq!(replayed.status, 200, "{}", replayed.body);
    let replayed = replayed.json();
    assert_eq!(
        (replayed["state"].clone(), replayed["finished_at"].clone()),
        (json!("waiting"), Value::Null)
    );
    assert_eq!(replayed["last_error"], "boom");
    s.post(&format!("/v1/executions/{e}/replay"), json!({}))
        .error(409, "conflict");
    // Same partition tag and hash, another creation time: never created.
    let (tag, uuid) = id.split_once("}-").unwrap();
    let flipped = if uuid.starts_with('0') { '1' } else { '0' };
    let unknown = encoded(&format!("{tag}}}-{flipped}{}", &uuid[1..]));
    s.post(&format!("/v1/executions/{unknown}/pause"), json!({}))
        .error(404, "not_found");
}

/// Several states, time ranges and the idempotency key filter a list over
/// HTTP; `POST /v1/executions/describe` answers many ids in order.
fn lists_filter_by_several_states_times_and_key_and_describe_many(b: Bk) {
    let s = Server::start(&b);
    let keyed = s.submit(json!({"kind": "k", "lane": "f", "idempotency_key": "order-7"}));
    let doomed = s.submit(json!({"kind": "k", "lane": "f"}));
    s.ok(
        &format!("/v1/executions/{}/cancel", encoded(&doomed)),
        json!({}),
    );
    let ids = |answer: Value| -> Vec<String> {
        answer["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let both = s
        .get("/v1/executions?lane=f&state=waiting,cancelled")
        .json();
    assert_eq!(ids(both), vec![keyed.clone(), doomed.clone()]);
    let keyed_only = s.get("/v1/executions?idempotency_key=order-7").json();
    assert_eq!(ids(keyed_only), vec![keyed.clone()]);
    let future = s
        .get("/v1/executions?lane=f&created_after=2999-01-01T00:00:00Z")
        .json();
    assert_eq!(ids(future), Vec::<String>::new());
    let finished = s
        .get("/v1/executions?lane=f&finished_after=2000-01-01T00:00:00Z")
        .json();
    assert_eq!(ids(finished), vec![doomed.clone()]);
    s.get("/v1/executions?created_after=yesterday")
        .error(400, "invalid_input");
    s.get("/v1/executions?state=waiting,sleeping")
        .error(400, "invalid_input");
    let many = s.ok("/v1/executions/describe", json!({"ids": [doomed, keyed]}));
    assert_eq!(many["items"][0]["state"], "cancelled");
    assert_eq!(many["items"][1]["id"], keyed.as_str());
    s.post("/v1/executions/describe", json!({"ids": ["nope"]}))
        .error(400, "invalid_input");
}

/// `baton serve --retention` (here `BATON_RETENTION=1s`): a finished
/// execution is trimmed by the scheduler once its retention passed; an
/// unfinished one stays.
fn serve_trims_finished_work_after_its_retention(b: Bk) {
    let s = Server::start_with(
        &b,
        &[("BATON_RETENTION", "1s"), ("BATON_TRIM_SWEEP_MS", "100")],
    );
    let done = s.submit(json!({"kind": "k", "lane": "ret"}));
    let kept = s.submit(json!({"kind": "k", "lane": "other"}));
    let claims = s.claim("ret", json!({"worker_id": "rw", "max": 1}));
    s.ok(
        &format!("/v1/executions/{}/complete", encoded(&done)),
        json!({"lease": claims[0]["lease"]["token"], "result": 1}),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let a = s.get(&format!("/v1/executions/{}", encoded(&done)));
        if a.status == 404 {
            break;
        }
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(
            std::time::Instant::now() < deadline,
            "a completed execution outlived a 1 s retention by 20 s"
        );
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(s.describe(&encoded(&kept))["state"], "waiting");
}

/// `PUT`, `GET` and `DELETE /v1/retention…`: rules are set (with `keep`
/// or `keep_ms`), listed, and removed; bad input is refused; the server's
/// trim honours a lane's rule over its namespace's and the default.
fn retention_rules_over_http(b: Bk) {
    let s = Server::start_with(
        &b,
        &[("BATON_RETENTION", "1h"), ("BATON_TRIM_SWEEP_MS", "100")],
    );
    let ours = |s: &Server| -> Vec<Value> {
        let all = s.get("/v1/retention").json();
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["namespace"] == "retained")
            .cloned()
            .collect()
    };
    assert_eq!(ours(&s), Vec::<Value>::new());
    let set = |body: Value| s.request("PUT", "/v1/retention/retained", Some(&body));
    let a = set(json!({"lane": "brief", "keep": "1s"}));
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json(),
        json!({"namespace": "retained", "lane": "brief", "keep_ms": 1000, "previous_ms": null})
    );
    let a = set(json!({"keep": "30d"}));
    assert_eq!(a.json()["previous_ms"], Value::Null, "{}", a.body);
    let a = set(json!({"keep_ms": 2_592_000_000u64}));
    assert_eq!(a.json()["previous_ms"], 2_592_000_000u64, "{}", a.body);
    for bad in [
        json!({"keep": "soon"}),
        json!({}),
        json!({"keep": "1s", "keep_ms": 1000}),
        json!({"keep": "0s"}),
        json!({"keep": "999ms"}),
        json!({"lane": "a b", "keep": "1s"}),
        json!({"keep": "1s", "color": "red"}),
    ] {
        set(bad.clone()).error(400, "invalid_input");
    }
    assert_eq!(
        ours(&s),
        vec![
            json!({"namespace": "retained", "lane": null, "keep": "30d", "keep_ms": 2_592_000_000u64}),
            json!({"namespace": "retained", "lane": "brief", "keep": "1s", "keep_ms": 1000}),
        ]
    );
    // The lane's rule trims within seconds; its namespace's keeps the rest.
    let brief = s.submit(json!({"kind": "k", "lane": "brief", "namespace": "retained"}));
    let kept = s.submit(json!({"kind": "k", "lane": "long", "namespace": "retained"}));
    for id in [&brief, &kept] {
        s.ok(&format!("/v1/executions/{}/cancel", encoded(id)), json!({}));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let a = s.get(&format!("/v1/executions/{}", encoded(&brief)));
        if a.status == 404 {
            break;
        }
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(
            std::time::Instant::now() < deadline,
            "an execution outlived its lane's 1 s retention by 20 s"
        );
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(s.describe(&encoded(&kept))["state"], "cancelled");
    let gone = s.request("DELETE", "/v1/retention/retained?lane=brief", None);
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert_eq!(
        gone.json(),
        json!({"namespace": "retained", "lane": "brief", "keep_ms": null, "previous_ms": 1000})
    );
    let again = s.request("DELETE", "/v1/retention/retained?lane=brief", None);
    assert_eq!(again.json()["previous_ms"], Value::Null, "{}", again.body);
    let all = s.request("DELETE", "/v1/retention/retained", None);
    assert_eq!(all.json()["previous_ms"], 2_592_000_000u64, "{}", all.body);
    assert_eq!(ours(&s), Vec::<Value>::new());
}

/// `PUT`, `GET` and `DELETE /v1/limits…`: a limit is set (answering the
/// one replaced), listed by namespace, refused when malformed; claims over
/// HTTP honour its cap, `explain` says `limited`, the usage and the
/// metrics count the runs per key; removing it frees the rest.
fn limits_over_http(b: Bk) {
    let s = Server::start(&b);
    let put = |body: Value| s.request("PUT", "/v1/limits/http-tenants", Some(&body));
    let limit = json!({"namespace": "limited", "lane": null, "key": "tag:tenant",
        "max_running": 2, "rate": null, "fair": false});
    let a = put(limit.clone());
    assert_eq!(a.status, 200, "{}", a.body);
    let mut expected = limit.clone();
    expected["name"] = json!("http-tenants");
    assert_eq!(
        a.json(),
        json!({"name": "http-tenants", "limit": expected, "previous": null})
    );
    assert_eq!(put(limit.clone()).json()["previous"], expected);
    for bad in [
        json!({"namespace": "limited", "key": "tag:tenant"}),
        json!({"namespace": "limited", "key": "color", "max_running": 1}),
        json!({"namespace": "limited", "key": "kind", "rate": {"count": 0, "per_ms": 1000}}),
        json!({"namespace": "limited", "key": "kind", "rate": {"count": 1, "per_ms": 0}}),
        json!({"namespace": "a b", "key": "kind", "max_running": 1}),
        json!({"namespace": "limited", "key": "kind", "max_running": 1, "color": "red"}),
    ] {
        put(bad.clone()).error(400, "invalid_input");
    }
    s.request(
        "PUT",
        "/v1/limits/bad%20name",
        Some(&json!({"namespace": "limited", "key": "kind", "max_running": 1})),
    )
    .error(400, "invalid_input");
    let listed = s.get("/v1/limits?namespace=limited").json();
    assert_eq!(listed, json!({"items": [expected.clone()]}));
    // A fair-only limit (no cap, no rate) is accepted and answered as
    // fair; `fair` defaults to false when a body leaves it out.
    let turns = json!({"namespace": "limited-fair", "lane": "work", "key": "kind",
        "max_running": null, "rate": null, "fair": true});
    let a = s.request("PUT", "/v1/limits/http-turns", Some(&turns));
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["limit"]["fair"], json!(true));
    let mut turns_expected = turns.clone();
    turns_expected["name"] = json!("http-turns");
    assert_eq!(
        s.get("/v1/limits?namespace=limited-fair").json(),
        json!({"items": [turns_expected]})
    );
    assert_eq!(
        s.request("DELETE", "/v1/limits/http-turns", None).status,
        200
    );

    let ids: Vec<String> = (0..4)
        .map(|_| {
            s.submit(json!({"kind": "k", "lane": "work", "namespace": "limited",
                "tags": {"tenant": "acme"}}))
        })
        .collect();
    let claims = s.claim(
        "work",
        json!({"worker_id": "w", "namespace": "limited", "max": 10}),
    );
    assert_eq!(claims.len(), 2, "the cap of 2 holds over HTTP");
    let waiting: Vec<&String> = ids
        .iter()
        .filter(|id| s.describe(&encoded(id))["state"] == "waiting")
        .collect();
    assert_eq!(waiting.len(), 2);
    let why = s
        .get(&format!("/v1/executions/{}/explain", encoded(waiting[0])))
        .json();
    assert_eq!(why["waiting_on"], "limited", "{why}");
    assert!(
        why["detail"].as_str().unwrap().contains("http-tenants"),
        "{why}"
    );
    let usage = s.get("/v1/limits/http-tenants/usage").json();
    assert_eq!(
        usage,
        json!({"name": "http-tenants", "items": [{"key_value": "acme", "running": 2, "window_claims": 0}]})
    );
    s.get("/v1/limits/nobody/usage").error(400, "invalid_input");
    let metrics = s.get("/metrics").body;
    assert!(
        metrics.contains(
            "baton_limit_running{namespace=\"limited\",limit=\"http-tenants\",key=\"acme\"} 2"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("baton_claims_limited_total "), "{metrics}");

    // A claim parked for work the cap holds back takes it soon after a
    // run ends (no submission wakes it).
    std::thread::scope(|scope| {
        let parked = scope.spawn(|| {
            let start = Instant::now();
            let got = s.claim(
                "work",
                json!({"worker_id": "w2", "namespace": "limited", "max": 10, "wait_ms": 20000}),
            );
            (got, start.elapsed())
        });
        thread::sleep(Duration::from_millis(300));
        let lease = claims[0]["lease"]["token"].as_str().unwrap();
        let id = claims[0]["id"].as_str().unwrap();
        s.ok(
            &format!("/v1/executions/{}/complete", encoded(id)),
            json!({"lease": lease, "result": null}),
        );
        let (got, took) = parked.join().unwrap();
        assert_eq!(got.len(), 1, "one slot freed: {got:?}");
        assert!(
            took < Duration::from_secs(15),
            "the freed slot did not reach the parked claim ({took:?})"
        );
    });

    let gone = s.request("DELETE", "/v1/limits/http-tenants", None);
    assert_eq!(
        gone.json(),
        json!({"name": "http-tenants", "limit": null, "previous": expected})
    );
    let again = s.request("DELETE", "/v1/limits/http-tenants", None);
    assert_eq!(again.json()["previous"], Value::Null, "{}", again.body);
    assert_eq!(
        s.get("/v1/limits?namespace=limited").json(),
        json!({"items": []})
    );
    let rest = s.claim(
        "work",
        json!({"worker_id": "w", "namespace": "limited", "max": 10}),
    );
    assert_eq!(rest.len(), 1, "removed: the rest is claimed");
}

/// `POST /v1/executions/bulk/cancel` and `/bulk/replay`: a dry run counts,
/// a limit and a cursor page through the matches, ids narrow the filter.
fn bulk_cancel_and_replay_over_http(b: Bk) {
    let s = Server::start(&b);
    let ids: Vec<String> = (0..3)
        .map(|_| s.submit(json!({"kind": "k", "lane": "bulk"})))
        .collect();
    let dry = s.ok(
        "/v1/executions/bulk/cancel",
        json!({"filter": {"lane": "bulk"}, "dry_run": true}),
    );
    assert_eq!(
        (dry["matched"].clone(), dry["changed"].clone()),
        (json!(3), json!(3))
    );
    assert_eq!(dry["next_cursor"], Value::Null);
    let first = s.ok(
        "/v1/executions/bulk/cancel",
        json!({"filter": {"lane": "bulk", "state": "waiting"}, "limit": 2, "reason": "bulk"}),
    );
    assert_eq!(first["changed"], 2);
    let cursor = first["next_cursor"].clone();
    assert!(cursor.is_string(), "{first}");
    let rest = s.ok(
        "/v1/executions/bulk/cancel",
        json!({"filter": {"lane": "bulk", "state": "waiting"}, "limit": 2, "cursor": cursor}),
    );
    assert_eq!(
        (rest["changed"].clone(), rest["next_cursor"].clone()),
        (json!(1), Value::Null)
    );
    assert_eq!(s.describe(&encoded(&ids[0]))["cancel_reason"], "bulk");
    let replayed = s.ok(
        "/v1/executions/bulk/replay",
        json!({"filter": {"ids": [ids[1], ids[2]]}}),
    );
    assert_eq!(
        (replayed["matched"].clone(), replayed["changed"].clone()),
        (json!(2), json!(2))
    );
    let again = s.ok(
        "/v1/executions/bulk/replay",
        json!({"filter": {"lane": "bulk"}}),
    );
    assert_eq!(
        (again["matched"].clone(), again["changed"].clone()),
        (json!(3), json!(1))
    );
    assert_eq!(again["skipped"].as_array().unwrap().len(), 2, "{again}");
    s.post("/v1/executions/bulk/cancel", json!({"limit": 0}))
        .error(400, "invalid_input");
    s.post("/v1/executions/bulk/cancel", json!({}))
        .error(400, "invalid_input");
    let everything = s.ok(
        "/v1/executions/bulk/cancel",
        json!({"all": true, "dry_run": true}),
    );
    assert_eq!(everything["matched"], 3);
    s.post(
        "/v1/executions/bulk/replay",
        json!({"filter": {"lane": "bulk"}, "reason": "x"}),
    )
    .error(400, "invalid_input");
    s.post(
        "/v1/executions/bulk/cancel",
        json!({"filter": {"colour": "red"}}),
    )
    .error(400, "invalid_input");
}

/// `DELETE /v1/executions/{id}?force=` and `POST /v1/executions/bulk/delete`:
/// a finished execution goes with its descendants and everything it
/// holds, an unfinished one is a 409 without force; the running attempt a
/// forced delete ends is fenced; a bulk delete previews, pages and skips
/// unfinished work unless forced.
fn delete_and_bulk_delete_over_http(b: Bk) {
    let s = Server::start(&b);
    let root = s.submit(json!({"kind": "k", "lane": "del", "idempotency_key": "order-1"}));
    let child = s.submit(json!({"kind": "c", "lane": "del", "parent": root}));
    let refused = s.request(
        "DELETE",
        &format!("/v1/executions/{}", encoded(&root)),
        None,
    );
    let message = refused.error(409, "conflict");
    assert!(message.contains("force"), "{message}");
    let claims = s.claim("del", json!({"worker_id": "w1", "max": 1}));
    assert_eq!(claims[0]["id"], json!(root));
    let lease = claims[0]["lease"]["token"].as_str().unwrap().to_owned();
    let deleted = s.request(
        "DELETE",
        &format!("/v1/executions/{}?force=true", encoded(&root)),
        None,
    );
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(
        deleted.json(),
        json!({"id": root, "deleted": 2, "cancelled": true})
    );
    for id in [&root, &child] {
        s.get(&format!("/v1/executions/{}", encoded(id)))
            .error(404, "not_found");
    }
    let renew = s.ok(
        "/v1/leases/renew",
        json!({"worker_id": "w1", "leases": [lease], "lease_ms": 30000}),
    );
    assert_eq!(renew["leases"][0]["status"], "lost", "{renew}");
    s.post(
        &format!("/v1/executions/{}/complete", encoded(&root)),
        json!({"lease": lease, "result": {}}),
    )
    .error(404, "not_found");
    // The key is free again.
    let again = s.submit(json!({"kind": "k", "lane": "del", "idempotency_key": "order-1"}));
    assert_ne!(again, root);
    let ids: Vec<String> = (0..3)
        .map(|_| s.submit(json!({"kind": "k", "lane": "purge"})))
        .collect();
    s.ok(
        &format!("/v1/executions/{}/cancel", encoded(&ids[0])),
        json!({}),
    );
    s.ok(
        &format!("/v1/executions/{}/cancel", encoded(&ids[1])),
        json!({}),
    );
    let dry = s.ok(
        "/v1/executions/bulk/delete",
        json!({"filter": {"lane": "purge"}, "dry_run": true}),
    );
    assert_eq!(
        (dry["matched"].clone(), dry["changed"].clone()),
        (json!(3), json!(2))
    );
    assert_eq!(s.describe(&encoded(&ids[0]))["state"], "cancelled");
    let first = s.ok(
        "/v1/executions/bulk/delete",
        json!({"filter": {"lane": "purge"}, "limit": 2}),
    );
    assert_eq!(
        (first["matched"].clone(), first["changed"].clone()),
        (json!(2), json!(2))
    );
    let rest = s.ok(
        "/v1/executions/bulk/delete",
        json!({"filter": {"lane": "purge"}, "limit": 2, "cursor": first["next_cursor"]}),
    );
    assert_eq!(
        (rest["changed"].clone(), rest["next_cursor"].clone()),
        (json!(0), Value::Null)
    );
    assert_eq!(rest["skipped"][0]["id"], json!(ids[2]), "{rest}");
    let forced = s.ok(
        "/v1/executions/bulk/delete",
        json!({"filter": {"lane": "purge"}, "force": true}),
    );
    assert_eq!(forced["changed"], 1, "{forced}");
    s.get(&format!("/v1/executions/{}", encoded(&ids[2])))
        .error(404, "not_found");
    s.post(
        "/v1/executions/bulk/cancel",
        json!({"filter": {"lane": "purge"}, "force": true}),
    )
    .error(400, "invalid_input");
    s.post(
        "/v1/executions/bulk/delete",
        json!({"filter": {"lane": "purge"}, "reason": "x"}),
    )
    .error(400, "invalid_input");
    s.request("DELETE", "/v1/executions/nope", None)
        .error(400, "invalid_input");
}

/// `GET /v1/executions/{id}/events`: every transition in order, with the
/// worker and detail, paged by `after` and `limit`.
fn the_history_of_an_execution_over_http(b: Bk) {
    let s = Server::start(&b);
    let off = s.get("/v1/namespaces/default/history").json();
    assert_eq!(off, json!({"namespace": "default", "enabled": false}));
    let on = s.request(
        "PUT",
        "/v1/namespaces/default/history",
        Some(&json!({"enabled": true})),
    );
    assert_eq!(on.status, 200, "{}", on.body);
    assert_eq!(
        on.json(),
        json!({"namespace": "default", "enabled": true, "was": false})
    );
    let id = s.submit(json!({"kind": "k", "lane": "hist"}));
    let claims = s.claim("hist", json!({"worker_id": "w1", "max": 1}));
    let lease = claims[0]["lease"]["token"].as_str().unwrap().to_owned();
    s.ok(
        &format!("/v1/executions/{}/fail", encoded(&id)),
        json!({"lease": lease, "error": "boom", "retryable": true}),
    );
    let path = format!("/v1/executions/{}/events", encoded(&id));
    let a = s.get(&path);
    assert_eq!(a.status, 200, "{}", a.body);
    let all = a.json();
    let items = all["items"].as_array().unwrap();
    let names: Vec<_> = items.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names[..3], ["created", "claimed", "retried"], "{all}");
    assert_eq!(items[0]["seq"], 1);
    assert_eq!(items[0]["from"], Value::Null);
    assert_eq!(items[0]["to"], "waiting");
    assert_eq!(items[1]["worker_id"], "w1");
    assert_eq!(items[1]["attempt"], 1);
    assert_eq!(items[2]["from"], "running");
    assert_eq!(items[2]["detail"], "boom");
    assert!(items[2]["at"].as_str().is_some());
    assert_eq!(all["next_after"], Value::Null);
    let page = s.get(&format!("{path}?after=1&limit=1")).json();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["event"], "claimed");
    assert_eq!(page["next_after"], 2);
    s.get(&format!("{path}?limit=0"))
        .error(400, "invalid_input");
    // A bulk call leaves its audit event, naming who asked.
    let other = s.submit(json!({"kind": "k", "lane": "audited"}));
    let body =
        serde_json::to_vec(&json!({"filter": {"lane": "audited"}, "reason": "tidy"})).unwrap();
    let a = s
        .try_request(
            "POST",
            "/v1/executions/bulk/cancel",
            Some(&body),
            &[("Baton-Actor", "ana")],
        )
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    let history = s
        .get(&format!("/v1/executions/{}/events", encoded(&other)))
        .json();
    let last = history["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event"], "audit", "{history}");
    let detail = last["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("bulk cancel by http:ana (matched 1, changed 1, skipped 0; namespace=default lane=audited"),
        "{detail}"
    );
    // The history goes with the execution.
    let gone = s.request(
        "DELETE",
        &format!("/v1/executions/{}?force=true", encoded(&id)),
        None,
    );
    assert_eq!(gone.status, 200, "{}", gone.body);
    s.get(&path).error(404, "not_found");
}

fn sessions_and_versions_over_http(b: Bk) {
    let s = Server::start(&b);
    let ns = "routed";
    let submit = |extra: Value| {
        let mut body = json!({"kind": "k", "lane": "chat", "namespace": ns});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        s.submit(body)
    };
    let first = submit(json!({"session": "chat-1"}));
    let second = submit(json!({"session": "chat-1"}));
    let versioned = submit(json!({"version": "2.1"}));
    let d = s.describe(&encoded(&first));
    assert_eq!(
        (d["session"].clone(), d["version"].clone()),
        (json!("chat-1"), Value::Null)
    );
    assert_eq!(s.describe(&encoded(&versioned))["version"], "2.1");

    let a = s.claim(
        "chat",
        json!({"worker_id": "a", "namespace": ns, "max": 1,
        "versions": {"max": "1.999"}, "session_idle_ms": 60000}),
    );
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["id"], first.as_str());
    assert_eq!(a[0]["session"], "chat-1");
    let b_claims = s.claim(
        "chat",
        json!({"worker_id": "b", "namespace": ns, "max": 10,
        "versions": {"min": "3"}}),
    );
    assert!(
        b_claims.is_empty(),
        "chat-1 is a's, 2.1 is below 3: {b_claims:?}"
    );
    let why = s
        .get(&format!("/v1/executions/{}/explain", encoded(&second)))
        .json();
    assert_eq!(why["waiting_on"], "session_owned_by", "{why}");
    assert!(
        why["detail"].as_str().unwrap().contains("worker a"),
        "{why}"
    );
    let why = s
        .get(&format!("/v1/executions/{}/explain", encoded(&versioned)))
        .json();
    assert_eq!(why["waiting_on"], "no_compatible_worker", "{why}");
    let workers = s.get(&format!("/v1/workers?namespace={ns}")).json();
    let ranges: Vec<Value> = workers["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["versions"].clone())
        .collect();
    assert_eq!(ranges, vec![json!({"max": "1.999"}), json!({"min": "3"})]);
    let c = s.claim(
        "chat",
        json!({"worker_id": "c", "namespace": ns, "max": 10,
        "versions": {"min": "2", "max": "2.1"}}),
    );
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0]["id"], versioned.as_str());
    assert_eq!(c[0]["version"], "2.1");
    let a_again = s.claim(
        "chat",
        json!({"worker_id": "a", "namespace": ns, "max": 10}),
    );
    assert_eq!(a_again.len(), 1);
    assert_eq!(a_again[0]["id"], second.as_str());

    for bad in [
        json!({"kind": "k", "session": "two words"}),
        json!({"kind": "k", "version": "v2"}),
        json!({"kind": "k", "version": "1.02"}),
        json!({"kind": "k", "session": "s", "parent": first}),
    ] {
        s.post("/v1/executions", bad.clone())
            .error(400, "invalid_input");
    }
    s.post(
        "/v1/lanes/chat/claim",
        json!({"worker_id": "d", "versions": {"min": "3", "max": "2"}}),
    )
    .error(400, "invalid_input");
    s.post(
        "/v1/lanes/chat/claim",
        json!({"worker_id": "d", "session_idle_ms": 10}),
    )
    .error(400, "invalid_input");
}

/// The dashboard is served at `/ui` (the same on every backend, so on
/// SQLite only): `/` redirects there, `BATON_UI=false` leaves it out, and a
/// browser's cross-site POST is refused on the API as on the dashboard.
#[test]
fn the_dashboard_is_served_and_cross_site_posts_are_refused() {
    let s = Server::start(&Bk::Sqlite);
    let root = s.get("/");
    assert_eq!(root.status, 303);
    assert_eq!(root.header("location"), Some("/ui"));
    let ui = s.get("/ui");
    assert_eq!(ui.status, 200);
    assert!(
        ui.body.contains("<title>Overview · Baton</title>"),
        "{}",
        ui.body
    );
    assert!(ui.header("content-security-policy").is_some());
    let id = s.ok("/v1/executions", json!({"kind": "k"}))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let evil = [("Origin", "http://evil.example")];
    let body = json!({"reason": "csrf"}).to_string();
    let a = s
        .try_request(
            "POST",
            &format!("/v1/executions/{}/cancel", encoded(&id)),
            Some(body.as_bytes()),
            &evil,
        )
        .unwrap();
    a.error(403, "forbidden");
    let a = s
        .try_request(
            "POST",
            &format!("/ui/executions/{}/cancel", encoded(&id)),
            Some(b"reason=csrf"),
            &[("Sec-Fetch-Site", "cross-site")],
        )
        .unwrap();
    assert_eq!(a.status, 403);
    assert_eq!(
        s.get(&format!("/v1/executions/{}", encoded(&id))).json()["state"],
        "waiting"
    );

    let off = Server::start_with(&Bk::Sqlite, &[("BATON_UI", "false")]);
    assert_eq!(off.get("/ui").status, 404);
    assert_eq!(off.get("/").status, 404);
    assert_eq!(off.get("/healthz").status, 200);
}
