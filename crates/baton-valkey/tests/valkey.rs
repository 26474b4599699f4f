//! Valkey-specific behaviour the shared conformance suite cannot see:
//! wake-ups across backend instances (processes), the recorded partition
//! count, concurrent first starts, the function library surviving a flush
//! and its versioning, a key schema that never crosses cluster slots, the
//! claim-discovery hints, the keys of waits, steps and the rest of memory,
//! change announcements (published only for watched executions, waking
//! readers across instances), paused lanes flagged in every partition,
//! paused executions out of the passes' indexes, a replay beside a queued
//! dependents walk, deletes that leave no key behind (histories included),
//! history details cut by characters, the history setting written to every
//! partition (off: nothing written), an execution written before it had
//! one keeping none, a forced delete removing what its cancel changed,
//! units of cancels and replays leaving the keys their single calls leave,
//! the keys of a limit (all in its namespace's slot), a holder lapsing at
//! its expiry when its release is lost, a renew extending a holder, a
//! release left in its partition applied by the promote pass, a claim
//! admitted before a limit changed (or an execution retagged since its
//! admission) taking nothing, a stale admission leaving the window entry of
//! the claim it missed alone, a mark answering the lease a renew extended,
//! a limit removed while it adopted staying removed, `explain` while a
//! limit counts what runs, a value index naming every set of a limit, calls
//! that committed answering when the limit slot cannot be reached, the
//! per-key sets of fair turns (only in fair lanes, holding exactly the
//! waiting work), fair shares of claims across partitions, and URL
//! parsing.
//!
//! The shared servers come from the test kit (each test under a key prefix
//! of its own); the library-versioning tests start a private
//! `redis-server` so loading fake libraries disturbs nobody. Without a
//! server and outside CI a test prints why and passes as skipped; under CI
//! it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_core::{
    AdminBackend, CancelRequest, ClaimRequest, Clock, EngineBackend, EngineBackendExt, EngineError,
    ExecutionId, ExecutionSnapshot, Failure, IdempotencyKey, Kind, Lane, ListFilter, ManualClock,
    Namespace, NewExecution, NodeId, Page, PartitionCount, State, StateCounts, Timestamp, WorkerId,
};
use baton_testkit::servers::{self, PrivateRedis, RedisServer, RespValue};
use baton_valkey::{ValkeyBackend, ValkeyConfig};

// ---------------------------------------------------------------- helpers

fn ns(name: &str) -> Namespace {
    Namespace::new(name).unwrap()
}

fn lane(name: &str) -> Lane {
    Lane::new(name).unwrap()
}

fn exec(namespace: &str, lane_name: &str) -> NewExecution {
    NewExecution::new(
        ns(namespace),
        lane(lane_name),
        Kind::new("job").unwrap(),
        b"{}".to_vec(),
    )
}

fn claim_request(namespace: &str, lanes: &[&str], worker: &str, max: usize) -> ClaimRequest {
    let mut request = ClaimRequest::new(
        ns(namespace),
        lane(lanes[0]),
        WorkerId::new(worker).unwrap(),
        max,
    );
    for l in &lanes[1..] {
        request = request.with_lane(lane(l));
    }
    request
}

/// `server`'s URL with `?prefix=…` (and more options, `&`-joined).
fn url_with(server: &RedisServer, prefix: &str, more: &str) -> String {
    let mut url = format!("{}?prefix={prefix}", server.url());
    if !more.is_empty() {
        url.push('&');
        url.push_str(more);
    }
    url
}

async fn connect(url: &str) -> ValkeyBackend {
    ValkeyBackend::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

/// A backend for `url` reading a manual clock the test moves.
async fn connect_with_clock(url: &str) -> (ValkeyBackend, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let mut config = ValkeyConfig::from_url(url).unwrap();
    config.clock = clock.clone();
    let backend = ValkeyBackend::open(config)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    (backend, clock)
}

/// Claims from `lanes` until `want` executions are held or a claim comes
/// back empty.
async fn claim_up_to(
    backend: &ValkeyBackend,
    namespace: &str,
    lanes: &[&str],
    worker: &str,
    want: usize,
) -> Vec<baton_core::Claim> {
    let mut held = Vec::new();
    while held.len() < want {
        let got = backend
            .claim(claim_request(
                namespace,
                lanes,
                worker,
                (want - held.len()).min(100),
            ))
            .await
            .unwrap();
        if got.is_empty() {
            break;
        }
        held.extend(got);
    }
    held
}

/// Every execution of a namespace, through every page of `list`.
async fn list_all(backend: &ValkeyBackend, namespace: &str) -> Vec<ExecutionSnapshot> {
    let filter = ListFilter::namespace(ns(namespace));
    let mut page = Page::first(100);
    let mut out = Vec::new();
    for _ in 0..1_000 {
        let got = backend.list(&filter, page).await.unwrap();
        out.extend(got.items);
        match got.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => return out,
        }
    }
    panic!("list of {namespace} never ended");
}

/// Counts per state of the listed snapshots.
fn tally(snapshots: &[ExecutionSnapshot]) -> BTreeMap<Lane, StateCounts> {
    let mut out: BTreeMap<Lane, StateCounts> = BTreeMap::new();
    for s in snapshots {
        *out.entry(s.lane.clone()).or_default().get_mut(s.state) += 1;
    }
    out
}

/// `counts` with lanes that hold nothing left out, so it compares with
/// [`tally`].
async fn counts(backend: &ValkeyBackend, namespace: &str) -> BTreeMap<Lane, StateCounts> {
    backend
        .counts(&ns(namespace))
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, c)| c.total() > 0)
        .collect()
}

fn resp_text(v: &RespValue) -> String {
    v.as_text()
        .unwrap_or_else(|| panic!("expected a string reply, got {v:?}"))
}

fn resp_int(v: &RespValue) -> i64 {
    match v {
        RespValue::Integer(n) => *n,
        other => panic!("expected an integer reply, got {other:?}"),
    }
}

fn resp_texts(v: &RespValue) -> Vec<String> {
    match v {
        RespValue::Array(items) => items.iter().map(resp_text).collect(),
        other => panic!("expected an array reply, got {other:?}"),
    }
}

/// Waits until both wake-up listeners of a deployment (two backend
/// instances) are subscribed on the first node: a `PUBLISH` on one of its
/// wake-up channels reaches two clients. Until then a waiter may be woken by
/// the listener's "(re)connected, wake everyone" notification, which would
/// make a wake-up test pass for the wrong reason.
async fn wait_for_listeners(server: &RedisServer, prefix: &str, listeners: i64) {
    let channel = format!("{prefix}:wake:probe/probe");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reached = resp_int(&server.command(&["PUBLISH", &channel, ""]).unwrap());
        if reached >= listeners {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {reached} of {listeners} wake-up listeners subscribed to {prefix}:wake:* within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ------------------------------------------------- 1. cross-instance wake-ups

/// A claimer parked in one instance is woken by a submission made through
/// another instance (two instances share nothing but the server, like two
/// processes), and its claim gets that submission.
async fn wakes_across_instances(server: &RedisServer) {
    let prefix = RedisServer::unique_prefix();
    let url = url_with(server, &prefix, "");
    let submitter = connect(&url).await;
    let waiter_side = connect(&url).await;
    assert!(waiter_side.capabilities().cross_process_wakeups);
    wait_for_listeners(server, &prefix, 2).await;

    let started = Instant::now();
    let mut waiter = {
        let b = waiter_side.clone();
        tokio::spawn(async move {
            b.wait_for_work(&ns("wake"), &[lane("main")], Duration::from_secs(10))
                .await
        })
    };
    // Give the waiter time to park. Should it not be parked yet when the
    // submission lands, the submission is cancelled (emptying the lane, so
    // the next one wakes again) and another one tried: the test does not
    // depend on when the waiter parked.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut submitted = None;
    for _ in 0..12 {
        let created = submitter.create_one(exec("wake", "main")).await.unwrap();
        assert_eq!(created.state, State::Waiting);
        if let Ok(joined) = tokio::time::timeout(Duration::from_millis(250), &mut waiter).await {
            joined.unwrap().unwrap();
            submitted = Some(created.id);
            break;
        }
        submitter
            .cancel(&created.id, CancelRequest::default())
            .await
            .unwrap();
    }
    let elapsed = started.elapsed();
    let Some(id) = submitted else {
        waiter.abort();
        panic!("the waiter was never woken by the other instance's submissions");
    };
    assert!(
        elapsed < Duration::from_secs(5),
        "the waiter returned after {elapsed:?}, not well before its 10 s timeout"
    );

    let claims = waiter_side
        .claim(claim_request("wake", &["main"], "waiter", 10))
        .await
        .unwrap();
    let ids: Vec<&ExecutionId> = claims.iter().map(|c| &c.id).collect();
    assert_eq!(ids, [&id], "the waiter's claim must get the submission");
    let seen = submitter.describe(&id).await.unwrap();
    assert_eq!(seen.state, State::Running);
    assert_eq!(seen.worker_id.unwrap().as_str(), "waiter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_work_wakes_on_submissions_of_another_instance() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    wakes_across_instances(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_work_wakes_on_submissions_of_another_instance_on_a_cluster() {
    let Some(server) = servers::valkey_cluster().await else {
        return;
    };
    wakes_across_instances(server).await;
}

// ------------------------------------------------ 2. recorded partition count

/// The first start records the partition count; later starts without one
/// use it, and a different one is a configuration error naming both.
#[tokio::test]
async fn partition_count_is_recorded_and_enforced() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let first = connect(&url_with(server, &prefix, "partitions=8")).await;
    assert_eq!(first.partitions().get(), 8);
    let recorded = server
        .command(&["HGET", &format!("{prefix}:{{ctl}}:meta"), "partitions"])
        .unwrap();
    assert_eq!(resp_text(&recorded), "8");

    let wrong = ValkeyBackend::connect(&url_with(server, &prefix, "partitions=16"))
        .await
        .unwrap_err();
    match &wrong {
        EngineError::Configuration { message } => {
            assert!(
                message.contains("8 partitions") && message.contains("16"),
                "the error should name both counts: {message}"
            );
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
    // The refused start changed nothing.
    let recorded = server
        .command(&["HGET", &format!("{prefix}:{{ctl}}:meta"), "partitions"])
        .unwrap();
    assert_eq!(resp_text(&recorded), "8");

    let again = connect(&url_with(server, &prefix, "")).await;
    assert_eq!(again.partitions().get(), 8);
    let explicit = ValkeyBackend::open(
        ValkeyConfig::from_url(&url_with(server, &prefix, ""))
            .unwrap()
            .with_partitions(PartitionCount::new(8).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(explicit.partitions().get(), 8);
    // Ids minted by the later instance route within the recorded count and
    // are found by the first.
    for _ in 0..40 {
        let created = again.create_one(exec("ns", "main")).await.unwrap();
        assert!(created.id.partition().get() < 8, "{}", created.id);
        assert_eq!(first.describe(&created.id).await.unwrap().id, created.id);
    }
}

// --------------------------------------------------- 3. concurrent first starts

async fn concurrent_first_starts(server: &RedisServer) {
    for (more, expected) in [("", PartitionCount::DEFAULT.get()), ("partitions=24", 24)] {
        let url = url_with(server, &RedisServer::unique_prefix(), more);
        let starts: Vec<_> = (0..8)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { ValkeyBackend::connect(&url).await })
            })
            .collect();
        let mut backends = Vec::new();
        for start in starts {
            backends.push(start.await.unwrap().unwrap());
        }
        for b in &backends {
            assert_eq!(b.partitions().get(), expected, "{url}");
            assert_eq!(b.library_version(), backends[0].library_version());
        }
        // They are one deployment: what one creates, every other finds.
        let created = backends[3].create_one(exec("ns", "main")).await.unwrap();
        for b in &backends {
            assert_eq!(b.describe(&created.id).await.unwrap().id, created.id);
        }
    }
}

/// Several instances starting at once on a new prefix all come up and agree
/// on the partition count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_starts_agree() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    concurrent_first_starts(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_starts_agree_on_a_cluster() {
    let Some(server) = servers::valkey_cluster().await else {
        return;
    };
    concurrent_first_starts(server).await;
}

// ------------------------------------------- 4. the library survives a flush

/// A server that lost the function library (a restart without persistence,
/// `FUNCTION FLUSH`) gets it back from the first call that misses it: every
/// kind of call made right after a flush succeeds. On a server of its own:
/// a flush of the shared one would pull the library from under other tests
/// running at the same time.
#[tokio::test]
async fn the_library_is_reloaded_after_a_flush() {
    let Some(server) = PrivateRedis::start_valkey_with(&["--appendonly", "no"]) else {
        return;
    };
    let backend = connect(&format!("{}?prefix=flush", server.url())).await;
    let first = backend.create_one(exec("flush", "main")).await.unwrap();
    let claimed = backend
        .claim(claim_request("flush", &["main"], "w", 1))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, first.id);

    // complete is the first call after the flush.
    server.command(&["FUNCTION", "FLUSH"]).unwrap();
    let done = backend
        .complete(&claimed[0].lease, b"one".to_vec())
        .await
        .unwrap();
    assert_eq!(done.state, State::Completed);

    // create is the first call after the flush.
    server.command(&["FUNCTION", "FLUSH"]).unwrap();
    let second = backend.create_one(exec("flush", "main")).await.unwrap();
    assert_eq!(second.state, State::Waiting);

    // claim is the first call after the flush.
    server.command(&["FUNCTION", "FLUSH"]).unwrap();
    let claimed = backend
        .claim(claim_request("flush", &["main"], "w", 1))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, second.id);
    let done = backend
        .complete(&claimed[0].lease, b"two".to_vec())
        .await
        .unwrap();
    assert_eq!(done.state, State::Completed);
    assert_eq!(done.result.as_deref(), Some(&b"two"[..]));

    let version = server.command(&["FCALL", "baton_version", "0"]).unwrap();
    assert_eq!(resp_text(&version), backend.library_version());
    assert_eq!(
        backend.describe(&first.id).await.unwrap().result.as_deref(),
        Some(&b"one"[..])
    );
}

// ------------------------------- 5. library versions, on a private server

/// A plain connection to a private server (on a cluster node: node-local,
/// no redirects).
async fn conn(server: &PrivateRedis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A private two-master Redis Cluster (slots split in halves), or `None`
/// like [`PrivateRedis::start`].
async fn private_cluster() -> Option<[PrivateRedis; 2]> {
    let no_aof: &[&str] = &["--appendonly", "no"];
    let nodes = [
        PrivateRedis::start_with(true, no_aof)?,
        PrivateRedis::start_with(true, no_aof)?,
    ];
    let slots = [("0", "8191"), ("8192", "16383")];
    for (i, (node, (first, last))) in nodes.iter().zip(slots).enumerate() {
        let mut c = conn(node).await;
        let _: () = redis::cmd("CLUSTER")
            .arg("SET-CONFIG-EPOCH")
            .arg(i + 1)
            .query_async(&mut c)
            .await
            .unwrap();
        let _: () = redis::cmd("CLUSTER")
            .arg("ADDSLOTSRANGE")
            .arg(first)
            .arg(last)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("CLUSTER")
        .arg("MEET")
        .arg("127.0.0.1")
        .arg(nodes[1].port())
        .query_async(&mut conn(&nodes[0]).await)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    'wait: loop {
        assert!(
            Instant::now() < deadline,
            "the private cluster did not form in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        for node in &nodes {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut conn(node).await)
                .await
                .unwrap();
            if !(info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:2")) {
                continue 'wait;
            }
        }
        return Some(nodes);
    }
}

async fn loaded_version(conn: &mut redis::aio::MultiplexedConnection) -> String {
    redis::cmd("FCALL")
        .arg("baton_version")
        .arg(0)
        .query_async(conn)
        .await
        .unwrap()
}

async fn load_fake_library(conn: &mut redis::aio::MultiplexedConnection, version: &str) {
    // Shaped like the real library's version line (`lua/common.lua`), so
    // a reader of either the function or the code sees `version`.
    let code = format!(
        "#!lua name=baton\nlocal LIBRARY_VERSION = '{version}'\n\
         redis.register_function('baton_version', function() return LIBRARY_VERSION end)"
    );
    let name: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(code)
        .query_async(conn)
        .await
        .unwrap();
    assert_eq!(name, "baton");
    assert_eq!(loaded_version(conn).await, version);
}

/// A library of an older Baton is replaced at start; a library of a newer
/// one is never replaced: starts fail with a configuration error, and a
/// running instance that misses its functions refuses too, until the newer
/// library is gone.
#[tokio::test]
async fn a_stale_library_is_replaced_and_a_newer_one_is_refused() {
    let Some(server) = PrivateRedis::start() else {
        return;
    };
    let mut conn = conn(&server).await;
    let url = format!("{}?prefix=lib", server.url());

    load_fake_library(&mut conn, "0:0000000000000000").await;
    let backend = connect(&url).await;
    assert_eq!(loaded_version(&mut conn).await, backend.library_version());
    assert!(
        backend
            .library_version()
            .starts_with(&format!("{}:", baton_valkey::LIBRARY_GENERATION))
    );
    // The real functions are there.
    let created = backend.create_one(exec("lib", "main")).await.unwrap();
    assert_eq!(created.state, State::Waiting);

    load_fake_library(&mut conn, "999:0").await;
    let refused = ValkeyBackend::connect(&url).await.unwrap_err();
    match &refused {
        EngineError::Configuration { message } => {
            assert!(message.contains("newer"), "{message}");
            assert!(message.contains("999:0"), "{message}");
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
    assert_eq!(loaded_version(&mut conn).await, "999:0");
    // The running instance finds its functions missing and must not replace
    // the newer library either.
    let missing = backend.create_one(exec("lib", "main")).await.unwrap_err();
    assert!(
        matches!(missing, EngineError::Configuration { .. }),
        "{missing:?}"
    );
    assert_eq!(loaded_version(&mut conn).await, "999:0");

    let _: String = redis::cmd("FUNCTION")
        .arg("DELETE")
        .arg("baton")
        .query_async(&mut conn)
        .await
        .unwrap();
    let reopened = connect(&url).await;
    assert_eq!(reopened.library_version(), backend.library_version());
    assert_eq!(loaded_version(&mut conn).await, backend.library_version());
    // Both instances work again, on the same data.
    let claims = backend
        .claim(claim_request("lib", &["main"], "w", 10))
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].id, created.id);
    let done = reopened
        .complete(&claims[0].lease, Vec::new())
        .await
        .unwrap();
    assert_eq!(done.state, State::Completed);
}

/// Instances starting at once on a server without the library all come up,
/// and the server ends up with exactly one library, this build's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_starts_on_an_empty_server_load_the_library() {
    let Some(server) = PrivateRedis::start() else {
        return;
    };
    let url = format!("{}?prefix=first", server.url());
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { ValkeyBackend::connect(&url).await })
        })
        .collect();
    let mut backends = Vec::new();
    for start in starts {
        backends.push(start.await.unwrap().unwrap());
    }
    let mut conn = conn(&server).await;
    assert_eq!(
        loaded_version(&mut conn).await,
        backends[0].library_version()
    );
    let libraries: redis::Value = redis::cmd("FUNCTION")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    let redis::Value::Array(libraries) = libraries else {
        panic!("FUNCTION LIST answered {libraries:?}");
    };
    assert_eq!(libraries.len(), 1, "{libraries:?}");
    for b in &backends {
        assert_eq!(b.partitions(), PartitionCount::DEFAULT);
    }
    let created = backends[5].create_one(exec("ns", "main")).await.unwrap();
    assert_eq!(
        backends[2].describe(&created.id).await.unwrap().id,
        created.id
    );
}

fn cluster_url(nodes: &[PrivateRedis; 2], prefix: &str) -> String {
    format!(
        "redis+cluster://127.0.0.1:{},127.0.0.1:{}?prefix={prefix}",
        nodes[0].port(),
        nodes[1].port()
    )
}

async fn delete_library(conn: &mut redis::aio::MultiplexedConnection) {
    let _: () = redis::cmd("FUNCTION")
        .arg("DELETE")
        .arg("baton")
        .query_async(conn)
        .await
        .unwrap();
}

/// On a cluster the library is loaded on every primary, reloaded when one
/// primary lost it, a stale one on some primary is replaced, and a newer
/// one on some primary is refused and kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_every_primary_gets_the_library() {
    let Some(nodes) = private_cluster().await else {
        return;
    };
    let (mut n0, mut n1) = (conn(&nodes[0]).await, conn(&nodes[1]).await);
    let url = cluster_url(&nodes, "lib");
    let backend = connect(&url).await;
    let ours = backend.library_version().to_owned();
    assert_eq!(loaded_version(&mut n0).await, ours);
    assert_eq!(loaded_version(&mut n1).await, ours);

    // The second primary loses the library (a restart without
    // persistence): calls routed there load it again.
    delete_library(&mut n1).await;
    let mut created = Vec::new();
    for _ in 0..32 {
        created.push(backend.create_one(exec("lib", "main")).await.unwrap().id);
    }
    assert_eq!(loaded_version(&mut n1).await, ours);
    assert_eq!(loaded_version(&mut n0).await, ours);
    let claims = claim_up_to(&backend, "lib", &["main"], "w", 100).await;
    assert_eq!(claims.len(), created.len());

    // A stale library on one primary is replaced at start.
    load_fake_library(&mut n0, "0:0000000000000000").await;
    connect(&url).await;
    assert_eq!(loaded_version(&mut n0).await, ours);
    assert_eq!(loaded_version(&mut n1).await, ours);

    // A newer library on one primary is refused and kept.
    load_fake_library(&mut n0, "999:0").await;
    let refused = ValkeyBackend::connect(&url).await.unwrap_err();
    assert!(
        matches!(&refused, EngineError::Configuration { message } if message.contains("newer")),
        "{refused:?}"
    );
    assert_eq!(loaded_version(&mut n0).await, "999:0");
    assert_eq!(loaded_version(&mut n1).await, ours);
}

/// A newer library on one primary is never replaced, also while another
/// primary has no library at all (it restarted without persistence).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_newer_library_is_kept_while_another_primary_lost_its_library() {
    let Some(nodes) = private_cluster().await else {
        return;
    };
    let mut n0 = conn(&nodes[0]).await;
    load_fake_library(&mut n0, "999:0").await;
    let started = ValkeyBackend::connect(&cluster_url(&nodes, "lib")).await;
    assert_eq!(
        loaded_version(&mut n0).await,
        "999:0",
        "the newer library on the first primary was replaced (the start answered {:?})",
        started.as_ref().map(|b| b.library_version().to_owned())
    );

    match started {
        Err(EngineError::Configuration { message }) => {
            assert!(message.contains("newer"), "{message}")
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

// ------------------------------------------- 6. the key schema on a cluster

/// Every operation, scheduler pass and admin read works on a cluster (a
/// key outside the partition's slot would fail with CROSSSLOT or a
/// non-local-key error), and the bookkeeping adds up through a history
/// that exercises each of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_schema_never_crosses_cluster_slots() {
    let Some(server) = servers::valkey_cluster().await else {
        return;
    };
    let start = Timestamp::now_system();
    let clock = Arc::new(ManualClock::new(start));
    let backend = ValkeyBackend::open(
        ValkeyConfig::from_url(&url_with(server, &RedisServer::unique_prefix(), ""))
            .unwrap()
            .with_clock(clock.clone()),
    )
    .await
    .unwrap();
    let n = "csafe";
    // With the history on, its keys are written too.
    assert!(!backend.set_history(&ns(n), true).await.unwrap());
    // Lane a's executions carry a rule's keep (1 s): they finish into
    // `kept`, and the trim a minute later reads them there.
    backend
        .set_retention(&ns(n), Some(&lane("a")), Duration::from_secs(1))
        .await
        .unwrap();
    // A fair limit over every lane: turns and their per-key sets ride along
    // every path below.
    backend
        .set_limit(&fair_limit(n, "csafe-turns", None, "lane"))
        .await
        .unwrap();
    let lanes = ["a", "b", "c", "d"];
    // Lane d: deadlines in 2 s. Lanes a-c: every i % 5 == 0 delayed by 1 s,
    // the rest waiting.
    let submission = |i: usize| {
        let mut e = exec(n, lanes[i % 4])
            .with_idempotency_key(IdempotencyKey::new(format!("key-{i}")).unwrap());
        if i % 4 == 3 {
            e = e.with_deadline(start.saturating_add(Duration::from_secs(2)));
        } else if i.is_multiple_of(5) {
            e = e.with_delay_ms(1_000);
        }
        e
    };
    let mut ids: Vec<ExecutionId> = Vec::new();
    for batch in 0..4 {
        let outcomes = backend
            .create((batch * 50..(batch + 1) * 50).map(submission).collect())
            .await
            .unwrap();
        for o in outcomes {
            assert!(o.created);
            ids.push(o.id);
        }
    }
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 200);
    let partitions_used: BTreeSet<u16> = ids.iter().map(|id| id.partition().get()).collect();
    assert!(
        partitions_used.len() > 8,
        "200 executions should spread over the partitions: {partitions_used:?}"
    );
    // Submitting every key again finds the same executions.
    let again = backend
        .create((0..200).map(submission).collect())
        .await
        .unwrap();
    for (o, id) in again.iter().zip(&ids) {
        assert!(!o.created, "{} was created twice", o.id);
        assert_eq!(&o.id, id);
    }

    // Lane a: claim 25 of its 40 waiting; complete 15, fail 5 for good,
    // leave 5 running.
    let claims = claim_up_to(&backend, n, &["a"], "worker-1", 25).await;
    assert_eq!(claims.len(), 25);
    for (k, c) in claims.iter().enumerate() {
        assert_eq!(c.lane.as_str(), "a");
        let snap = if k < 15 {
            backend.complete(&c.lease, b"ok".to_vec()).await.unwrap()
        } else if k < 20 {
            backend
                .fail(&c.lease, Failure::permanent("broken"))
                .await
                .unwrap()
        } else {
            continue;
        };
        assert!(snap.state.is_terminal());
    }
    // Lane b: cancel its 10 delayed. Lane c: cancel 5 waiting.
    let mut cancelled_c = 0;
    for (i, id) in ids.iter().enumerate() {
        let cancel = if i % 20 == 5 {
            true
        } else if i % 4 == 2 && i % 5 != 0 && cancelled_c < 5 {
            cancelled_c += 1;
            true
        } else {
            false
        };
        if cancel {
            let snap = backend
                .cancel(id, CancelRequest::because("no"))
                .await
                .unwrap()
                .snapshot;
            assert_eq!(snap.state, State::Cancelled);
        }
    }

    let sc = |waiting, delayed, running, completed, failed, cancelled, expired| StateCounts {
        waiting,
        delayed,
        running,
        completed,
        failed,
        cancelled,
        expired,
        blocked: 0,
        suspended: 0,
        paused: 0,
        skipped: 0,
    };
    let expected: BTreeMap<Lane, StateCounts> = [
        (lane("a"), sc(15, 10, 5, 15, 5, 0, 0)),
        (lane("b"), sc(40, 0, 0, 0, 0, 10, 0)),
        (lane("c"), sc(35, 10, 0, 0, 0, 5, 0)),
        (lane("d"), sc(50, 0, 0, 0, 0, 0, 0)),
    ]
    .into();
    assert_eq!(counts(&backend, n).await, expected);
    let listed = list_all(&backend, n).await;
    assert_eq!(listed.len(), 200);
    assert_eq!(
        listed.iter().map(|s| &s.id).collect::<BTreeSet<_>>(),
        ids.iter().collect::<BTreeSet<_>>()
    );
    assert_eq!(tally(&listed), expected);

    // A minute later: every pass on every partition.
    clock.advance(Duration::from_secs(60));
    let (mut promoted, mut reclaimed, mut expired, mut trimmed) = (0, 0, 0, 0);
    for p in backend.partitions().iter() {
        promoted += backend.promote_due(p, 1_000).await.unwrap().processed;
        reclaimed += backend
            .reclaim_expired_leases(p, 1_000)
            .await
            .unwrap()
            .processed;
        expired += backend.expire_deadlines(p, 1_000).await.unwrap().processed;
        trimmed += backend
            .trim_terminal(p, Duration::ZERO, 1_000)
            .await
            .unwrap()
            .processed;
    }
    assert_eq!(
        (promoted, reclaimed, expired, trimmed),
        (20, 5, 50, 15 + 5 + 15 + 50)
    );
    // Nothing is left due (the reclaimed wait out their backoff, and the
    // clock stands still).
    for p in backend.partitions().iter() {
        assert_eq!(backend.promote_due(p, 1_000).await.unwrap().processed, 0);
        assert_eq!(
            backend
                .reclaim_expired_leases(p, 1_000)
                .await
                .unwrap()
                .processed,
            0
        );
        assert_eq!(
            backend.expire_deadlines(p, 1_000).await.unwrap().processed,
            0
        );
    }
    let expected: BTreeMap<Lane, StateCounts> = [
        (lane("a"), sc(25, 5, 0, 0, 0, 0, 0)),
        (lane("b"), sc(40, 0, 0, 0, 0, 0, 0)),
        (lane("c"), sc(45, 0, 0, 0, 0, 0, 0)),
    ]
    .into();
    assert_eq!(counts(&backend, n).await, expected);
    let listed = list_all(&backend, n).await;
    assert_eq!(listed.len(), 115);
    assert_eq!(tally(&listed), expected);
    // Trimmed executions are gone, and so are their idempotency keys.
    let trimmed_id = &claims[0].id;
    assert!(matches!(
        backend.describe(trimmed_id).await,
        Err(EngineError::NotFound { .. })
    ));
    let trimmed_index = ids.iter().position(|id| id == trimmed_id).unwrap();
    let resubmitted = backend.create_one(submission(trimmed_index)).await.unwrap();
    assert!(resubmitted.created);
    assert_ne!(&resubmitted.id, trimmed_id);

    // One claim over three lanes and many partitions takes the 100 first.
    let claims = claim_up_to(&backend, n, &["a", "b", "c"], "worker-2", 100).await;
    assert_eq!(claims.len(), 100);
    let running: u64 = counts(&backend, n).await.values().map(|c| c.running).sum();
    assert_eq!(running, 100);

    // Partition ownership lives under the control hash tag.
    let node = NodeId::new("node-1").unwrap();
    let owned = backend
        .sync_ownership(&node, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(owned.live_nodes, 1);
    assert_eq!(owned.owned.len(), usize::from(backend.partitions().get()));
    let owners = backend.partition_owners().await.unwrap();
    assert!(owners.iter().all(|o| o.owner.as_ref() == Some(&node)));
    backend.release_ownership(&node).await.unwrap();
    let owners = backend.partition_owners().await.unwrap();
    assert!(owners.iter().all(|o| o.owner.is_none()), "{owners:?}");
}

// ------------------------------------------------ 7. claim-discovery hints

/// A lane's hint lists exactly the partitions holding its waiting work:
/// raised by submissions, dropped (in the background) once claims drained
/// them, raised again by the next submission.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_hints_follow_the_partitions_holding_work() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let backend = connect(&url_with(server, &prefix, "")).await;
    let key = format!("{prefix}:hint:{{hints/drain}}");
    let hinted = || -> BTreeSet<u16> {
        resp_texts(&server.command(&["ZRANGE", &key, "0", "-1"]).unwrap())
            .iter()
            .map(|p| p.parse().unwrap())
            .collect()
    };

    let mut created = BTreeSet::new();
    for _ in 0..20 {
        created.insert(backend.create_one(exec("hints", "drain")).await.unwrap().id);
    }
    // Another lane's work is hinted under its own key only.
    let other = backend.create_one(exec("hints", "other")).await.unwrap();
    let holding: BTreeSet<u16> = created.iter().map(|id| id.partition().get()).collect();
    assert_eq!(hinted(), holding);

    let claimed = claim_up_to(&backend, "hints", &["drain"], "w", usize::MAX).await;
    assert_eq!(
        claimed
            .iter()
            .map(|c| c.id.clone())
            .collect::<BTreeSet<_>>(),
        created
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = resp_int(&server.command(&["ZCARD", &key]).unwrap());
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the drained lane is still hinted in {left} partitions after 2 s: {:?}",
            hinted()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let next = backend.create_one(exec("hints", "drain")).await.unwrap();
    assert_eq!(hinted(), BTreeSet::from([next.id.partition().get()]));
    let claimed = backend
        .claim(claim_request("hints", &["drain"], "w", 10))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, next.id);
    // The other lane's hint was untouched by all this.
    let other_key = format!("{prefix}:hint:{{hints/other}}");
    let other_hint = resp_texts(&server.command(&["ZRANGE", &other_key, "0", "-1"]).unwrap());
    assert_eq!(other_hint, [other.id.partition().get().to_string()]);
}

/// The backend writes a new execution's waiting-set member itself; every
/// function that later takes the execution out of the set recomputes it
/// from the record. Both must agree to the byte, at every priority, or a
/// cancelled or claimed execution would leave its entry behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_members_written_on_create_are_the_ones_functions_remove() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let backend = connect(&url_with(server, &prefix, "partitions=4")).await;
    let priorities = [i32::MIN, -7, 0, 1, 42, i32::MAX];
    let mut ids = Vec::new();
    for pri in priorities {
        for lane_name in ["cancelled", "claimed"] {
            let new = exec("members", lane_name).with_priority(pri);
            ids.push((lane_name, backend.create_one(new).await.unwrap().id));
        }
    }
    let waiting_entries = || -> i64 {
        (0..4)
            .flat_map(|p| ["cancelled", "claimed"].map(move |l| (p, l)))
            .map(|(p, l)| {
                let key = format!("{prefix}:{{p:{p}}}:w:members/{l}");
                resp_int(&server.command(&["ZCARD", &key]).unwrap())
            })
            .sum()
    };
    assert_eq!(waiting_entries(), 12);
    for (lane_name, id) in &ids {
        if *lane_name == "cancelled" {
            backend.cancel(id, CancelRequest::default()).await.unwrap();
        }
    }
    assert_eq!(waiting_entries(), 6, "cancel left waiting entries behind");
    let claimed = claim_up_to(&backend, "members", &["claimed"], "w", usize::MAX).await;
    let got: Vec<i32> = claimed
        .iter()
        .map(|c| c.id.clone())
        .map(|id| {
            ids.iter()
                .position(|(_, i)| *i == id)
                .map(|k| priorities[k / 2])
                .unwrap()
        })
        .collect();
    let mut descending = priorities.to_vec();
    descending.reverse();
    assert_eq!(got, descending, "claims must come highest priority first");
    assert_eq!(waiting_entries(), 0, "claims left waiting entries behind");
}

/// A priority edit of a waiting execution replaces its member in the
/// waiting set it is in (plain or conditional) rather than adding one: the
/// sets keep one member per waiting execution, and claims follow the new
/// priorities and then leave the sets empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_edits_replace_waiting_members() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let backend = connect(&url_with(server, &prefix, "partitions=1")).await;
    let gpu = baton_core::CapabilityName::new("gpu").unwrap();
    let mut ids = Vec::new();
    for i in 0..4 {
        let mut new = exec("edits", "l");
        if i == 2 {
            new = new.with_capability(gpu.clone());
        }
        ids.push(backend.create_one(new).await.unwrap().id);
    }
    let members = |set: &str| -> i64 {
        let key = format!("{prefix}:{{p:0}}:{set}:edits/l");
        resp_int(&server.command(&["ZCARD", &key]).unwrap())
    };
    assert_eq!((members("w"), members("wx")), (3, 1));
    for (k, pri) in [(3, 5), (2, 9), (0, -3), (3, 5), (1, 0)] {
        let snap = backend.set_priority(&ids[k], pri).await.unwrap();
        assert_eq!((snap.priority, snap.state), (pri, State::Waiting));
        assert_eq!(
            (members("w"), members("wx")),
            (3, 1),
            "an edit left a member behind"
        );
    }
    let claimed = backend
        .claim(claim_request("edits", &["l"], "w", 10).with_capabilities([gpu]))
        .await
        .unwrap();
    let order: Vec<&ExecutionId> = claimed.iter().map(|c| &c.id).collect();
    assert_eq!(order, vec![&ids[2], &ids[3], &ids[1], &ids[0]]);
    assert_eq!((members("w"), members("wx")), (0, 0));
}

/// The worker registry keeps a namespace's entries under a hash tag of
/// its own and forgets workers unseen for ten TTLs when later claims are
/// recorded; renews reach a worker in every namespace it claimed from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_registry_forgets_long_gone_workers() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=1")).await;
    let ttl = baton_core::Limits::default().worker_ttl;
    let entries = |namespace: &str| -> (i64, i64) {
        let base = format!("{prefix}:{{w:{namespace}}}");
        (
            resp_int(
                &server
                    .command(&["HLEN", &format!("{base}:workers")])
                    .unwrap(),
            ),
            resp_int(&server.command(&["ZCARD", &format!("{base}:seen")]).unwrap()),
        )
    };
    backend.create_one(exec("reg-a", "l")).await.unwrap();
    let mut leases = Vec::new();
    for namespace in ["reg-a", "reg-b"] {
        let found = backend
            .claim(claim_request(namespace, &["l"], "old", 1))
            .await
            .unwrap();
        leases.extend(found.into_iter().map(|c| c.lease));
    }
    assert_eq!(leases.len(), 1);
    assert_eq!((entries("reg-a"), entries("reg-b")), ((1, 1), (1, 1)));
    // Every key of the registry expires (ten TTLs after the last
    // sighting), and a renew pushes the expiry back: a worker busy with
    // long jobs claims rarely but is still reached through its renews.
    let keys = [
        format!("{prefix}:{{wk:old}}:ns"),
        format!("{prefix}:{{w:reg-a}}:workers"),
        format!("{prefix}:{{w:reg-b}}:seen"),
    ];
    for key in &keys {
        assert!(
            resp_int(&server.command(&["PTTL", key]).unwrap()) > 0,
            "{key} expires"
        );
        server.command(&["PEXPIRE", key, "5000"]).unwrap();
    }
    clock.advance(ttl / 2);
    let renew = baton_core::RenewRequest {
        worker_id: WorkerId::new("old").unwrap(),
        lease_ttl: Duration::from_secs(30),
        leases,
    };
    backend.renew(renew).await.unwrap();
    for key in &keys {
        let left = resp_int(&server.command(&["PTTL", key]).unwrap());
        assert!(
            left > 5_000,
            "{key}: the renew pushed its expiry back ({left} ms left)"
        );
    }
    let seen_at = baton_core::Clock::now(clock.as_ref());
    for namespace in ["reg-a", "reg-b"] {
        let listed = backend.workers(&ns(namespace), 10).await.unwrap();
        assert_eq!(listed.len(), 1, "{namespace}: {listed:?}");
        assert_eq!(
            (listed[0].last_seen, listed[0].leases),
            (seen_at, 1),
            "a renew reaches every namespace"
        );
    }
    clock.advance(ttl * 10 + Duration::from_millis(1));
    backend
        .claim(claim_request("reg-a", &["l"], "new", 1))
        .await
        .unwrap();
    assert_eq!(entries("reg-a"), (1, 1), "the stale worker is forgotten");
    let listed = backend.workers(&ns("reg-a"), 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].worker_id.as_str(), "new");
}

/// Payloads are written before the function decides what to create; a
/// submission answered with an existing execution (its idempotency key is
/// known, from an earlier call or earlier in the same batch) must not leave
/// its payload key behind, and trimming removes the payload with the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_idempotency_keys_and_trims_leave_no_payload_behind() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let keyed =
        |k: &str| exec("idem", "once").with_idempotency_key(IdempotencyKey::new(k).unwrap());
    let payload_keys = || -> Vec<String> {
        resp_texts(
            &server
                .command(&["KEYS", &format!("{prefix}:*:p:*")])
                .unwrap(),
        )
    };
    let first = backend
        .create(vec![
            keyed("a"),
            keyed("a"),
            keyed("b"),
            exec("idem", "once"),
        ])
        .await
        .unwrap();
    assert!(first[0].created && !first[1].created && first[2].created && first[3].created);
    assert_eq!(first[1].id, first[0].id);
    assert_eq!(payload_keys().len(), 3, "{:?}", payload_keys());
    let again = backend.create(vec![keyed("a"), keyed("b")]).await.unwrap();
    assert!(again.iter().all(|o| !o.created));
    assert_eq!(payload_keys().len(), 3, "{:?}", payload_keys());

    for o in [&first[0], &first[2], &first[3]] {
        backend
            .cancel(&o.id, CancelRequest::default())
            .await
            .unwrap();
    }
    clock.advance(Duration::from_secs(10));
    for p in backend.partitions().iter() {
        backend
            .trim_terminal(p, Duration::from_secs(1), 100)
            .await
            .unwrap();
    }
    assert_eq!(payload_keys(), Vec::<String>::new());
}

/// A flow's index keys (children per parent, child keys, members per root)
/// and the cascade queue hold exactly what lives: a trimmed member leaves
/// them, and a finished cascade leaves no queue behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_indexes_hold_only_what_lives() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let keys = |what: &str| -> Vec<String> {
        let mut k = resp_texts(
            &server
                .command(&["KEYS", &format!("{prefix}:*:{what}")])
                .unwrap(),
        );
        k.sort();
        k
    };
    backend.set_history(&ns("flow"), true).await.unwrap();
    let root = backend.create_one(exec("flow", "root")).await.unwrap().id;
    let child = |key: &str| {
        exec("flow", "child")
            .with_parent(root.clone())
            .with_child_key(baton_core::ChildKey::new(key).unwrap())
    };
    let out = backend
        .create(vec![child("a"), child("b"), child("a")])
        .await
        .unwrap();
    assert!(out[0].created && out[1].created && !out[2].created);
    let grandchild = backend
        .create_one(exec("flow", "g").with_parent(out[0].id.clone()))
        .await
        .unwrap()
        .id;
    let u = |id: &ExecutionId| id.uuid().simple().to_string();
    let p = root.partition().get();
    assert_eq!(
        keys("ch:*"),
        vec![
            format!("{prefix}:{{p:{p}}}:ch:{}", u(&out[0].id)),
            format!("{prefix}:{{p:{p}}}:ch:{}", u(&root)),
        ]
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    assert_eq!(
        keys("ck:*"),
        vec![format!("{prefix}:{{p:{p}}}:ck:{}", u(&root))]
    );
    assert_eq!(
        keys("tr:*"),
        vec![format!("{prefix}:{{p:{p}}}:tr:{}", u(&root))]
    );
    let tree = backend.tree(&grandchild, 10).await.unwrap();
    assert_eq!(tree.items.len(), 4);
    let cancelled = backend
        .cancel(&root, CancelRequest::default())
        .await
        .unwrap();
    assert_eq!((cancelled.cascaded, cancelled.cascade_pending), (3, false));
    assert_eq!(keys("cq"), Vec::<String>::new(), "nothing queued");
    assert_eq!(keys("ev:*").len(), 4, "a history each: {:?}", keys("ev:*"));
    clock.advance(Duration::from_secs(10));
    for p in backend.partitions().iter() {
        backend
            .trim_terminal(p, Duration::from_secs(1), 100)
            .await
            .unwrap();
    }
    for what in ["ch:*", "ck:*", "tr:*", "open:*", "e:*", "p:*", "ev:*"] {
        assert_eq!(keys(what), Vec::<String>::new(), "{what} after trim");
    }
}

/// `baton_create` checks a child's parent inside its call: a parent gone
/// since the backend read it (trimmed in between) refuses the call's share,
/// writes nothing and deletes the payload written beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_refuses_a_parent_gone_since_it_was_read() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    // Loads the library under this prefix's deployment.
    let (_backend, _clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let base = format!("{prefix}:{{p:1}}");
    let uuid = uuid::Uuid::now_v7().simple().to_string();
    let missing = uuid::Uuid::now_v7().simple().to_string();
    server
        .command(&["SET", &format!("{base}:p:{uuid}"), "{}"])
        .unwrap();
    let reply = server
        .command(&[
            "FCALL",
            "baton_create",
            "1",
            &base,
            "1", // one item:
            &uuid,
            "ns",
            "lane",
            "waiting",
            "m",
            "[]",
            "",
            "",
            "",
            "record",
            "", // no session
            "", // no version
            "1",
            "0",
            &missing,
            "",
            &missing, // one child: position 0
        ])
        .unwrap();
    assert!(
        matches!(&reply, RespValue::Array(items) if items.len() == 2
            && resp_text(&items[0]) == "parent_missing"
            && matches!(items[1], RespValue::Integer(0))),
        "{reply:?}"
    );
    for key in [format!("{base}:p:{uuid}"), format!("{base}:e:{uuid}")] {
        let exists = server.command(&["EXISTS", &key]).unwrap();
        assert!(matches!(exists, RespValue::Integer(0)), "{key}: {exists:?}");
    }
}

/// The dependency index (`dn:` per upstream) and the new record fields go
/// with the flow: skips and releases leave the index as it was, and a
/// trimmed flow leaves no dependency key behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependency_indexes_hold_only_what_lives() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let keys = |what: &str| -> BTreeSet<String> {
        resp_texts(
            &server
                .command(&["KEYS", &format!("{prefix}:*:{what}")])
                .unwrap(),
        )
        .into_iter()
        .collect()
    };
    let root = backend.create_one(exec("deps", "root")).await.unwrap().id;
    let child = || exec("deps", "member").with_parent(root.clone());
    let ups = backend.create(vec![child(), child()]).await.unwrap();
    let (a, b) = (ups[0].id.clone(), ups[1].id.clone());
    let d = backend
        .create_one(child().with_dependencies([a.clone(), b.clone()]))
        .await
        .unwrap();
    assert_eq!(d.state, State::Blocked);
    let e = backend
        .create_one(child().with_dependencies([d.id.clone()]))
        .await
        .unwrap()
        .id;
    let dn = |id: &ExecutionId| {
        format!(
            "{prefix}:{{p:{}}}:dn:{}",
            id.partition().get(),
            id.uuid().simple()
        )
    };
    assert_eq!(keys("dn:*"), [dn(&a), dn(&b), dn(&d.id)].into());
    let claims = backend
        .claim(claim_request("deps", &["member"], "w", 10))
        .await
        .unwrap();
    assert_eq!(claims.len(), 2, "only the upstreams are claimable");
    for c in &claims {
        if c.id == a {
            backend
                .fail(&c.lease, Failure::permanent("no"))
                .await
                .unwrap();
        } else {
            backend.complete(&c.lease, b"1".to_vec()).await.unwrap();
        }
    }
    for id in [&d.id, &e] {
        let snap = backend.describe(id).await.unwrap();
        assert_eq!(
            (snap.state, snap.waiting_on),
            (State::Skipped, None),
            "{id}"
        );
    }
    assert_eq!(keys("dn:*").len(), 3, "the index changes only with trims");
    backend
        .cancel(&root, CancelRequest::default())
        .await
        .unwrap();
    assert_eq!(keys("cq"), BTreeSet::new(), "nothing queued");
    clock.advance(Duration::from_secs(10));
    for p in backend.partitions().iter() {
        backend
            .trim_terminal(p, Duration::from_secs(1), 100)
            .await
            .unwrap();
    }
    for what in ["dn:*", "ch:*", "tr:*", "open:*", "e:*", "p:*"] {
        assert_eq!(keys(what), BTreeSet::new(), "{what} after trim");
    }
}

/// A delete removes what a trim removes: after a forced delete of a flow
/// (a running member, child keys, a dependency, the root's idempotency key
/// and deadline) no key of its executions is left, nor any entry of them in
/// the partition's indexes; a child deleted alone leaves its parent's
/// children and child keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_leaves_no_key_of_what_it_removed() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, _clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let keys = |what: &str| -> BTreeSet<String> {
        resp_texts(
            &server
                .command(&["KEYS", &format!("{prefix}:*:{what}")])
                .unwrap(),
        )
        .into_iter()
        .collect()
    };
    backend.set_history(&ns("del"), true).await.unwrap();
    // Roots finish into `kept`, which the delete must empty.
    backend
        .set_retention(&ns("del"), None, Duration::from_secs(3_600))
        .await
        .unwrap();
    let root = backend
        .create_one(
            exec("del", "root")
                .with_idempotency_key(IdempotencyKey::new("once").unwrap())
                .with_deadline(Timestamp::from_millis(1_700_003_600_000)),
        )
        .await
        .unwrap()
        .id;
    let child = |key: &str| {
        exec("del", "member")
            .with_parent(root.clone())
            .with_child_key(baton_core::ChildKey::new(key).unwrap())
    };
    let a = backend.create_one(child("a")).await.unwrap().id;
    backend
        .create_one(child("b").with_dependencies([a.clone()]))
        .await
        .unwrap();
    let lone = backend.create_one(child("c")).await.unwrap().id;
    backend
        .create_one(exec("del", "leaf").with_parent(a.clone()))
        .await
        .unwrap();
    let claims = backend
        .claim(claim_request("del", &["member"], "w", 10))
        .await
        .unwrap();
    assert_eq!(claims.len(), 2, "a and c run; b waits on a");
    // A finished child alone: its parent no longer holds it.
    let c = claims.iter().find(|c| c.id == lone).unwrap();
    backend.complete(&c.lease, b"1".to_vec()).await.unwrap();
    let report = backend.delete(&lone, false).await.unwrap();
    assert_eq!((report.deleted, report.cancelled), (1, false));
    let p = root.partition().get();
    let ck = format!("{prefix}:{{p:{p}}}:ck:{}", root.uuid().simple());
    let fields = resp_texts(&server.command(&["HKEYS", &ck]).unwrap());
    assert_eq!(fields, vec!["a".to_owned(), "b".to_owned()]);
    let ch = format!("{prefix}:{{p:{p}}}:ch:{}", root.uuid().simple());
    let children = resp_texts(&server.command(&["ZRANGE", &ch, "0", "-1"]).unwrap());
    assert_eq!(children.len(), 2);
    assert!(!children.contains(&lone.uuid().simple().to_string()));
    // Every execution left has a history; the one deleted took its own.
    assert_eq!(keys("ev:*").len(), 4, "{:?}", keys("ev:*"));
    // The whole flow, with a running member.
    let report = backend.delete(&root, true).await.unwrap();
    assert_eq!((report.deleted, report.cancelled), (4, true));
    for what in [
        "e:*",
        "p:*",
        "ch:*",
        "ck:*",
        "tr:*",
        "open:*",
        "dn:*",
        "ns:*",
        "w:*",
        "wx:*",
        "cq",
        "idem",
        "done",
        "kept",
        "deadlines",
        "leases",
        "delayed",
        "ev:*",
    ] {
        assert_eq!(keys(what), BTreeSet::new(), "{what} after the delete");
    }
}

/// The finishes the conformance cases do not reach on this backend's
/// paths of their own: a lease reclaim with no attempts left skips the
/// dependents in its call, and the complete of an execution outside any
/// counter (the flow's root, which a member may depend on) releases its
/// dependents in the combined complete's call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reclaims_and_completes_of_roots_reach_dependents() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let root = backend.create_one(exec("deps", "root")).await.unwrap().id;
    let once = baton_core::RetryPolicy {
        max_attempts: 1,
        ..Default::default()
    };
    let up = backend
        .create_one(
            exec("deps", "up")
                .with_parent(root.clone())
                .with_retry(once),
        )
        .await
        .unwrap()
        .id;
    let member = || exec("deps", "member").with_parent(root.clone());
    let on_up = backend
        .create_one(member().with_dependencies([up.clone()]))
        .await
        .unwrap()
        .id;
    let on_root = backend
        .create_one(member().with_dependencies([root.clone()]))
        .await
        .unwrap()
        .id;
    let lost = backend
        .claim(claim_request("deps", &["up"], "w", 1).with_lease_ttl(Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(lost.len(), 1);
    clock.advance(Duration::from_secs(2));
    let p = up.partition();
    backend.reclaim_expired_leases(p, 100).await.unwrap();
    assert_eq!(backend.describe(&up).await.unwrap().state, State::Failed);
    assert_eq!(
        backend.describe(&on_up).await.unwrap().state,
        State::Skipped,
        "skipped in the reclaim's call"
    );
    let root_claim = backend
        .claim(claim_request("deps", &["root"], "w", 1))
        .await
        .unwrap()
        .pop()
        .unwrap();
    backend
        .complete(&root_claim.lease, b"\"r\"".to_vec())
        .await
        .unwrap();
    let released = backend.describe(&on_root).await.unwrap();
    assert_eq!(
        (released.state, released.updated_at),
        (State::Waiting, baton_core::Clock::now(clock.as_ref()))
    );
    let claim = backend
        .claim(claim_request("deps", &["member"], "w", 10))
        .await
        .unwrap();
    assert_eq!(claim.len(), 1);
    assert_eq!(claim[0].id, on_root);
    assert_eq!(
        claim[0].upstream[&root],
        baton_core::Upstream {
            state: State::Completed,
            result: Some(b"\"r\"".to_vec())
        }
    );
}

/// A tree cancel that does not fit its budget queues both kinds of work:
/// the rest of the subtree, and the dependents of what it cancelled; the
/// cascade pass works them off in small steps, in order, until every
/// dependent (and every dependent of a dependent) outside the subtree is
/// skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cascade_pass_works_off_both_kinds_of_queued_work() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let mut config = ValkeyConfig::from_url(&url_with(server, &prefix, "partitions=4")).unwrap();
    config.clock = clock.clone();
    let config = config.with_limits(baton_core::Limits {
        cascade_budget: 3,
        ..Default::default()
    });
    let backend = ValkeyBackend::open(config).await.unwrap();
    let root = backend.create_one(exec("deps", "root")).await.unwrap().id;
    let member = |parent: &ExecutionId| exec("deps", "member").with_parent(parent.clone());
    let branch = backend.create_one(member(&root)).await.unwrap().id;
    let leaves: Vec<ExecutionId> = backend
        .create(vec![member(&branch); 4])
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    let mut outside = Vec::new();
    for leaf in &leaves {
        let d = backend
            .create_one(member(&root).with_dependencies([leaf.clone()]))
            .await
            .unwrap()
            .id;
        let e = backend
            .create_one(member(&root).with_dependencies([d.clone()]))
            .await
            .unwrap()
            .id;
        outside.extend([d, e]);
    }
    let out = backend
        .cancel(&branch, CancelRequest::default())
        .await
        .unwrap();
    assert_eq!((out.cascaded, out.cascade_pending), (3, true));
    let p = root.partition();
    let mut steps = 0;
    loop {
        let step = backend.cascade_due(p, 2).await.unwrap();
        steps += 1;
        assert!(steps < 50, "the pass must move on");
        if step.next_due.is_none() {
            break;
        }
    }
    for leaf in &leaves {
        assert_eq!(
            backend.describe(leaf).await.unwrap().state,
            State::Cancelled
        );
    }
    for id in &outside {
        assert_eq!(
            backend.describe(id).await.unwrap().state,
            State::Skipped,
            "{id}"
        );
    }
    let counts = backend.counts(&ns("deps")).await.unwrap();
    assert_eq!(counts[&lane("member")].skipped, 8);
}

/// `baton_create` checks a dependent's upstreams inside its call: one gone
/// since the backend read it (trimmed in between) refuses the call's share,
/// naming the item and the upstream, writes nothing and deletes the
/// payload written beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_refuses_an_upstream_gone_since_it_was_read() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, _clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let root = backend.create_one(exec("ns", "lane")).await.unwrap().id;
    let p = root.partition().get();
    let base = format!("{prefix}:{{p:{p}}}");
    let root_uuid = root.uuid().simple().to_string();
    let uuid = uuid::Uuid::now_v7().simple().to_string();
    let missing = uuid::Uuid::now_v7().simple().to_string();
    // The record as the backend encodes it: a MessagePack map of text.
    let fields = [
        ("ns", "ns"),
        ("dp", "all_of;skip"),
        ("dt", "1"),
        ("deps", missing.as_str()),
    ];
    let mut record = vec![0x80 | fields.len() as u8];
    for (k, v) in fields {
        for s in [k, v] {
            // fixstr below 32 bytes, str8 from there (an id is 32).
            if s.len() < 32 {
                record.push(0xa0 | s.len() as u8);
            } else {
                record.extend_from_slice(&[0xd9, s.len() as u8]);
            }
            record.extend_from_slice(s.as_bytes());
        }
    }
    server
        .command(&["SET", &format!("{base}:p:{uuid}"), "{}"])
        .unwrap();
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let reply: redis::Value = redis::cmd("FCALL")
        .arg("baton_create")
        .arg(1)
        .arg(&base)
        .arg(1) // one item:
        .arg(&uuid)
        .arg("ns")
        .arg("lane")
        .arg("waiting")
        .arg("m")
        .arg("[]")
        .arg("")
        .arg("")
        .arg("")
        .arg(record)
        .arg("") // no session
        .arg("") // no version
        .arg(1) // one child: position 0
        .arg(0)
        .arg(&root_uuid)
        .arg("")
        .arg(&root_uuid)
        .arg(1) // one dependent: position 0
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
        redis::Value::Int(n) => n.to_string(),
        other => format!("{other:?}"),
    };
    let redis::Value::Array(items) = &reply else {
        panic!("{reply:?}");
    };
    assert_eq!(
        items.iter().map(text).collect::<Vec<_>>(),
        ["dependency_refused", "0", &missing, "", ""],
        "{reply:?}"
    );
    for key in [
        format!("{base}:p:{uuid}"),
        format!("{base}:e:{uuid}"),
        format!("{base}:ch:{root_uuid}"),
    ] {
        let exists = server.command(&["EXISTS", &key]).unwrap();
        assert!(matches!(exists, RespValue::Integer(0)), "{key}: {exists:?}");
    }
}

/// Children written before library generation 3 are in no flow counter
/// (no `fl` field, not counted in their parent's `oc` nor their root's
/// `open:`): when one finishes it counts nothing down — a parent waiting
/// for newer children is not released early, and a root with an unfinished
/// newer member is not trimmed — and it is trimmed on its own, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_of_an_older_library_count_nothing_down() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let parent = backend.create_one(exec("flow", "flow")).await.unwrap().id;
    let lease = backend
        .claim(claim_request("flow", &["flow"], "w", 1))
        .await
        .unwrap()
        .pop()
        .unwrap();
    let child = || exec("flow", "flow").with_parent(parent.clone());
    let old = backend.create_one(child()).await.unwrap().id;
    // Make `old` a child of the older library: no `fl`, and uncount it.
    let key = |id: &ExecutionId, what: &str| {
        format!(
            "{prefix}:{{p:{}}}:{what}:{}",
            id.partition().get(),
            id.uuid().simple()
        )
    };
    let unmark = "local h = cmsgpack.unpack(redis.call('GET', KEYS[1])) h.fl = nil \
        redis.call('SET', KEYS[1], cmsgpack.pack(h)) \
        local p = cmsgpack.unpack(redis.call('GET', KEYS[2])) p.oc = nil \
        redis.call('SET', KEYS[2], cmsgpack.pack(p)) \
        redis.call('DEL', KEYS[3]) return 1";
    server
        .command(&[
            "EVAL",
            unmark,
            "3",
            &key(&old, "e"),
            &key(&parent, "e"),
            &key(&parent, "open"),
        ])
        .unwrap();
    let new = backend.create_one(child()).await.unwrap().id;
    let blocked = backend.wait_children(&lease.lease).await.unwrap();
    assert_eq!(blocked.waiting_on, Some(baton_core::WaitingOn::Children(1)));
    let claims = backend
        .claim(claim_request("flow", &["flow"], "w", 10))
        .await
        .unwrap();
    let old_lease = claims.iter().find(|c| c.id == old).unwrap();
    backend
        .complete(&old_lease.lease, b"{}".to_vec())
        .await
        .unwrap();
    assert_eq!(
        backend.describe(&parent).await.unwrap().state,
        State::Blocked,
        "the older child counts nothing down"
    );
    clock.advance(Duration::from_secs(10));
    for p in backend.partitions().iter() {
        backend
            .trim_terminal(p, Duration::from_secs(1), 100)
            .await
            .unwrap();
    }
    assert!(matches!(
        backend.describe(&old).await,
        Err(EngineError::NotFound { .. })
    ));
    assert_eq!(backend.describe(&new).await.unwrap().state, State::Running);
    let new_lease = claims.iter().find(|c| c.id == new).unwrap();
    backend
        .complete(&new_lease.lease, b"{}".to_vec())
        .await
        .unwrap();
    assert_eq!(
        backend.describe(&parent).await.unwrap().state,
        State::Waiting
    );
}

/// Records written by library generation 1 kept the retry policy in five
/// fields and empty tags and capabilities as fields; they are still read,
/// by the backend and by the functions that apply the policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_the_first_generation_are_still_read() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "")).await;
    let policy = baton_core::RetryPolicy {
        max_attempts: 3,
        backoff: baton_core::Backoff {
            initial_ms: 2_000,
            max_ms: 60_000,
            multiplier: 2.0,
            jitter: false,
        },
    };
    let created = backend
        .create_one(exec("legacy", "old").with_retry(policy))
        .await
        .unwrap();
    let now = backend.describe(&created.id).await.unwrap();
    // Rewrite the record as the first generation stored it.
    let key = format!(
        "{prefix}:{{p:{}}}:e:{}",
        created.id.partition().get(),
        created.id.uuid().simple()
    );
    let rewrite = "local h = cmsgpack.unpack(redis.call('GET', KEYS[1])) \
        local ma, bi, bm, bx, bj = string.match(h.rp, '^(%S+) (%S+) (%S+) (%S+) (%S+)$') \
        h.rp = nil h.ma, h.bi, h.bm, h.bx, h.bj = ma, bi, bm, bx, bj \
        h.tags, h.caps = '{}', '[]' \
        redis.call('SET', KEYS[1], cmsgpack.pack(h)) return 1";
    server.command(&["EVAL", rewrite, "1", &key]).unwrap();
    let old = backend.describe(&created.id).await.unwrap();
    assert_eq!(old, now, "a first-generation record must describe the same");

    let claim = backend
        .claim(claim_request("legacy", &["old"], "w", 1))
        .await
        .unwrap()
        .pop()
        .unwrap();
    let failed = backend
        .fail(&claim.lease, Failure::retryable("boom"))
        .await
        .unwrap();
    assert_eq!(failed.state, State::Delayed);
    assert_eq!(
        failed.run_at,
        Some(baton_core::Clock::now(&*clock).saturating_add(Duration::from_millis(2_000))),
        "the backoff comes from the first-generation policy fields"
    );
    assert_eq!(failed.retry, policy);
}

/// A create call places its executions (without idempotency keys) in one
/// partition, and consecutive calls move on through the partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_batch_lands_in_one_partition_and_batches_rotate() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let backend = connect(&url_with(server, &prefix, "partitions=8")).await;
    let mut seen = BTreeSet::new();
    for _ in 0..8 {
        let batch: Vec<NewExecution> = (0..20).map(|_| exec("placed", "batch")).collect();
        let out = backend.create(batch).await.unwrap();
        let parts: BTreeSet<u16> = out.iter().map(|o| o.id.partition().get()).collect();
        assert_eq!(parts.len(), 1, "one batch spread over {parts:?}");
        seen.extend(parts);
    }
    assert_eq!(
        seen.len(),
        8,
        "eight batches should use every partition once: {seen:?}"
    );
}

// ---------------------------------------- 7b. waiting without a worker

/// The wait keys hold only what lives: a suspend with a timeout enters the
/// partition's `timeouts`, a keyed signal its execution's `sk:` hash, every
/// signal its `sg:` list; an entry whose execution left `suspended` stays
/// until the timeout pass drops it without counting it, and a trim deletes
/// the signals with the execution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_keys_hold_only_what_lives() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=2")).await;
    let keys = |what: &str| -> BTreeSet<String> {
        resp_texts(
            &server
                .command(&["KEYS", &format!("{prefix}:*:{what}")])
                .unwrap(),
        )
        .into_iter()
        .collect()
    };
    let id = backend.create_one(exec("waits", "main")).await.unwrap().id;
    let base = format!("{prefix}:{{p:{}}}", id.partition().get());
    let uuid = id.uuid().simple().to_string();
    let timeouts = format!("{base}:timeouts");
    let claim = claim_up_to(&backend, "waits", &["main"], "w", 1).await;
    let request = baton_core::SuspendRequest::signals([baton_core::SignalName::new("go").unwrap()])
        .with_timeout(Duration::from_secs(5), baton_core::OnTimeout::Fail);
    let outcome = backend.suspend(&claim[0].lease, request).await.unwrap();
    assert_eq!(outcome.snapshot().state, State::Suspended);
    assert_eq!(
        resp_texts(&server.command(&["ZRANGE", &timeouts, "0", "-1"]).unwrap()),
        std::slice::from_ref(&uuid)
    );
    assert_eq!(keys("sg:*"), BTreeSet::new(), "no signal yet");
    let signal = |name: &str, key: Option<&str>| {
        let mut s =
            baton_core::NewSignal::new(baton_core::SignalName::new(name).unwrap(), b"{}".to_vec());
        if let Some(k) = key {
            s = s.with_idempotency_key(IdempotencyKey::new(k).unwrap());
        }
        s
    };
    let out = backend
        .signal(&id, signal("other", Some("k1")))
        .await
        .unwrap();
    assert_eq!(out, baton_core::SignalOutcome::Buffered);
    let out = backend.signal(&id, signal("go", None)).await.unwrap();
    assert_eq!(out, baton_core::SignalOutcome::Resumed);
    assert_eq!(keys("sg:*"), [format!("{base}:sg:{uuid}")].into());
    assert_eq!(keys("sk:*"), [format!("{base}:sk:{uuid}")].into());
    assert_eq!(
        resp_int(&server.command(&["ZCARD", &timeouts]).unwrap()),
        1,
        "left to the pass"
    );
    clock.advance(Duration::from_secs(5));
    let report = backend.timeout_due(id.partition(), 100).await.unwrap();
    assert_eq!((report.processed, report.next_due), (0, None));
    assert_eq!(resp_int(&server.command(&["ZCARD", &timeouts]).unwrap()), 0);
    assert_eq!(backend.describe(&id).await.unwrap().state, State::Waiting);

    let claim = claim_up_to(&backend, "waits", &["main"], "w", 1).await;
    assert_eq!(claim[0].waits, vec![baton_core::WaitEnded::Signalled]);
    backend
        .complete(&claim[0].lease, b"1".to_vec())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(10));
    for p in backend.partitions().iter() {
        backend
            .trim_terminal(p, Duration::from_secs(1), 100)
            .await
            .unwrap();
    }
    for what in ["sg:*", "sk:*", "timeouts", "e:*", "p:*"] {
        assert_eq!(keys(what), BTreeSet::new(), "{what} after trim");
    }
}

/// A timeout that fails or cancels finishes the execution as any terminal
/// transition does: its parent, waiting for its children, counts it down
/// (and runs again once the last one finished), and its dependents are
/// told (here: skipped, as their default policy says of an upstream that
/// did not complete).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_that_fail_or_cancel_run_the_finish_hooks() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=2")).await;
    let root = backend.create_one(exec("hooks", "root")).await.unwrap().id;
    let held = claim_up_to(&backend, "hooks", &["root"], "w", 1).await;
    let child = |lane_name: &str| exec("hooks", lane_name).with_parent(root.clone());
    let failing = backend.create_one(child("up")).await.unwrap().id;
    let cancelled = backend.create_one(child("up")).await.unwrap().id;
    let mut dependents = Vec::new();
    for up in [&failing, &cancelled] {
        let d = backend
            .create_one(child("dep").with_dependencies([up.clone()]))
            .await
            .unwrap();
        assert_eq!(d.state, State::Blocked);
        dependents.push(d.id);
    }
    let blocked = backend.wait_children(&held[0].lease).await.unwrap();
    assert_eq!(blocked.state, State::Blocked);
    let ups = claim_up_to(&backend, "hooks", &["up"], "w", 2).await;
    assert_eq!(ups.len(), 2);
    let approval = baton_core::SignalName::new("approval").unwrap();
    for c in &ups {
        let on_timeout = if c.id == failing {
            baton_core::OnTimeout::Fail
        } else {
            baton_core::OnTimeout::Cancel
        };
        let request = baton_core::SuspendRequest::signals([approval.clone()])
            .with_timeout(Duration::from_secs(1), on_timeout);
        let out = backend.suspend(&c.lease, request).await.unwrap();
        assert_eq!(out.snapshot().state, State::Suspended);
    }
    clock.advance(Duration::from_secs(1));
    let report = backend.timeout_due(root.partition(), 10).await.unwrap();
    assert_eq!((report.processed, report.next_due), (2, None));
    let snap = backend.describe(&failing).await.unwrap();
    assert_eq!(
        (snap.state, snap.last_error.as_deref()),
        (
            State::Failed,
            Some("its wait for signal approval timed out")
        )
    );
    let snap = backend.describe(&cancelled).await.unwrap();
    assert_eq!(
        (snap.state, snap.cancel_reason.as_deref()),
        (
            State::Cancelled,
            Some("its wait for signal approval timed out")
        )
    );
    for d in &dependents {
        assert_eq!(backend.describe(d).await.unwrap().state, State::Skipped);
    }
    let parent = backend.describe(&root).await.unwrap();
    assert_eq!(
        (parent.state, parent.updated_at),
        (State::Waiting, Timestamp::from_millis(1_700_000_001_000))
    );
    let again = claim_up_to(&backend, "hooks", &["root"], "w", 1).await;
    assert_eq!((again[0].id.clone(), again[0].attempt), (root, 2));
}

/// Waits for the claim hint of `lane` (namespace `waits`) to be dropped once
/// a claim drained it, so that what follows must raise it again.
async fn wait_for_hint_drop(server: &RedisServer, prefix: &str, lane: &str) {
    let key = format!("{prefix}:hint:{{waits/{lane}}}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while resp_int(&server.command(&["ZCARD", &key]).unwrap()) > 0 {
        assert!(
            Instant::now() < deadline,
            "the drained lane {lane} is still hinted after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A release, a signal that resumes and a timeout that resumes make the
/// execution claimable again: each raises its lane's claim hint (dropped
/// before, when a claim drained the lane) and wakes a claimer parked in
/// another instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_that_end_raise_hints_and_wake_claimers_elsewhere() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let url = url_with(server, &prefix, "partitions=4");
    let (actor, clock) = connect_with_clock(&url).await;
    let waiter_side = connect(&url).await;
    wait_for_listeners(server, &prefix, 2).await;
    for way in ["release", "signal", "timeout"] {
        let id = actor.create_one(exec("waits", way)).await.unwrap().id;
        let claim = claim_up_to(&actor, "waits", &[way], "w", 1).await;
        assert_eq!(claim[0].id, id);
        wait_for_hint_drop(server, &prefix, way).await;
        let lease = &claim[0].lease;
        let go = baton_core::SignalName::new("go").unwrap();
        match way {
            "signal" => {
                let request = baton_core::SuspendRequest::signals([go.clone()]);
                actor.suspend(lease, request).await.unwrap();
            }
            "timeout" => {
                let request = baton_core::SuspendRequest::sleep(Duration::from_secs(1));
                actor.suspend(lease, request).await.unwrap();
                clock.advance(Duration::from_secs(1));
            }
            _ => {}
        }
        let mut waiter = {
            let b = waiter_side.clone();
            let lane_name = lane(way);
            tokio::spawn(async move {
                b.wait_for_work(&ns("waits"), &[lane_name], Duration::from_secs(10))
                    .await
            })
        };
        // Time to park (registering is the task's first step); a waiter
        // parked late would wait its 10 s and fail the test.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        match way {
            "release" => {
                actor.release(lease).await.unwrap();
            }
            "signal" => {
                let out = actor
                    .signal(&id, baton_core::NewSignal::new(go, b"1".to_vec()))
                    .await
                    .unwrap();
                assert_eq!(out, baton_core::SignalOutcome::Resumed);
            }
            _ => {
                let report = actor.timeout_due(id.partition(), 10).await.unwrap();
                assert_eq!(report.processed, 1);
            }
        }
        let hint = format!("{prefix}:hint:{{waits/{way}}}");
        assert_eq!(
            resp_texts(&server.command(&["ZRANGE", &hint, "0", "-1"]).unwrap()),
            [id.partition().get().to_string()],
            "{way} raised the hint"
        );
        match tokio::time::timeout(Duration::from_secs(5), &mut waiter).await {
            Ok(joined) => joined.unwrap().unwrap(),
            Err(_) => {
                waiter.abort();
                panic!("{way}: the claimer parked elsewhere was not woken");
            }
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        let again = claim_up_to(&actor, "waits", &[way], "w", 1).await;
        assert_eq!((again[0].id.clone(), again[0].attempt), (id, 2), "{way}");
    }
}

// -------------------------------------------------- 7c. checkpointed steps

/// The step keys hold only what lives: a step record writes its execution's
/// `st:` hash and counts a new step in the record's `sn` (a repeat of a done
/// step and another failure of a failed one count nothing), a later claim
/// carries the done steps, and a trim deletes the hash with the execution.
/// An execution without steps has neither hash nor count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_keys_hold_only_what_lives() {
    use baton_core::{Backoff, RetryPolicy, StepName, StepOutcome};
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=2")).await;
    let keys = |what: &str| -> BTreeSet<String> {
        resp_texts(
            &server
                .command(&["KEYS", &format!("{prefix}:*:{what}")])
                .unwrap(),
        )
        .into_iter()
        .collect()
    };
    let record_key = |id: &ExecutionId| {
        format!(
            "{prefix}:{{p:{}}}:e:{}",
            id.partition().get(),
            id.uuid().simple()
        )
    };
    let count = |id: &ExecutionId| -> String {
        let script = "return cmsgpack.unpack(redis.call('GET', KEYS[1])).sn or ''";
        resp_text(
            &server
                .command(&["EVAL", script, "1", &record_key(id)])
                .unwrap(),
        )
    };
    let policy = RetryPolicy {
        max_attempts: 2,
        backoff: Backoff::NONE,
    };
    let id = backend
        .create_one(exec("steps", "main").with_retry(policy))
        .await
        .unwrap()
        .id;
    let plain = backend.create_one(exec("steps", "other")).await.unwrap().id;
    let step = |name: &str| StepName::new(name).unwrap();
    let done = |output: &str| StepOutcome::Done(output.as_bytes().to_vec());
    let failed = StepOutcome::Failed("boom".to_owned());

    let first = claim_up_to(&backend, "steps", &["main"], "w", 1).await;
    assert_eq!(count(&id), "");
    let lease = &first[0].lease;
    backend
        .record_step(lease, step("a"), done("1"))
        .await
        .unwrap();
    backend
        .record_step(lease, step("b"), failed.clone())
        .await
        .unwrap();
    assert_eq!(count(&id), "2");
    backend
        .record_step(lease, step("a"), done("1"))
        .await
        .unwrap();
    let b = backend
        .record_step(lease, step("b"), failed.clone())
        .await
        .unwrap();
    assert_eq!((count(&id), b.failures), ("2".to_owned(), 2));
    let base = format!("{prefix}:{{p:{}}}", id.partition().get());
    assert_eq!(
        keys("st:*"),
        [format!("{base}:st:{}", id.uuid().simple())].into()
    );
    backend
        .fail(lease, Failure::retryable("crashed"))
        .await
        .unwrap();

    let second = claim_up_to(&backend, "steps", &["main"], "w", 1).await;
    assert_eq!(second[0].attempt, 2);
    assert_eq!(
        second[0].steps,
        BTreeMap::from([(step("a"), b"1".to_vec())])
    );
    let other = claim_up_to(&backend, "steps", &["other"], "w", 1).await;
    assert!(other[0].steps.is_empty());
    assert_eq!(count(&plain), "");
    assert!(backend.steps(&plain).await.unwrap().is_empty());
    for c in second.iter().chain(&other) {
        backend.complete(&c.lease, b"1".to_vec()).await.unwrap();
    }
    clock.advance(Duration::from_secs(10));
    for p in backend.partitions().iter() {
        backend
            .trim_terminal(p, Duration::from_secs(1), 100)
            .await
            .unwrap();
    }
    for what in ["st:*", "e:*", "p:*"] {
        assert_eq!(keys(what), BTreeSet::new(), "{what} after trim");
    }
}

// ------------------------------------- 7d. memory and waiting for a change

/// Waits until `subscribers` clients listen on the change channel of a
/// deployment on the first node (where the backends subscribe).
async fn wait_for_change_subscribers(server: &RedisServer, prefix: &str, subscribers: i64) {
    let channel = format!("{prefix}:changed");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = server.command(&["PUBSUB", "NUMSUB", &channel]).unwrap();
        let count = match &reply {
            RespValue::Array(items) if items.len() == 2 => resp_int(&items[1]),
            other => panic!("PUBSUB NUMSUB answered {other:?}"),
        };
        if count >= subscribers {
            assert_eq!(
                count, subscribers,
                "more subscribers than waiting instances"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {count} of {subscribers} change subscriptions on {channel} within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The state, frame and watch keys hold only what lives. Records as
/// library generation 6 wrote them (no `kc cs cv pq`) read as never having
/// used memory, and the functions count from there. Clearing every key
/// leaves neither hash nor count; frames beyond the bound go; a trim
/// deletes both keys and the watch mark with the execution, and drops the
/// marks past their time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_keys_hold_only_what_lives() {
    use baton_core::{ChangeMark, Limits, StateKey};
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let config = ValkeyConfig::from_url(&url_with(server, &prefix, "partitions=2"))
        .unwrap()
        .with_clock(clock.clone())
        .with_limits(Limits {
            max_progress_frames: 3,
            ..Limits::default()
        });
    let backend = ValkeyBackend::open(config).await.unwrap();
    let keys = |what: &str| -> BTreeSet<String> {
        resp_texts(
            &server
                .command(&["KEYS", &format!("{prefix}:*:{what}")])
                .unwrap(),
        )
        .into_iter()
        .collect()
    };
    let record_key = |id: &ExecutionId| {
        format!(
            "{prefix}:{{p:{}}}:e:{}",
            id.partition().get(),
            id.uuid().simple()
        )
    };
    // The memory fields of a record, as `kc cs cv pq` ('-' for absent).
    let fields = |id: &ExecutionId| -> String {
        let script = "local h = cmsgpack.unpack(redis.call('GET', KEYS[1])) \
            return (h.kc or '-') .. ' ' .. (h.cs or '-') .. ' ' .. (h.cv or '-') .. ' ' .. (h.pq or '-')";
        resp_text(
            &server
                .command(&["EVAL", script, "1", &record_key(id)])
                .unwrap(),
        )
    };
    let key = |name: &str| StateKey::new(name).unwrap();
    let id = backend.create_one(exec("mem", "main")).await.unwrap().id;
    let lease = claim_up_to(&backend, "mem", &["main"], "w", 1).await[0]
        .lease
        .clone();
    assert_eq!(fields(&id), "- - - -", "the layout of generation 6");
    let snap = backend.describe(&id).await.unwrap();
    assert_eq!(
        (snap.custom_status, snap.status_version, snap.progress_seq),
        (None, 0, 0)
    );
    assert!(backend.state(&id).await.unwrap().is_empty());
    assert!(backend.progress(&id, 0, 10).await.unwrap().is_empty());

    for name in ["a", "b"] {
        backend
            .set_state(&lease, key(name), Some(b"1".to_vec()))
            .await
            .unwrap();
    }
    assert_eq!(
        backend.set_status(&lease, b"\"s\"".to_vec()).await.unwrap(),
        1
    );
    for n in 1..=5u64 {
        assert_eq!(
            backend
                .append_progress(&lease, n.to_string().into_bytes())
                .await
                .unwrap(),
            n
        );
    }
    assert_eq!(fields(&id), "2 \"s\" 1 5");
    let base = format!("{prefix}:{{p:{}}}", id.partition().get());
    let uuid = id.uuid().simple();
    assert_eq!(keys("kv:*"), [format!("{base}:kv:{uuid}")].into());
    let frames = server
        .command(&["ZCARD", &format!("{base}:pg:{uuid}")])
        .unwrap();
    assert_eq!(resp_int(&frames), 3, "frames beyond the bound are dropped");
    for name in ["a", "b"] {
        backend.set_state(&lease, key(name), None).await.unwrap();
    }
    assert_eq!(fields(&id), "- \"s\" 1 5", "no keys left: no count");
    assert_eq!(keys("kv:*"), BTreeSet::new(), "no keys left: no hash");
    backend
        .set_state(&lease, key("c"), Some(b"1".to_vec()))
        .await
        .unwrap();

    // A mark past its time (a waiter of a minute ago) is dropped by the
    // trim pass; one that holds goes with its execution, whose reader
    // learns at once that it is gone.
    let other = backend.create_one(exec("mem", "other")).await.unwrap().id;
    let other_seen = ChangeMark::of(&backend.describe(&other).await.unwrap());
    let waited = backend
        .wait_for_change(&other, other_seen, Duration::from_millis(20))
        .await
        .unwrap();
    assert_eq!(ChangeMark::of(&waited), other_seen);
    backend.complete(&lease, b"{}".to_vec()).await.unwrap();
    clock.advance(Duration::from_secs(60));
    assert!(ChangeMark::of(&backend.describe(&id).await.unwrap()).terminal);
    let parked = park_reader(&backend, &prefix, &id, |c| server.command(c)).await;
    let watched: BTreeSet<_> = [id.partition(), other.partition()].into();
    assert_eq!(keys("watch").len(), watched.len());
    for p in backend.partitions().iter() {
        backend
            .trim_terminal(p, Duration::from_secs(1), 100)
            .await
            .unwrap();
    }
    let gone = tokio::time::timeout(Duration::from_secs(5), parked)
        .await
        .expect("the trim wakes the reader of the trimmed execution")
        .unwrap();
    assert!(
        matches!(gone, Err(EngineError::NotFound { .. })),
        "{gone:?}"
    );
    for what in ["kv:*", "pg:*", "watch"] {
        assert_eq!(keys(what), BTreeSet::new(), "{what} after trim");
    }
    assert_eq!(
        backend.describe(&other).await.unwrap().state,
        State::Waiting
    );
}

/// Starts a reader of `id` waiting up to 30 s for a change from what it is
/// now, and answers once its mark is in the partition's `watch` set
/// (`command` runs a command on the server the backend uses).
async fn park_reader(
    backend: &ValkeyBackend,
    prefix: &str,
    id: &ExecutionId,
    command: impl Fn(&[&str]) -> Result<RespValue, String>,
) -> tokio::task::JoinHandle<baton_core::Result<ExecutionSnapshot>> {
    use baton_core::ChangeMark;
    let seen = ChangeMark::of(&backend.describe(id).await.unwrap());
    let waiter = {
        let backend = backend.clone();
        let id = id.clone();
        tokio::spawn(async move {
            backend
                .wait_for_change(&id, seen, Duration::from_secs(30))
                .await
        })
    };
    let mark = format!("{prefix}:{{p:{}}}:watch", id.partition().get());
    let member = id.uuid().simple().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(
        command(&["ZSCORE", &mark, &member]).unwrap(),
        RespValue::Nil
    ) {
        assert!(Instant::now() < deadline, "the waiter never marked {id}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    waiter
}

/// A change nobody watches publishes nothing (a terminal transition, a
/// status, a frame, a cancel); a change of a watched execution publishes
/// its id on `<prefix>:changed`, once, and wakes its reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_changes_of_watched_executions_are_published() {
    use futures_util::StreamExt;
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let backend = connect(&url_with(server, &prefix, "")).await;
    let client = redis::Client::open(server.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(format!("{prefix}:changed")).await.unwrap();
    let mut messages = pubsub.into_on_message();

    let quiet = backend.create_one(exec("pub", "main")).await.unwrap().id;
    let claim = claim_up_to(&backend, "pub", &["main"], "w", 1).await;
    assert_eq!(claim[0].id, quiet);
    let lease = &claim[0].lease;
    backend.set_status(lease, b"1".to_vec()).await.unwrap();
    backend.append_progress(lease, b"1".to_vec()).await.unwrap();
    backend.complete(lease, b"{}".to_vec()).await.unwrap();
    let cancelled = backend.create_one(exec("pub", "main")).await.unwrap().id;
    backend
        .cancel(&cancelled, CancelRequest::because("no"))
        .await
        .unwrap();
    if let Ok(message) = tokio::time::timeout(Duration::from_millis(300), messages.next()).await {
        panic!("an unwatched execution's change was published: {message:?}");
    }

    let watched = backend.create_one(exec("pub", "main")).await.unwrap().id;
    let waiter = park_reader(&backend, &prefix, &watched, |c| server.command(c)).await;
    backend
        .cancel(&watched, CancelRequest::because("stop"))
        .await
        .unwrap();
    let message = tokio::time::timeout(Duration::from_secs(5), messages.next())
        .await
        .expect("the change of a watched execution is published")
        .expect("the subscription stays open");
    assert_eq!(
        message.get_payload::<String>().unwrap(),
        watched.to_string()
    );
    let woke = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the reader is woken")
        .unwrap()
        .unwrap();
    assert_eq!(woke.state, State::Cancelled);
    if let Ok(message) = tokio::time::timeout(Duration::from_millis(300), messages.next()).await {
        panic!("one change was published twice: {message:?}");
    }
}

/// How many `ZSCORE`s the private server ran since its statistics were
/// reset (commands inside functions count as their own).
fn zscores(server: &PrivateRedis) -> u64 {
    let stats = resp_text(&server.command(&["INFO", "commandstats"]).unwrap());
    stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_zscore:calls="))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

fn reset_stats(server: &PrivateRedis) {
    server.command(&["CONFIG", "RESETSTAT"]).unwrap();
}

/// Completions look for readers once per call: a batch of completions
/// nobody watches makes no lookup per execution, and one of a watched
/// execution still tells its reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_nobody_watches_look_for_no_reader_each() {
    let Some(server) = PrivateRedis::start() else {
        return;
    };
    let backend = connect(&format!("{}?prefix=quiet", server.url())).await;
    for _ in 0..20 {
        backend.create_one(exec("quiet", "main")).await.unwrap();
    }
    let claims = claim_up_to(&backend, "quiet", &["main"], "w", 20).await;
    assert_eq!(claims.len(), 20);
    reset_stats(&server);
    let done = futures_util::future::join_all(
        claims
            .iter()
            .map(|c| backend.complete(&c.lease, b"{}".to_vec())),
    )
    .await;
    for snap in done {
        assert_eq!(snap.unwrap().state, State::Completed);
    }
    assert_eq!(zscores(&server), 0, "a lookup per completion");

    let watched = backend.create_one(exec("quiet", "main")).await.unwrap().id;
    let lease = claim_up_to(&backend, "quiet", &["main"], "w", 1).await[0]
        .lease
        .clone();
    let waiter = park_reader(&backend, "quiet", &watched, |c| server.command(c)).await;
    reset_stats(&server);
    backend.complete(&lease, b"{}".to_vec()).await.unwrap();
    assert_eq!(zscores(&server), 1, "the watched completion looks once");
    let woke = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the completion wakes the reader")
        .unwrap()
        .unwrap();
    assert_eq!(woke.state, State::Completed);
}

/// A reader waiting in one instance is woken by changes made through
/// another (two instances share nothing but the server, like two
/// processes): a status, a frame and the completion. Only the instance that
/// waits subscribes.
async fn changes_wake_readers_across_instances(server: &RedisServer) {
    use baton_core::ChangeMark;
    let prefix = RedisServer::unique_prefix();
    let url = url_with(server, &prefix, "");
    let writer = connect(&url).await;
    let reader = connect(&url).await;
    let id = writer.create_one(exec("follow", "main")).await.unwrap().id;
    let lease = claim_up_to(&writer, "follow", &["main"], "w", 1).await[0]
        .lease
        .clone();
    let wait = |seen: ChangeMark| {
        let reader = reader.clone();
        let id = id.clone();
        tokio::spawn(async move {
            reader
                .wait_for_change(&id, seen, Duration::from_secs(30))
                .await
        })
    };
    let woken = |parked: tokio::task::JoinHandle<baton_core::Result<ExecutionSnapshot>>,
                 what: &'static str| async move {
        let started = Instant::now();
        let snap = tokio::time::timeout(Duration::from_secs(10), parked)
            .await
            .unwrap_or_else(|_| panic!("{what} through the other instance never woke the reader"))
            .unwrap()
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: the reader returned after {:?}",
            started.elapsed()
        );
        snap
    };
    let seen = ChangeMark::of(&reader.describe(&id).await.unwrap());
    let parked = wait(seen);
    // The reader's subscription is up (and its wake-up of every reader on
    // subscribing is over) before the change, so only the announcement
    // can wake it.
    wait_for_change_subscribers(server, &prefix, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !parked.is_finished(),
        "the reader returned without a change"
    );
    writer
        .set_status(&lease, b"\"half\"".to_vec())
        .await
        .unwrap();
    let snap = woken(parked, "a status").await;
    assert_eq!(snap.status_version, 1);

    let parked = wait(ChangeMark::of(&snap));
    tokio::time::sleep(Duration::from_millis(100)).await;
    writer
        .append_progress(&lease, b"{\"n\":1}".to_vec())
        .await
        .unwrap();
    let snap = woken(parked, "a frame").await;
    assert_eq!(snap.progress_seq, 1);

    let parked = wait(ChangeMark::of(&snap));
    tokio::time::sleep(Duration::from_millis(100)).await;
    writer.complete(&lease, b"{}".to_vec()).await.unwrap();
    let snap = woken(parked, "the completion").await;
    assert_eq!(snap.state, State::Completed);
    wait_for_change_subscribers(server, &prefix, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_change_wakes_on_changes_made_through_another_instance() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    changes_wake_readers_across_instances(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_change_wakes_on_changes_made_through_another_instance_on_a_cluster() {
    let Some(server) = servers::valkey_cluster().await else {
        return;
    };
    changes_wake_readers_across_instances(server).await;
}

// ------------------------------------------------------------- 8. URLs

#[test]
fn bad_urls_are_rejected_as_invalid_input() {
    for url in [
        "redis://",
        "redis://?prefix=a",
        "redis://h:1,h:2",
        "valkey://h:1,h:2",
        "redis+cluster://h:1/3",
        "redis+cluster://h:1,h:2/1",
        "redis://h:1?prefix=a{b}",
        "redis://h:1?prefix=a}b",
        "redis://h:1?prefix=",
        "redis://h:1?nope=1",
        "redis://h:1?partitions=0",
        "redis://h:1?partitions=abc",
        "redis://h:1?partitions=70000",
        "postgres://h:1",
        "h:1",
    ] {
        match ValkeyConfig::from_url(url) {
            Err(EngineError::InvalidInput { .. }) => {}
            other => panic!("{url} gave {other:?}, not an invalid-input error"),
        }
    }
}

#[test]
fn good_urls_are_parsed() {
    let c = ValkeyConfig::from_url("valkey://user:pw@h:1/2?prefix=shop&partitions=32").unwrap();
    assert_eq!(c.nodes, ["redis://user:pw@h:1/2"]);
    assert_eq!(c.prefix, "shop");
    assert_eq!(c.partitions.unwrap().get(), 32);
    assert!(!c.cluster);
    let c = ValkeyConfig::from_url("redis+cluster://:pw@a:1,b:2/").unwrap();
    assert_eq!(c.nodes, ["redis://:pw@a:1", "redis://:pw@b:2"]);
    assert!(c.cluster);
    assert_eq!(c.prefix, "baton");
    assert!(c.partitions.is_none());
}

/// Work whose hint was lost (a client died between its create and raising
/// the hint) is invisible to claims until the promote pass repairs the hints
/// of its partition; then it is claimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_hint_is_repaired_by_the_promote_pass() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let backend = connect(&url_with(server, &prefix, "")).await;
    let id = backend.create_one(exec("repair", "main")).await.unwrap().id;
    let key = format!("{prefix}:hint:{{repair/main}}");
    assert_eq!(resp_int(&server.command(&["DEL", &key]).unwrap()), 1);
    let none = backend
        .claim(claim_request("repair", &["main"], "w", 10))
        .await
        .unwrap();
    assert!(none.is_empty(), "without a hint the claim looks nowhere");

    // A fresh instance has repaired no partition yet, so its first pass
    // repairs at once.
    let scanner = connect(&url_with(server, &prefix, "")).await;
    scanner.promote_due(id.partition(), 100).await.unwrap();
    let hinted = resp_texts(&server.command(&["ZRANGE", &key, "0", "-1"]).unwrap());
    assert_eq!(hinted, vec![id.partition().get().to_string()]);
    let claims = backend
        .claim(claim_request("repair", &["main"], "w", 10))
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].id, id);
}

/// `Capabilities::durable` follows the server's persistence: only an AOF
/// fsynced on every write counts.
#[tokio::test]
async fn durability_is_read_from_the_server() {
    let Some(server) = PrivateRedis::start() else {
        return;
    };
    let url = format!("{}?prefix=durable", server.url());
    let mut conn = conn(&server).await;
    assert!(!connect(&url).await.capabilities().durable, "appendonly no");
    for (name, value) in [("appendonly", "yes"), ("appendfsync", "everysec")] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    assert!(!connect(&url).await.capabilities().durable, "everysec");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendfsync")
        .arg("always")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(connect(&url).await.capabilities().durable, "always");
}

// ------------------------------------------- 6. a server that goes away

/// Unwraps a call that must answer `Unavailable` promptly: within `bound`
/// (a liveness bound, far above the immediate answer expected, far below
/// the minutes a driver's default reconnection backoff takes).
async fn answers_unavailable<T: std::fmt::Debug>(
    what: &str,
    bound: Duration,
    call: impl std::future::Future<Output = baton_core::Result<T>>,
) {
    match tokio::time::timeout(bound, call).await {
        Ok(Err(EngineError::Unavailable { .. })) => {}
        Ok(other) => panic!("{what} with the server down answered {other:?}, not Unavailable"),
        Err(_) => panic!("{what} with the server down did not answer within {bound:?}"),
    }
}

/// With the server killed, every call answers `Unavailable` at once (no
/// call hangs on reconnection backoff); once the server is back on its
/// port the backend serves again within seconds, and with `appendfsync
/// always` every acknowledged submission is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_answers_unavailable_and_is_served_again_once_back() {
    const BOUND: Duration = Duration::from_secs(5);
    let aof: &[&str] = &["--appendonly", "yes", "--appendfsync", "always"];
    let Some(mut server) = PrivateRedis::start_with(false, aof) else {
        return;
    };
    let backend = connect(&format!("{}?prefix=restart", server.url())).await;
    let mut acknowledged = Vec::new();
    for _ in 0..20 {
        acknowledged.push(backend.create_one(exec("n", "l")).await.unwrap().id);
    }

    server.kill();
    for round in 0..3 {
        answers_unavailable(
            &format!("create (round {round})"),
            BOUND,
            backend.create_one(exec("n", "l")),
        )
        .await;
        answers_unavailable("describe", BOUND, backend.describe(&acknowledged[0])).await;
        answers_unavailable(
            "claim",
            BOUND,
            backend.claim(claim_request("n", &["l"], "w", 1)),
        )
        .await;
        answers_unavailable(
            "list",
            BOUND,
            backend.list(&ListFilter::namespace(ns("n")), Page::first(10)),
        )
        .await;
    }
    // A new backend for a server that is not listening answers at once too.
    answers_unavailable(
        "connect",
        BOUND,
        ValkeyBackend::connect(&format!("{}?prefix=restart", server.url())),
    )
    .await;

    server.restart(aof);
    let back = Instant::now();
    let served = loop {
        match backend.describe(&acknowledged[0]).await {
            Ok(snapshot) => break snapshot,
            Err(EngineError::Unavailable { .. }) if back.elapsed() < Duration::from_secs(15) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the backend did not serve again 15 s after the server returned: {e}"),
        }
    };
    assert_eq!(served.state, State::Waiting);
    for id in &acknowledged {
        assert_eq!(
            backend.describe(id).await.unwrap().state,
            State::Waiting,
            "{id}"
        );
    }
    let claimed = claim_up_to(&backend, "n", &["l"], "w", 100).await;
    assert_eq!(
        claimed.len(),
        acknowledged.len(),
        "every acknowledged submission survives"
    );
}

// ---------------------------------------------------------------- explain

/// The queue `explain` counts ahead of a waiting execution spans every
/// partition and both waiting sets of its lane (conditional work included),
/// and follows a priority edit: the member built from the stored record
/// must sort exactly where the library placed it.
async fn explain_counts_the_whole_lane(server: &RedisServer) {
    let url = url_with(server, &RedisServer::unique_prefix(), "partitions=4");
    let (backend, clock) = connect_with_clock(&url).await;
    let gpu = baton_core::CapabilityName::new("gpu").unwrap();
    // A worker offering the capability, seen before any work exists.
    let request = claim_request("ex", &["main"], "w1", 1).with_capabilities([gpu.clone()]);
    assert!(backend.claim(request).await.unwrap().is_empty());
    let mut ids = Vec::new();
    for n in 0..4 {
        let mut new = exec("ex", "main");
        if n == 0 {
            new = new.with_capability(gpu.clone());
        }
        ids.push(backend.create_one(new).await.unwrap().id);
        clock.advance(Duration::from_millis(1));
    }
    let partitions: BTreeSet<_> = ids.iter().map(ExecutionId::partition).collect();
    assert!(partitions.len() > 1, "placement used one partition");
    let detail = |id: &ExecutionId| {
        let backend = backend.clone();
        let id = id.clone();
        async move {
            let e = backend.explain(&id).await.unwrap();
            assert_eq!(e.reason, Some("queued"), "{}", e.detail);
            e.detail
        }
    };
    assert!(detail(&ids[0]).await.contains("next in lane main"));
    assert!(
        detail(&ids[3])
            .await
            .contains("3 executions of lane main are")
    );
    backend.set_priority(&ids[3], 1).await.unwrap();
    assert!(detail(&ids[3]).await.contains("next in lane main"));
    assert!(
        detail(&ids[0])
            .await
            .contains("1 execution of lane main is")
    );
    assert!(
        detail(&ids[2])
            .await
            .contains("3 executions of lane main are")
    );
}

#[tokio::test]
async fn explain_counts_the_whole_lane_on_valkey() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    explain_counts_the_whole_lane(server).await;
}

#[tokio::test]
async fn explain_counts_the_whole_lane_on_a_cluster() {
    let Some(server) = servers::valkey_cluster().await else {
        return;
    };
    explain_counts_the_whole_lane(server).await;
}

// ------------------------------------------------- pause, resume and replay

/// A paused lane is a flag written to every partition, and each partition's
/// claim reads its own: with the lane's work spread over many partitions
/// (some of it with a capability condition, so the claim's peek goes both
/// through plain reads and through `baton_peek`), a claim over it and
/// another lane takes only the other lane's work; the paused lane's hint
/// is kept all the while (no claim reports it empty), so after the resume
/// one claim loop takes all of it.
/// On a cluster the keys are only read through the backend (plain
/// commands of the test kit reach one node).
async fn a_paused_lane_is_skipped_in_every_partition(server: &RedisServer, cluster: bool) {
    let prefix = RedisServer::unique_prefix();
    let backend = connect(&url_with(server, &prefix, "partitions=8")).await;
    let gpu = baton_core::CapabilityName::new("gpu").unwrap();
    let mut held = BTreeSet::new();
    for n in 0..16 {
        let mut new = exec("lp", "held");
        if n % 4 == 0 {
            new = new.with_capability(gpu.clone());
        }
        held.insert(backend.create_one(new).await.unwrap().id);
    }
    let mut free = BTreeSet::new();
    for _ in 0..4 {
        free.insert(backend.create_one(exec("lp", "free")).await.unwrap().id);
    }
    let holding: BTreeSet<u16> = held.iter().map(|id| id.partition().get()).collect();
    assert!(holding.len() > 4, "placement spread the lane: {holding:?}");
    assert!(backend.pause_lane(&ns("lp"), &lane("held")).await.unwrap());
    if !cluster {
        for p in 0..8 {
            let flag = server
                .command(&["HGET", &format!("{prefix}:{{p:{p}}}:lp:lp"), "held"])
                .unwrap();
            assert!(flag.as_text().is_some(), "partition {p} holds the flag");
        }
    }
    let hint = format!("{prefix}:hint:{{lp/held}}");
    let hinted = || -> BTreeSet<u16> {
        if cluster {
            return holding.clone();
        }
        resp_texts(&server.command(&["ZRANGE", &hint, "0", "-1"]).unwrap())
            .iter()
            .map(|p| p.parse().unwrap())
            .collect()
    };
    assert_eq!(hinted(), holding);
    let request =
        |max| claim_request("lp", &["held", "free"], "w", max).with_capabilities([gpu.clone()]);
    let mut taken = BTreeSet::new();
    for _ in 0..3 {
        for c in backend.claim(request(100)).await.unwrap() {
            taken.insert(c.id);
        }
    }
    assert_eq!(taken, free, "only the lane that is not paused");
    // One at a time too: a narrow claim must not spend itself on the
    // paused lane's members either.
    let more = backend.create_one(exec("lp", "free")).await.unwrap().id;
    let one = backend.claim(request(1)).await.unwrap();
    assert_eq!(one.iter().map(|c| &c.id).collect::<Vec<_>>(), vec![&more]);
    // Drops of empty lanes run in the background: give them the time.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hinted(), holding, "the paused lane's hint is kept");
    let lanes = backend.lanes(&ns("lp")).await.unwrap();
    assert_eq!(lanes.len(), 2);
    assert!(lanes[1].paused_at.is_some() && lanes[1].lane.as_str() == "held");
    assert_eq!(lanes[1].counts.waiting, 16);

    assert!(backend.resume_lane(&ns("lp"), &lane("held")).await.unwrap());
    if !cluster {
        for p in 0..8 {
            let left = server
                .command(&["EXISTS", &format!("{prefix}:{{p:{p}}}:lp:lp")])
                .unwrap();
            assert_eq!(resp_int(&left), 0, "partition {p} forgot the flag");
        }
    }
    assert!(
        backend.lanes(&ns("lp")).await.unwrap()[1]
            .paused_at
            .is_none()
    );
    let mut claimed = BTreeSet::new();
    for c in backend.claim(request(100)).await.unwrap() {
        claimed.insert(c.id);
    }
    assert_eq!(claimed, held, "one claim takes the whole resumed lane");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_lane_is_skipped_in_every_partition_on_valkey() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    a_paused_lane_is_skipped_in_every_partition(server, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_lane_is_skipped_in_every_partition_on_a_cluster() {
    let Some(server) = servers::valkey_cluster().await else {
        return;
    };
    a_paused_lane_is_skipped_in_every_partition(server, true).await;
}

/// A paused execution sits in no index a pass reads: one paused while
/// running leaves `leases` (a reclaim long after its lease would have
/// expired does not touch it), one paused while delayed leaves `delayed`
/// (the promote pass does not move it), one paused while suspended with a
/// timeout has its entry dropped by the timeout pass; all stay in
/// `deadlines`. Resumed, each is back in the index of the state it
/// returns to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_executions_leave_the_indexes_of_the_passes() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=1")).await;
    let base = format!("{prefix}:{{p:0}}");
    let score = |set: &str, id: &ExecutionId| {
        server
            .command(&[
                "ZSCORE",
                &format!("{base}:{set}"),
                &id.uuid().simple().to_string(),
            ])
            .unwrap()
            .as_text()
    };
    let deadline = baton_core::Clock::now(&*clock).saturating_add(Duration::from_secs(3_600));
    let running = backend
        .create_one(exec("px", "run").with_deadline(deadline))
        .await
        .unwrap()
        .id;
    let lease = backend
        .claim(claim_request("px", &["run"], "w", 1).with_lease_ttl(Duration::from_secs(1)))
        .await
        .unwrap()
        .remove(0)
        .lease;
    let waiter = backend.create_one(exec("px", "wait")).await.unwrap().id;
    let wait_lease = backend
        .claim(claim_request("px", &["wait"], "w", 1))
        .await
        .unwrap()
        .remove(0)
        .lease;
    let wait = baton_core::SuspendRequest::signals([baton_core::SignalName::new("go").unwrap()])
        .with_timeout(Duration::from_secs(1), baton_core::OnTimeout::Fail);
    backend.suspend(&wait_lease, wait).await.unwrap();
    let delayed = backend
        .create_one(exec("px", "later").with_delay_ms(1_000))
        .await
        .unwrap()
        .id;
    assert!(score("leases", &running).is_some());
    assert!(score("delayed", &delayed).is_some());
    assert!(score("timeouts", &waiter).is_some());
    for id in [&running, &delayed, &waiter] {
        let out = backend
            .pause(id, baton_core::CancelScope::Execution)
            .await
            .unwrap();
        assert_eq!(out.snapshot.state, State::Paused);
    }
    assert_eq!(score("leases", &running), None);
    assert_eq!(score("delayed", &delayed), None);
    assert!(
        score("deadlines", &running).is_some(),
        "deadlines still reach it"
    );
    clock.advance(Duration::from_secs(60));
    let p = baton_core::PartitionId(0);
    assert_eq!(
        backend
            .reclaim_expired_leases(p, 100)
            .await
            .unwrap()
            .processed,
        0
    );
    assert_eq!(backend.promote_due(p, 100).await.unwrap().processed, 0);
    assert_eq!(backend.timeout_due(p, 100).await.unwrap().processed, 0);
    assert_eq!(
        score("timeouts", &waiter),
        None,
        "the stale entry is dropped"
    );
    for id in [&running, &delayed, &waiter] {
        assert_eq!(backend.describe(id).await.unwrap().state, State::Paused);
    }
    let renewed = backend
        .renew(baton_core::RenewRequest {
            worker_id: WorkerId::new("w").unwrap(),
            lease_ttl: Duration::from_secs(30),
            leases: vec![lease.clone()],
        })
        .await
        .unwrap();
    assert_eq!(renewed[0].status, baton_core::RenewStatus::Paused);
    // Resumed: back where a pass or a claim finds them.
    for id in [&running, &delayed, &waiter] {
        backend
            .resume(id, baton_core::CancelScope::Execution)
            .await
            .unwrap();
    }
    assert_eq!(
        backend.describe(&delayed).await.unwrap().state,
        State::Waiting
    );
    assert!(score("timeouts", &waiter).is_some());
    assert_eq!(backend.timeout_due(p, 100).await.unwrap().processed, 1);
    assert_eq!(
        backend.describe(&waiter).await.unwrap().state,
        State::Failed
    );
    let again = backend
        .claim(claim_request("px", &["run", "later"], "w", 10))
        .await
        .unwrap();
    let ids: BTreeSet<ExecutionId> = again.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids, BTreeSet::from([running.clone(), delayed.clone()]));
    assert!(score("leases", &running).is_some());
}

/// A replay of an execution whose first end is still being told to its
/// dependents by the cascade pass (more of them than the budget) waits
/// (`Contention`) until the pass has told them all; after it, the
/// dependents set is gone, the replayed execution's second end tells only
/// dependents created after the replay, and the trim leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_waits_for_a_queued_dependents_walk_of_the_first_end() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let mut config = ValkeyConfig::from_url(&url_with(server, &prefix, "partitions=2")).unwrap();
    config.clock = clock.clone();
    let config = config.with_limits(baton_core::Limits {
        cascade_budget: 3,
        ..Default::default()
    });
    let backend = ValkeyBackend::open(config).await.unwrap();
    let keys = |what: &str| -> BTreeSet<String> {
        resp_texts(
            &server
                .command(&["KEYS", &format!("{prefix}:*:{what}")])
                .unwrap(),
        )
        .into_iter()
        .collect()
    };
    let root = backend.create_one(exec("rq", "root")).await.unwrap().id;
    let member = |l: &str| exec("rq", l).with_parent(root.clone());
    let up = backend.create_one(member("up")).await.unwrap().id;
    let skip = baton_core::DependencyPolicy::new(
        baton_core::DependencyMode::AllOf,
        baton_core::UpstreamFailure::Skip,
    );
    let dependent = || {
        member("down")
            .with_dependencies([up.clone()])
            .with_dependency_policy(skip)
    };
    let first: Vec<ExecutionId> = backend
        .create(vec![dependent(); 6])
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    let cancelled = backend
        .cancel(
            &up,
            CancelRequest::because("first end").with_scope(baton_core::CancelScope::Execution),
        )
        .await
        .unwrap();
    assert_eq!(cancelled.snapshot.state, State::Cancelled);
    let skipped = |ids: &[ExecutionId]| {
        let backend = backend.clone();
        let ids = ids.to_vec();
        async move {
            let mut n = 0;
            for id in &ids {
                if backend.describe(id).await.unwrap().state == State::Skipped {
                    n += 1;
                }
            }
            n
        }
    };
    assert_eq!(skipped(&first).await, 3, "the budget told three");
    clock.advance(Duration::from_millis(5));
    let err = backend.replay(&up).await.unwrap_err();
    assert!(matches!(err, EngineError::Contention { .. }), "{err}");
    assert!(err.is_retryable(), "{err}");
    loop {
        let step = backend.cascade_due(up.partition(), 2).await.unwrap();
        if step.next_due.is_none() {
            break;
        }
    }
    assert_eq!(skipped(&first).await, 6, "the queued walk told the rest");
    let replayed = backend.replay(&up).await.unwrap();
    assert_eq!(replayed.state, State::Waiting);
    let u = up.uuid().simple().to_string();
    assert!(keys(&format!("dn:{u}*")).is_empty());
    let later = backend.create_one(dependent()).await.unwrap().id;
    assert_eq!(
        backend.describe(&later).await.unwrap().state,
        State::Blocked
    );
    let lease = backend
        .claim(claim_request("rq", &["up"], "w", 1))
        .await
        .unwrap()
        .remove(0)
        .lease;
    backend.complete(&lease, b"{}".to_vec()).await.unwrap();
    assert_eq!(
        backend.describe(&later).await.unwrap().state,
        State::Waiting
    );
    assert_eq!(skipped(&first).await, 6);
    // The flow ends; the trim leaves no dependents set behind.
    backend
        .cancel(&root, CancelRequest::default())
        .await
        .unwrap();
    while backend
        .cascade_due(up.partition(), 100)
        .await
        .unwrap()
        .next_due
        .is_some()
    {}
    assert_eq!(
        backend.describe(&later).await.unwrap().state,
        State::Cancelled
    );
    clock.advance(Duration::from_secs(10));
    for p in backend.partitions().iter() {
        backend
            .trim_terminal(p, Duration::from_secs(1), 100)
            .await
            .unwrap();
    }
    for what in ["e:*", "open:*", "dn:*"] {
        assert_eq!(keys(what), BTreeSet::new(), "{what} after trim");
    }
}

/// A bulk call goes on over list pages that examined entries without
/// finding a match (more non-matching entries in a partition than one
/// list call examines): it reaches every match once and ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_walk_goes_on_over_pages_without_matches() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let backend = connect(&url_with(server, &prefix, "partitions=1")).await;
    for chunk in 0..3 {
        let noise: Vec<NewExecution> = (0..800).map(|_| exec("bw", "noise")).collect();
        assert_eq!(
            backend.create(noise).await.unwrap().len(),
            800,
            "chunk {chunk}"
        );
    }
    let wanted: Vec<ExecutionId> = backend
        .create((0..3).map(|_| exec("bw", "wanted")).collect())
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    let filter = ListFilter::namespace(ns("bw")).with_lane(lane("wanted"));
    let first = backend
        .list(&filter, baton_core::Page::first(10))
        .await
        .unwrap();
    assert!(
        first.items.is_empty() && first.next_cursor.is_some(),
        "the first list page examined only non-matching entries: {first:?}"
    );
    let report = backend
        .bulk(baton_core::BulkRequest {
            action: baton_core::BulkAction::Cancel(CancelRequest::because("bulk")),
            filter,
            ids: Vec::new(),
            limit: 1000,
            dry_run: false,
            cursor: None,
            actor: None,
        })
        .await
        .unwrap();
    assert_eq!(
        (report.matched, report.changed, report.next_cursor),
        (3, 3, None)
    );
    for id in &wanted {
        assert_eq!(backend.describe(id).await.unwrap().state, State::Cancelled);
    }
}

// ---------------------------------------------------------------- history

/// A detail is cut to `ExecutionEvent::MAX_DETAIL` characters, not bytes:
/// Lua sees bytes, and a cut inside a character would store text that is
/// not UTF-8 (or a shorter detail than the other backends keep).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_detail_is_cut_at_a_character() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, _clock) = connect_with_clock(&url_with(server, &prefix, "partitions=2")).await;
    backend.set_history(&ns("hist"), true).await.unwrap();
    let text = format!("ab{}{}", "é".repeat(600), "😀".repeat(600));
    let expected = baton_core::raw::rules::event_detail(&text);
    assert_eq!(
        expected.chars().count(),
        baton_core::ExecutionEvent::MAX_DETAIL
    );
    let cancelled = backend.create_one(exec("hist", "cut")).await.unwrap().id;
    backend
        .cancel(&cancelled, CancelRequest::because(text.clone()))
        .await
        .unwrap();
    let failed = backend.create_one(exec("hist", "cut")).await.unwrap().id;
    let claim = backend
        .claim(claim_request("hist", &["cut"], "w", 1))
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(claim.id, failed);
    backend
        .fail(&claim.lease, Failure::permanent(text.clone()))
        .await
        .unwrap();
    for id in [&cancelled, &failed] {
        let events = backend.events(id, 0, 10).await.unwrap();
        let last = events.last().unwrap();
        assert_eq!(last.detail.as_deref(), Some(expected.as_str()), "{id}");
    }
}

/// An execution written by an older library holds no `hx`: it keeps no
/// history, even in a namespace whose history is on now. Its changes record
/// nothing (nor number anything in its record), and a trim leaves no
/// history key behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_execution_keeps_no_history() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=2")).await;
    backend.set_history(&ns("hist"), true).await.unwrap();
    let id = backend.create_one(exec("hist", "old")).await.unwrap().id;
    let key = |what: &str| {
        format!(
            "{prefix}:{{p:{}}}:{what}:{}",
            id.partition().get(),
            id.uuid().simple()
        )
    };
    assert_eq!(backend.events(&id, 0, 10).await.unwrap().len(), 1);
    // What an older library wrote: no `hx`, no `ev`, no history.
    let forget = "local h = cmsgpack.unpack(redis.call('GET', KEYS[1])) h.hx, h.ev = nil, nil \
        redis.call('SET', KEYS[1], cmsgpack.pack(h)) redis.call('DEL', KEYS[2]) return 1";
    server
        .command(&["EVAL", forget, "2", &key("e"), &key("ev")])
        .unwrap();
    let claim = backend
        .claim(claim_request("hist", &["old"], "w", 1))
        .await
        .unwrap()
        .pop()
        .unwrap();
    backend
        .complete(&claim.lease, b"{}".to_vec())
        .await
        .unwrap();
    backend
        .audit(std::slice::from_ref(&id), "bulk")
        .await
        .unwrap();
    assert!(backend.events(&id, 0, 10).await.unwrap().is_empty());
    assert_eq!(
        resp_int(&server.command(&["EXISTS", &key("ev")]).unwrap()),
        0
    );
    assert_eq!(record_field(server, &key("e"), "ev"), "");
    clock.advance(Duration::from_secs(10));
    for p in backend.partitions().iter() {
        backend
            .trim_terminal(p, Duration::from_secs(1), 100)
            .await
            .unwrap();
    }
    assert_eq!(
        resp_int(&server.command(&["EXISTS", &key("e")]).unwrap()),
        0
    );
}

/// A field of a stored execution record (`key`), '' when absent.
fn record_field(server: &RedisServer, key: &str, field: &str) -> String {
    let read = "return cmsgpack.unpack(redis.call('GET', KEYS[1]))[ARGV[1]] or ''";
    resp_text(&server.command(&["EVAL", read, "1", key, field]).unwrap())
}

/// The setting is a field of the hash `hx` of every partition, which
/// `set_history` writes and removes in each; `baton_create` reads its own
/// partition's copy (a partition a failed `set_history` did not reach
/// creates with the old setting, and `history_enabled` answers on while
/// any partition holds it). Off, an execution's changes, signals, edits
/// and audits write no history key and no record field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_setting_is_written_to_every_partition_and_off_writes_nothing() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, _clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let flags = |p: u16| format!("{prefix}:{{p:{p}}}:hx");
    let on_in = |ns: &str| -> Vec<u16> {
        (0..4)
            .filter(|&p| resp_int(&server.command(&["HEXISTS", &flags(p), ns]).unwrap()) == 1)
            .collect()
    };
    assert!(!backend.set_history(&ns("on"), true).await.unwrap());
    assert_eq!(on_in("on"), vec![0, 1, 2, 3]);
    assert_eq!(on_in("off"), Vec::<u16>::new());
    assert!(backend.history_enabled(&ns("on")).await.unwrap());
    assert!(!backend.history_enabled(&ns("off")).await.unwrap());
    // Creates rotate over the partitions: one of each namespace in each.
    let mut on = Vec::new();
    let mut off = Vec::new();
    for _ in 0..4 {
        on.push(backend.create_one(exec("on", "l")).await.unwrap().id);
        off.push(backend.create_one(exec("off", "l")).await.unwrap().id);
    }
    let key = |what: &str, id: &ExecutionId| {
        format!(
            "{prefix}:{{p:{}}}:{what}:{}",
            id.partition().get(),
            id.uuid().simple()
        )
    };
    for id in &off {
        backend
            .signal(
                id,
                baton_core::NewSignal::new(
                    baton_core::SignalName::new("s").unwrap(),
                    b"1".to_vec(),
                ),
            )
            .await
            .unwrap();
        backend.set_priority(id, 7).await.unwrap();
    }
    backend.audit(&off, "bulk").await.unwrap();
    let claims = claim_up_to(&backend, "off", &["l"], "w", 4).await;
    for c in &claims {
        backend.complete(&c.lease, b"{}".to_vec()).await.unwrap();
    }
    for id in &off {
        assert!(backend.events(id, 0, 10).await.unwrap().is_empty(), "{id}");
        assert_eq!(record_field(server, &key("e", id), "hx"), "", "{id}");
        assert_eq!(record_field(server, &key("e", id), "ev"), "", "{id}");
    }
    for id in &on {
        assert_eq!(record_field(server, &key("e", id), "hx"), "1", "{id}");
    }
    let histories = resp_texts(
        &server
            .command(&["KEYS", &format!("{prefix}:*:ev:*")])
            .unwrap(),
    );
    let expected: BTreeSet<String> = on.iter().map(|id| key("ev", id)).collect();
    assert_eq!(histories.into_iter().collect::<BTreeSet<_>>(), expected);
    // A partition the setting did not reach creates with the old one.
    let partition = on[0].partition().get();
    server.command(&["HDEL", &flags(partition), "on"]).unwrap();
    assert!(backend.history_enabled(&ns("on")).await.unwrap());
    let mut reached = Vec::new();
    for _ in 0..4 {
        let id = backend.create_one(exec("on", "l")).await.unwrap().id;
        let kept = record_field(server, &key("e", &id), "hx") == "1";
        assert_eq!(kept, id.partition().get() != partition, "{id}");
        reached.push(id.partition().get());
    }
    assert!(reached.contains(&partition), "{reached:?}");
    assert!(backend.set_history(&ns("on"), false).await.unwrap());
    assert_eq!(on_in("on"), Vec::<u16>::new());
    assert!(!backend.history_enabled(&ns("on")).await.unwrap());
    assert!(!backend.set_history(&ns("on"), false).await.unwrap());
}

/// A forced delete that cancels part of a tree removes what its cancel
/// changed as the cancel left it, the history the cancel started
/// included: with the history on, a finished member with an unfinished
/// descendant is refused (even with force: only the flow's root cancels
/// first), and a forced delete of its finished root cancels that
/// descendant and removes everything, leaving no history key behind and
/// counts that add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_delete_removes_what_its_cancel_changed() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, _clock) = connect_with_clock(&url_with(server, &prefix, "partitions=2")).await;
    let keys = |what: &str| -> BTreeSet<String> {
        resp_texts(
            &server
                .command(&["KEYS", &format!("{prefix}:*:{what}")])
                .unwrap(),
        )
        .into_iter()
        .collect()
    };
    let n = "delh";
    backend.set_history(&ns(n), true).await.unwrap();
    let root = backend.create_one(exec(n, "root")).await.unwrap().id;
    let member = backend
        .create_one(exec(n, "member").with_parent(root.clone()))
        .await
        .unwrap()
        .id;
    let below = backend
        .create_one(exec(n, "below").with_parent(member.clone()))
        .await
        .unwrap()
        .id;
    let deep = backend
        .create_one(exec(n, "deep").with_parent(below.clone()))
        .await
        .unwrap()
        .id;
    let done = |id: &ExecutionId, l: &'static str| {
        let backend = backend.clone();
        let id = id.clone();
        async move {
            let claim = backend
                .claim(claim_request(n, &[l], "w", 1))
                .await
                .unwrap()
                .pop()
                .unwrap();
            assert_eq!(claim.id, id);
            backend.complete(&claim.lease, b"1".to_vec()).await.unwrap();
        }
    };
    // A finished member whose descendants have not finished (one waiting,
    // one running).
    done(&member, "member").await;
    let running = backend
        .claim(claim_request(n, &["deep"], "w", 1))
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(running.id, deep);
    let histories = keys("ev:*");
    assert_eq!(histories.len(), 4, "{histories:?}");
    for force in [false, true] {
        match backend.delete(&member, force).await {
            Err(EngineError::Conflict { state, .. }) => assert_eq!(state, State::Completed),
            other => panic!("force {force}: {other:?}"),
        }
    }
    assert_eq!(keys("ev:*"), histories, "a refused delete writes nothing");
    // Its root finished too: a forced delete of the root cancels the
    // member's descendants, then removes the flow.
    done(&root, "root").await;
    let report = backend.delete(&root, true).await.unwrap();
    assert_eq!((report.deleted, report.cancelled), (4, true));
    for what in [
        "e:*", "p:*", "ev:*", "ch:*", "tr:*", "open:*", "cq", "leases",
    ] {
        assert_eq!(keys(what), BTreeSet::new(), "{what} after the delete");
    }
    assert_eq!(counts(&backend, n).await, BTreeMap::new());
}

/// Retention rules are fields of the hash `ret` of every partition
/// (`<ns>/<lane>`, `<ns>/` for every lane); `baton_create` stamps a root
/// covered by one with its keep (`kp`; a child and an uncovered root get
/// none), a finished root with a keep sits in `kept` at the time it is due
/// and one without in `done` at its finish; a replay takes it out of both
/// (its stamp stays), a delete and a trim too, and removing the rules
/// leaves no `ret` behind. A partition the write did not reach stamps the
/// old keep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keys_hold_only_what_lives() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let keys = |what: &str| -> BTreeSet<String> {
        resp_texts(
            &server
                .command(&["KEYS", &format!("{prefix}:*:{what}")])
                .unwrap(),
        )
        .into_iter()
        .collect()
    };
    let key = |what: &str, id: &ExecutionId| {
        format!(
            "{prefix}:{{p:{}}}:{what}:{}",
            id.partition().get(),
            id.uuid().simple()
        )
    };
    let score = |set: &str, id: &ExecutionId| {
        server
            .command(&[
                "ZSCORE",
                &format!("{prefix}:{{p:{}}}:{set}", id.partition().get()),
                &id.uuid().simple().to_string(),
            ])
            .unwrap()
            .as_text()
            .map(|s| s.parse::<i64>().unwrap())
    };
    let rules_of = |p: u16| -> BTreeMap<String, String> {
        let flat = resp_texts(
            &server
                .command(&["HGETALL", &format!("{prefix}:{{p:{p}}}:ret")])
                .unwrap(),
        );
        flat.chunks(2)
            .map(|kv| (kv[0].clone(), kv[1].clone()))
            .collect()
    };
    let minutes = |m: u64| Duration::from_secs(60 * m);
    assert_eq!(
        backend
            .set_retention(&ns("ret"), None, minutes(10))
            .await
            .unwrap(),
        None
    );
    backend
        .set_retention(&ns("ret"), Some(&lane("bulk")), minutes(60))
        .await
        .unwrap();
    let expected: BTreeMap<String, String> = [
        ("ret/".to_owned(), "600000".to_owned()),
        ("ret/bulk".to_owned(), "3600000".to_owned()),
    ]
    .into();
    for p in 0..4 {
        assert_eq!(rules_of(p), expected, "partition {p}");
    }

    let main = backend.create_one(exec("ret", "main")).await.unwrap().id;
    let child = backend
        .create_one(exec("ret", "main").with_parent(main.clone()))
        .await
        .unwrap()
        .id;
    let bulk = backend.create_one(exec("ret", "bulk")).await.unwrap().id;
    let plain = backend.create_one(exec("plain", "main")).await.unwrap().id;
    assert_eq!(record_field(server, &key("e", &main), "kp"), "600000");
    assert_eq!(record_field(server, &key("e", &child), "kp"), "", "a child");
    assert_eq!(record_field(server, &key("e", &bulk), "kp"), "3600000");
    assert_eq!(record_field(server, &key("e", &plain), "kp"), "", "no rule");

    let at = baton_core::Clock::now(&*clock).as_millis();
    for id in [&main, &bulk, &plain] {
        backend.cancel(id, CancelRequest::default()).await.unwrap();
    }
    assert_eq!(score("kept", &main), Some(at + 600_000));
    assert_eq!(score("done", &main), None);
    assert_eq!(score("kept", &child), None, "a member is in neither");
    assert_eq!(score("done", &child), None, "a member is in neither");
    assert_eq!(score("kept", &bulk), Some(at + 3_600_000));
    assert_eq!(score("done", &plain), Some(at));
    assert_eq!(score("kept", &plain), None);

    // A replay takes the root out of both; its next finish places it by
    // the keep it carries.
    backend.replay(&bulk).await.unwrap();
    assert_eq!((score("kept", &bulk), score("done", &bulk)), (None, None));
    assert_eq!(record_field(server, &key("e", &bulk), "kp"), "3600000");
    clock.advance(Duration::from_secs(1));
    backend
        .cancel(&bulk, CancelRequest::default())
        .await
        .unwrap();
    assert_eq!(score("kept", &bulk), Some(at + 1_000 + 3_600_000));
    // A delete takes it out too.
    backend.delete(&bulk, false).await.unwrap();
    assert_eq!(score("kept", &bulk), None);

    // Due by its keep, but a rule set since keeps it longer: moved to when
    // that rule says, not trimmed.
    backend
        .set_retention(&ns("ret"), None, minutes(30))
        .await
        .unwrap();
    clock.advance(minutes(10));
    let mut trimmed = 0;
    for p in backend.partitions().iter() {
        trimmed += backend
            .trim_terminal(p, minutes(60), 100)
            .await
            .unwrap()
            .processed;
    }
    assert_eq!(trimmed, 0);
    assert_eq!(score("kept", &main), Some(at + 1_800_000));
    assert_eq!(record_field(server, &key("e", &main), "kp"), "1800000");
    // Its rule removed: the default applies, counted from its finish.
    backend.remove_retention(&ns("ret"), None).await.unwrap();
    clock.advance(minutes(20));
    for p in backend.partitions().iter() {
        trimmed += backend
            .trim_terminal(p, minutes(60), 100)
            .await
            .unwrap()
            .processed;
    }
    assert_eq!(trimmed, 0);
    assert_eq!(score("kept", &main), None);
    assert_eq!(score("done", &main), Some(at));
    assert_eq!(record_field(server, &key("e", &main), "kp"), "");
    clock.advance(minutes(30));
    for p in backend.partitions().iter() {
        trimmed += backend
            .trim_terminal(p, minutes(60), 100)
            .await
            .unwrap()
            .processed;
    }
    assert_eq!(trimmed, 3, "the root, its child and the plain root");
    for what in ["e:*", "p:*", "tr:*", "open:*", "ns:*", "done", "kept"] {
        assert_eq!(keys(what), BTreeSet::new(), "{what} after the trim");
    }

    // A partition the write did not reach stamps the old keep (none).
    backend
        .set_retention(&ns("ret"), None, minutes(10))
        .await
        .unwrap();
    let partition = main.partition().get();
    server
        .command(&["HDEL", &format!("{prefix}:{{p:{partition}}}:ret"), "ret/"])
        .unwrap();
    let mut reached = Vec::new();
    for _ in 0..4 {
        let id = backend.create_one(exec("ret", "main")).await.unwrap().id;
        let stamped = record_field(server, &key("e", &id), "kp") == "600000";
        assert_eq!(stamped, id.partition().get() != partition, "{id}");
        reached.push(id.partition().get());
    }
    assert!(reached.contains(&partition), "{reached:?}");
    // The listing reads every partition and says how to mend a rule that
    // differs between them; setting it again mends it.
    let err = backend.retention_rules().await.unwrap_err();
    assert!(
        matches!(&err, EngineError::Configuration { message } if message.contains("\"ret/\"") && message.contains("set it again")),
        "{err:?}"
    );
    backend
        .set_retention(&ns("ret"), None, minutes(10))
        .await
        .unwrap();
    assert_eq!(backend.retention_rules().await.unwrap().len(), 2);
    // One writer at a time: a change while another holds the lock is
    // refused as contention, and goes through once it is released.
    let lock = format!("{prefix}:{{ctl}}:retention-lock");
    server
        .command(&["SET", &lock, "someone", "PX", "30000"])
        .unwrap();
    let err = backend
        .set_retention(&ns("ret"), None, minutes(20))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Contention { .. }), "{err:?}");
    assert!(err.is_retryable());
    let err = backend
        .remove_retention(&ns("ret"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Contention { .. }), "{err:?}");
    server.command(&["DEL", &lock]).unwrap();
    assert_eq!(
        backend
            .set_retention(&ns("ret"), None, minutes(20))
            .await
            .unwrap(),
        Some(minutes(10))
    );
    assert_eq!(
        resp_int(&server.command(&["EXISTS", &lock]).unwrap()),
        0,
        "the writer released its lock"
    );
    for l in [None, Some(lane("bulk"))] {
        assert!(
            backend
                .remove_retention(&ns("ret"), l.as_ref())
                .await
                .unwrap()
                .is_some()
        );
    }
    for p in 0..4 {
        let ret = format!("{prefix}:{{p:{p}}}:ret");
        assert_eq!(resp_int(&server.command(&["EXISTS", &ret]).unwrap()), 0);
    }
    assert!(backend.retention_rules().await.unwrap().is_empty());
}

/// The trim pass merges the roots due in `done` and in `kept` by when they
/// are due and judges at most `limit` of them: a root it only re-stamps
/// (a longer rule in force) takes its place in the call without counting,
/// and `next_due` is the earliest of both sets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trim_reads_both_sets_in_due_order_within_its_limit() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=1")).await;
    let minutes = |m: u64| Duration::from_secs(60 * m);
    backend
        .set_retention(&ns("short"), None, minutes(2))
        .await
        .unwrap();
    backend
        .set_retention(&ns("mid"), None, minutes(5))
        .await
        .unwrap();
    let t0 = baton_core::Clock::now(&*clock);
    let mut ids = Vec::new();
    for n in ["short", "plain", "mid"] {
        let id = backend.create_one(exec(n, "l")).await.unwrap().id;
        backend.cancel(&id, CancelRequest::default()).await.unwrap();
        ids.push(id);
    }
    let (short, plain, mid) = (&ids[0], &ids[1], &ids[2]);
    // `short` is due first (2 min), but its rule is an hour now.
    backend
        .set_retention(&ns("short"), None, minutes(60))
        .await
        .unwrap();
    clock.advance(minutes(10));
    let p = short.partition();
    let trim = |limit: usize| {
        let backend = backend.clone();
        async move { backend.trim_terminal(p, minutes(3), limit).await.unwrap() }
    };
    let first = trim(1).await;
    assert_eq!(first.processed, 0, "re-stamped only");
    assert_eq!(first.next_due, Some(t0.saturating_add(minutes(3))));
    backend.describe(short).await.unwrap();
    let second = trim(1).await;
    assert_eq!(second.processed, 1, "the default's, at 3 min");
    assert!(backend.describe(plain).await.is_err());
    assert_eq!(second.next_due, Some(t0.saturating_add(minutes(5))));
    let third = trim(5).await;
    assert_eq!(third.processed, 1, "the 5 min rule's");
    assert!(backend.describe(mid).await.is_err());
    assert_eq!(third.next_due, Some(t0.saturating_add(minutes(60))));
    backend.describe(short).await.unwrap();
    for n in ["short", "mid"] {
        backend.remove_retention(&ns(n), None).await.unwrap();
    }
}

/// Decodes one key server-side for [`partition_keys`]: its type and its
/// content, MessagePack values (records, history events, cascade items)
/// decoded, as JSON.
const DUMP_KEY: &str = r"
local k = KEYS[1]
local t = redis.call('TYPE', k)['ok']
local function dec(v)
  local ok, x = pcall(cmsgpack.unpack, v)
  if ok and type(x) == 'table' then return x end
  return v
end
local out = {}
if t == 'string' then out = { dec(redis.call('GET', k)) }
elseif t == 'list' then
  for i, v in ipairs(redis.call('LRANGE', k, 0, -1)) do out[i] = dec(v) end
elseif t == 'hash' then out = redis.call('HGETALL', k)
elseif t == 'zset' then out = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
elseif t == 'set' then out = redis.call('SMEMBERS', k)
end
return cjson.encode({ t, out })
";

/// Replaces every id of `ids` (either text form) by its position in
/// `ids`, and drops the lease nonces of records (random per claim), so two
/// deployments built by the same calls read alike.
fn normalized(v: &mut serde_json::Value, ids: &[ExecutionId]) {
    match v {
        serde_json::Value::String(s) => {
            for (i, id) in ids.iter().enumerate() {
                let label = format!("<id{i}>");
                *s = s
                    .replace(&id.uuid().simple().to_string(), &label)
                    .replace(&id.uuid().hyphenated().to_string(), &label);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|x| normalized(x, ids)),
        serde_json::Value::Object(fields) => {
            // `ln`: the current lease's nonce; `a<k>n`: attempt k's.
            fields.retain(|f, _| {
                let nonce = f == "ln"
                    || (f.len() > 2
                        && f.starts_with('a')
                        && f.ends_with('n')
                        && f[1..f.len() - 1].bytes().all(|b| b.is_ascii_digit()));
                !nonce
            });
            fields.values_mut().for_each(|x| normalized(x, ids));
        }
        _ => {}
    }
}

/// Every partition key under `prefix` (hints, the worker registry and
/// ownership left out: written in the background or random), by name,
/// with its content normalized by [`normalized`]; members of sets and
/// sorted sets sorted (equal scores order by the random ids).
fn partition_keys(
    server: &RedisServer,
    prefix: &str,
    ids: &[ExecutionId],
) -> BTreeMap<String, String> {
    let names = resp_texts(&server.command(&["KEYS", &format!("{prefix}:*")]).unwrap());
    let mut out = BTreeMap::new();
    for name in names.into_iter().filter(|k| k.contains("{p:")) {
        let dumped = resp_text(&server.command(&["EVAL", DUMP_KEY, "1", &name]).unwrap());
        let mut v: serde_json::Value = serde_json::from_str(&dumped).unwrap();
        normalized(&mut v, ids);
        let kind = v[0].as_str().unwrap_or_default().to_owned();
        let content = match (kind.as_str(), v[1].as_array()) {
            ("zset" | "hash", Some(items)) => {
                let mut pairs: Vec<String> = items
                    .chunks(2)
                    .map(|p| serde_json::Value::Array(p.to_vec()).to_string())
                    .collect();
                pairs.sort();
                pairs.join(" ")
            }
            ("set", Some(items)) => {
                let mut members: Vec<String> = items.iter().map(|m| m.to_string()).collect();
                members.sort();
                members.join(" ")
            }
            _ => v[1].to_string(),
        };
        let mut key = serde_json::Value::String(name.replacen(prefix, "B", 1));
        normalized(&mut key, ids);
        out.insert(
            key.as_str().unwrap_or_default().to_owned(),
            format!("{kind} {content}"),
        );
    }
    out
}

/// The flow both twins of [`units_leave_the_keys_single_calls_leave`]
/// start from, in one partition: a root blocked on its children (a waiting
/// one with a child of its own and a dependent, a delayed one, a running
/// one), and beside it a completed root, a cancelled one and one deleted.
/// Answers the ids in creation order.
async fn twin_flow(backend: &ValkeyBackend, clock: &ManualClock) -> Vec<ExecutionId> {
    let n = "twin";
    backend.set_history(&ns(n), true).await.unwrap();
    let create = |e: NewExecution| async move { backend.create_one(e).await.unwrap().id };
    let claim_one = |l: &'static str| async move {
        backend
            .claim(claim_request(n, &[l], "w", 1))
            .await
            .unwrap()
            .pop()
            .unwrap()
    };
    let root = create(exec(n, "root")).await;
    let parent = claim_one("root").await;
    let kid = |l: &str| exec(n, l).with_parent(root.clone());
    let waiting = create(kid("kid")).await;
    let delayed = create(kid("kid").with_delay_ms(60_000)).await;
    let running = create(kid("run")).await;
    let dependent = create(kid("dep").with_dependencies([waiting.clone()])).await;
    let below = create(exec(n, "leaf").with_parent(waiting.clone())).await;
    backend.wait_children(&parent.lease).await.unwrap();
    assert_eq!(claim_one("run").await.id, running);
    let completed = create(exec(n, "other")).await;
    let c = claim_one("other").await;
    backend.complete(&c.lease, b"1".to_vec()).await.unwrap();
    let cancelled = create(exec(n, "other")).await;
    backend
        .cancel(&cancelled, CancelRequest::because("earlier"))
        .await
        .unwrap();
    let gone = create(exec(n, "other")).await;
    backend
        .cancel(&gone, CancelRequest::default())
        .await
        .unwrap();
    backend.delete(&gone, false).await.unwrap();
    clock.advance(Duration::from_millis(5));
    vec![
        root, waiting, delayed, running, dependent, below, completed, cancelled, gone,
    ]
}

/// A unit of tree cancels charges each id what its walk visited, not only
/// what it cancelled: its first id, a root already cancelled with more
/// finished children than the budget, cancels nothing, yet its walk visits
/// a whole budget, so the second id is not reached (as a single cancel, a
/// unit visits at most about one budget).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_charges_the_children_a_walk_visits() {
    use baton_core::{CancelPart, CancelScope};
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let config = ValkeyConfig::from_url(&url_with(server, &prefix, "partitions=1")).unwrap();
    let config = config.with_limits(baton_core::Limits {
        cascade_budget: 3,
        ..Default::default()
    });
    let b = ValkeyBackend::open(config).await.unwrap();
    let budget = b.capabilities().limits.cascade_budget;
    let root = b.create_one(exec("visits", "roots")).await.unwrap().id;
    let kids: Vec<_> = (0..=budget)
        .map(|_| exec("visits", "kids").with_parent(root.clone()))
        .collect();
    let alone = CancelRequest::because("first").with_scope(CancelScope::Execution);
    for kid in b.create(kids).await.unwrap() {
        b.cancel(&kid.id, alone.clone()).await.unwrap();
    }
    b.cancel(&root, alone).await.unwrap();
    let other = b.create_one(exec("visits", "roots")).await.unwrap().id;
    assert_eq!(root.partition(), other.partition());

    let parts = b
        .cancel_units(
            &[root.clone(), other.clone()],
            &CancelRequest::because("bulk"),
        )
        .await
        .unwrap();
    assert_eq!(parts[0].as_ref().ok(), Some(&CancelPart::Finished));
    assert_eq!(parts[1].as_ref().ok(), Some(&CancelPart::NotReached));
    assert_eq!(b.describe(&other).await.unwrap().state, State::Waiting);
}

/// A unit of cancels, and then one of replays, leave exactly the keys
/// (records, indexes, counts, histories, cascade queue) the single calls
/// leave when made one after another on a twin deployment built by the
/// same calls: every id is changed by the single call's routine, refused
/// ids change nothing, and a cancelled descendant keeps the reason naming
/// its own ancestor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_leave_the_keys_single_calls_leave() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let (unit_prefix, single_prefix) = (RedisServer::unique_prefix(), RedisServer::unique_prefix());
    let (units, units_clock) =
        connect_with_clock(&url_with(server, &unit_prefix, "partitions=1")).await;
    let (single, single_clock) =
        connect_with_clock(&url_with(server, &single_prefix, "partitions=1")).await;
    let u = twin_flow(&units, &units_clock).await;
    let s = twin_flow(&single, &single_clock).await;
    let compare = |what: &str| {
        let (a, b) = (
            partition_keys(server, &unit_prefix, &u),
            partition_keys(server, &single_prefix, &s),
        );
        let differ: Vec<_> = a
            .keys()
            .chain(b.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| format!("{k}:\n  unit   {:?}\n  single {:?}", a.get(k), b.get(k)))
            .collect();
        assert!(differ.is_empty(), "after {what}:\n{}", differ.join("\n"));
        assert!(a.len() > 20, "{what}: {} keys", a.len());
    };
    compare("building the twins");

    // Running, cancelled before, completed, gone, waiting with a child and
    // a dependent, delayed: the last cancel releases the root.
    let order = [3, 7, 6, 8, 1, 2];
    let request = CancelRequest::because("tidy");
    let ids: Vec<ExecutionId> = order.iter().map(|&i| u[i].clone()).collect();
    let parts = units.cancel_units(&ids, &request).await.unwrap();
    let mut kinds = Vec::new();
    for (p, &i) in parts.iter().zip(&order) {
        let single_answer = single.cancel(&s[i], request.clone()).await;
        kinds.push(match (p, &single_answer) {
            (Ok(baton_core::CancelPart::Cancelled), Ok(_)) => "cancelled",
            (Ok(baton_core::CancelPart::Finished), Ok(_)) => "finished",
            (Err(EngineError::Conflict { .. }), Err(EngineError::Conflict { .. })) => "conflict",
            (Err(EngineError::NotFound { .. }), Err(EngineError::NotFound { .. })) => "not found",
            other => panic!("id {i}: {other:?}"),
        });
    }
    assert_eq!(
        kinds,
        [
            "cancelled",
            "finished",
            "conflict",
            "not found",
            "cancelled",
            "cancelled"
        ]
    );
    let root = units.describe(&u[0]).await.unwrap();
    assert_eq!(root.state, State::Waiting, "its last child ended");
    let below = units.describe(&u[5]).await.unwrap();
    assert_eq!(
        below.cancel_reason,
        Some(baton_core::raw::rules::cascade_reason(
            &baton_core::Limits::default(),
            &u[1],
            Some("tidy")
        ))
    );
    compare("the cancels");

    units_clock.advance(Duration::from_millis(5));
    single_clock.advance(Duration::from_millis(5));
    // Running before, waiting with its child, the waiting root, gone, the
    // child cancelled by the cascade, completed, delayed.
    let order = [3, 1, 0, 8, 5, 6, 2];
    let ids: Vec<ExecutionId> = order.iter().map(|&i| u[i].clone()).collect();
    let answers = units.replay_units(&ids).await.unwrap();
    let mut kinds = Vec::new();
    for (a, &i) in answers.iter().zip(&order) {
        let single_answer = single.replay(&s[i]).await;
        kinds.push(match (a, &single_answer) {
            (Ok(()), Ok(_)) => "replayed",
            (Err(EngineError::Conflict { .. }), Err(EngineError::Conflict { .. })) => "conflict",
            (Err(EngineError::NotFound { .. }), Err(EngineError::NotFound { .. })) => "not found",
            other => panic!("id {i}: {other:?}"),
        });
    }
    assert_eq!(
        kinds,
        [
            "replayed",
            "replayed",
            "conflict",
            "not found",
            "replayed",
            "conflict",
            "replayed"
        ]
    );
    compare("the replays");
}

// ----------------------------------------------------------------- limits

/// A cap of `max` per `key` over every lane of namespace `n`.
fn cap_limit(n: &str, name: &str, key: &str, max: u32) -> baton_core::Limit {
    baton_core::Limit {
        name: baton_core::LimitName::new(name).unwrap(),
        namespace: ns(n),
        lane: None,
        key: key.parse().unwrap(),
        max_running: Some(max),
        rate: None,
        fair: false,
    }
}

/// The keys of the deployment under `prefix` whose names hold `part`,
/// sorted (standalone servers only: one node answers KEYS for all).
fn keys_with(server: &RedisServer, prefix: &str, part: &str) -> Vec<String> {
    let mut keys = resp_texts(&server.command(&["KEYS", &format!("{prefix}:*")]).unwrap());
    keys.retain(|k| k.contains(part));
    keys.sort();
    keys
}

/// A ZSCORE as an integer, None when the member is absent.
fn zscore(server: &RedisServer, key: &str, member: &str) -> Option<i64> {
    match server.command(&["ZSCORE", key, member]).unwrap() {
        RespValue::Nil => None,
        v => Some(resp_text(&v).parse().unwrap()),
    }
}

/// Completes the run of `claim` with `baton_complete` itself, as a process
/// that stops right after its call would: the release of its slots stays
/// recorded in its partition (`lrel`), applied by nobody. Answers the
/// reply's woken part.
fn complete_without_release(
    server: &RedisServer,
    prefix: &str,
    claim: &baton_core::Claim,
    now: Timestamp,
) -> Vec<String> {
    let base = format!("{prefix}:{{p:{}}}", claim.id.partition().get());
    let uuid = claim.id.uuid().simple().to_string();
    let reply = server
        .command(&[
            "FCALL",
            "baton_complete",
            "1",
            &base,
            "1",
            &uuid,
            &claim.attempt.to_string(),
            &format!("{:016x}", claim.lease.nonce()),
            "done",
            &now.as_millis().to_string(),
            "100",
        ])
        .unwrap();
    let RespValue::Array(items) = reply else {
        panic!("baton_complete answered {reply:?}");
    };
    assert_eq!(resp_text(&items[0]), "ok");
    let RespValue::Array(woken) = &items[2] else {
        panic!("baton_complete answered no woken part: {items:?}");
    };
    // The partition's sequence, then lanes and releases.
    woken[1..].iter().map(resp_text).collect()
}

/// The lapse grace in milliseconds.
fn grace_ms() -> i64 {
    i64::try_from(baton_valkey::LIMIT_LAPSE_GRACE.as_millis()).unwrap()
}

/// Everything a limit keeps lives in its namespace's slot (`{lim:<ns>}`),
/// beside the index of names in `{ctl}` and each partition's copy of the
/// limited lanes: a definition, the generation, holders (scored by when
/// they lapse: the lease's expiry plus the grace) with their sets, the
/// key's runs, its rate window and the value index. A claim of work no
/// limit counts holds nothing; an end drains its release at once (no
/// holder, nothing left in `lrel`); removing the limit leaves only the
/// generation behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_keeps_its_state_in_the_slot_of_its_namespace() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let n = "lk";
    let mut limit = cap_limit(n, "tenants", "tag:tenant", 1);
    limit.rate = Some(baton_core::Rate {
        count: 10,
        per: Duration::from_secs(1),
    });
    assert_eq!(backend.set_limit(&limit).await.unwrap(), None);
    for _ in 0..2 {
        backend
            .create_one(
                exec(n, "main").with_tag(baton_core::TagKey::new("tenant").unwrap(), "acme"),
            )
            .await
            .unwrap();
    }
    let untagged = backend.create_one(exec(n, "main")).await.unwrap().id;
    let claims = backend
        .claim(claim_request(n, &["main"], "w", 10).with_lease_ttl(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(claims.len(), 2, "one of acme (its cap), and the untagged");
    let acme = claims.iter().find(|c| c.id != untagged).unwrap();
    let holder = format!("{}:1", acme.id.uuid().simple());
    let lim = format!("{prefix}:{{lim:{n}}}");
    let now = clock.now().as_millis();
    let lapse = now + 60_000 + grace_ms();

    let partitions: Vec<String> = (0..4)
        .map(|p| format!("{prefix}:{{p:{p}}}:lim:{n}"))
        .collect();
    let mut expected: Vec<String> = [
        format!("{lim}:def"),
        format!("{lim}:gen"),
        format!("{lim}:hk"),
        format!("{lim}:hold"),
        format!("{lim}:q:tenants/acme"),
        format!("{lim}:r:tenants/acme"),
        format!("{lim}:v:tenants"),
        format!("{prefix}:{{ctl}}:limits"),
    ]
    .into_iter()
    .chain(partitions.iter().cloned())
    .collect();
    expected.sort();
    assert_eq!(keys_with(server, &prefix, "lim"), expected);
    // Every key of the namespace's limits carries its hash tag.
    for key in keys_with(server, &prefix, "{lim:") {
        assert!(key.starts_with(&format!("{lim}:")), "{key}");
    }
    assert_eq!(zscore(server, &format!("{lim}:hold"), &holder), Some(lapse));
    assert_eq!(
        zscore(server, &format!("{lim}:r:tenants/acme"), &holder),
        Some(lapse)
    );
    assert_eq!(
        zscore(server, &format!("{lim}:q:tenants/acme"), &holder),
        Some(now),
        "the claim's instant in the window"
    );
    assert_eq!(
        resp_text(
            &server
                .command(&["HGET", &format!("{lim}:hk"), &holder])
                .unwrap()
        ),
        "tenants/acme"
    );
    assert_eq!(
        resp_int(&server.command(&["ZCARD", &format!("{lim}:hold")]).unwrap()),
        1,
        "the untagged run holds nothing"
    );
    for copy in &partitions {
        let fields = resp_texts(&server.command(&["HKEYS", copy]).unwrap());
        assert_eq!(
            fields.into_iter().collect::<BTreeSet<_>>(),
            ["", "#"].into_iter().map(String::from).collect(),
            "{copy}: every lane, and the generation"
        );
    }

    backend.complete(&acme.lease, b"".to_vec()).await.unwrap();
    assert_eq!(
        resp_int(
            &server
                .command(&[
                    "EXISTS",
                    &format!("{lim}:hold"),
                    &format!("{lim}:hk"),
                    &format!("{lim}:r:tenants/acme")
                ])
                .unwrap()
        ),
        0,
        "the release was applied by the complete"
    );
    assert!(keys_with(server, &prefix, "lrel").is_empty());
    let usage = backend.limit_usage(&limit.name, 10).await.unwrap();
    assert_eq!(
        usage,
        vec![baton_core::LimitUsage {
            name: limit.name.clone(),
            key_value: "acme".into(),
            running: 0,
            window_claims: 1,
        }]
    );

    assert!(backend.remove_limit(&limit.name).await.unwrap().is_some());
    assert_eq!(
        keys_with(server, &prefix, "lim"),
        vec![format!("{lim}:gen")]
    );
}

/// A run whose release never reaches the limit slot (its process stopped
/// between the end and applying the release, and the record of it in the
/// partition was lost too) holds its slot until its lease's expiry plus
/// the grace, and not a millisecond longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_lapses_at_its_expiry_when_its_release_is_lost() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let n = "lapse";
    backend
        .set_limit(&cap_limit(n, "one", "lane", 1))
        .await
        .unwrap();
    backend
        .create_one(exec(n, "main").with_priority(1))
        .await
        .unwrap();
    let second = backend.create_one(exec(n, "main")).await.unwrap().id;
    let ttl = Duration::from_secs(1);
    let request = claim_request(n, &["main"], "w", 10).with_lease_ttl(ttl);
    let first = backend.claim(request.clone()).await.unwrap();
    assert_eq!(first.len(), 1);
    let holder = format!("{}:1", first[0].id.uuid().simple());
    let lapse = clock.now().as_millis() + 1_000 + grace_ms();
    let woken = complete_without_release(server, &prefix, &first[0], clock.now());
    assert!(
        woken.contains(&format!("!{n}/main {holder}")),
        "the reply carries the release: {woken:?}"
    );
    let lrel = format!("{prefix}:{{p:{}}}:lrel", first[0].id.partition().get());
    assert_eq!(
        resp_text(&server.command(&["HGET", &lrel, &holder]).unwrap()),
        format!("{n}/main")
    );
    server.command(&["DEL", &lrel]).unwrap();
    assert!(backend.claim(request.clone()).await.unwrap().is_empty());
    clock.advance(Duration::from_millis(
        u64::try_from(lapse - clock.now().as_millis() - 1).unwrap(),
    ));
    assert!(
        backend.claim(request.clone()).await.unwrap().is_empty(),
        "a millisecond before the lapse"
    );
    clock.advance(Duration::from_millis(1));
    let next = backend.claim(request).await.unwrap();
    assert_eq!(
        next.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&second]
    );
    assert_eq!(
        zscore(server, &format!("{prefix}:{{lim:{n}}}:hold"), &holder),
        None,
        "the lapsed holder is gone"
    );
}

/// A renew of a run holding slots extends them with its lease: they lapse
/// the grace after the new expiry, not the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renew_extends_the_slots_of_its_run() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let n = "renewed";
    backend
        .set_limit(&cap_limit(n, "one", "lane", 1))
        .await
        .unwrap();
    backend
        .create_one(exec(n, "main").with_priority(1))
        .await
        .unwrap();
    let second = backend.create_one(exec(n, "main")).await.unwrap().id;
    let ttl = Duration::from_secs(1);
    let request = claim_request(n, &["main"], "w", 10).with_lease_ttl(ttl);
    let start = clock.now().as_millis();
    let first = backend.claim(request.clone()).await.unwrap();
    assert_eq!(first.len(), 1);
    let holder = format!("{}:1", first[0].id.uuid().simple());
    let hold = format!("{prefix}:{{lim:{n}}}:hold");
    let set = format!("{prefix}:{{lim:{n}}}:r:one/main");
    assert_eq!(
        zscore(server, &hold, &holder),
        Some(start + 1_000 + grace_ms())
    );

    clock.advance(Duration::from_millis(900));
    let renewed = backend
        .renew(baton_core::RenewRequest {
            worker_id: WorkerId::new("w").unwrap(),
            lease_ttl: ttl,
            leases: vec![first[0].lease.clone()],
        })
        .await
        .unwrap();
    assert_eq!(renewed[0].status, baton_core::RenewStatus::Renewed);
    let lapse = start + 1_900 + grace_ms();
    assert_eq!(zscore(server, &hold, &holder), Some(lapse));
    assert_eq!(zscore(server, &set, &holder), Some(lapse));

    // Past the first lapse: still held.
    clock.advance(Duration::from_millis(
        u64::try_from(start + 1_000 + grace_ms() + 1 - clock.now().as_millis()).unwrap(),
    ));
    assert!(backend.claim(request.clone()).await.unwrap().is_empty());
    clock.advance(Duration::from_millis(
        u64::try_from(lapse - clock.now().as_millis()).unwrap(),
    ));
    let next = backend.claim(request).await.unwrap();
    assert_eq!(
        next.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&second]
    );
}

/// A release recorded in its partition but never applied (the process that
/// ended the run stopped first) keeps the slot taken until the promote pass
/// of that partition hands it out and the backend applies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_left_behind_is_applied_by_the_promote_pass() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let n = "drained";
    backend
        .set_limit(&cap_limit(n, "one", "lane", 1))
        .await
        .unwrap();
    backend
        .create_one(exec(n, "main").with_priority(1))
        .await
        .unwrap();
    let second = backend.create_one(exec(n, "main")).await.unwrap().id;
    let request = claim_request(n, &["main"], "w", 10).with_lease_ttl(Duration::from_secs(60));
    let first = backend.claim(request.clone()).await.unwrap();
    assert_eq!(first.len(), 1);
    complete_without_release(server, &prefix, &first[0], clock.now());
    let partition = first[0].id.partition();
    let lrel = format!("{prefix}:{{p:{}}}:lrel", partition.get());
    assert_eq!(resp_int(&server.command(&["HLEN", &lrel]).unwrap()), 1);
    assert!(
        backend.claim(request.clone()).await.unwrap().is_empty(),
        "the slot stays taken until the release is applied"
    );
    backend.promote_due(partition, 100).await.unwrap();
    assert_eq!(resp_int(&server.command(&["EXISTS", &lrel]).unwrap()), 0);
    let next = backend.claim(request).await.unwrap();
    assert_eq!(
        next.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&second]
    );
}

/// A claim admitted by the limits as they were before a limit changed, and
/// claiming after every partition's copy was rewritten, takes nothing: the
/// copy's generation is no longer the admission's (the claimer gives its
/// slots back and the next claim is judged by the new limits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_admitted_before_a_limit_changed_takes_nothing() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let n = "gen";
    backend
        .set_limit(&cap_limit(n, "tenants", "tag:tenant", 5))
        .await
        .unwrap();
    let id = backend
        .create_one(exec(n, "main").with_tag(baton_core::TagKey::new("tenant").unwrap(), "acme"))
        .await
        .unwrap()
        .id;
    let uuid = id.uuid().simple().to_string();
    let holder = format!("{uuid}:1");
    let lim = format!("{prefix}:{{lim:{n}}}");
    let now = clock.now().as_millis().to_string();
    let expires = (clock.now().as_millis() + 60_000).to_string();
    let admitted = server
        .command(&[
            "FCALL",
            "baton_limit_admit",
            "1",
            &lim,
            &now,
            &expires,
            "1",
            &holder,
            "main",
            "job",
            r#"{"tenant":"acme"}"#,
        ])
        .unwrap();
    let RespValue::Array(items) = admitted else {
        panic!("baton_limit_admit answered {admitted:?}");
    };
    let generation = resp_text(&items[0]);
    assert_eq!(items[1], RespValue::Array(vec![RespValue::Integer(1)]));

    backend
        .set_limit(&cap_limit(n, "kinds", "kind", 1))
        .await
        .unwrap();
    let base = format!("{prefix}:{{p:{}}}", id.partition().get());
    let claim = |generation: &str| {
        server
            .command(&[
                "FCALL",
                "baton_limit_claim",
                "1",
                &base,
                &now,
                n,
                "",
                "w",
                &expires,
                generation,
                "0123456789abcdef",
                &uuid,
                "1",
                "1",
                r#"{"tenant":"acme"}"#,
            ])
            .unwrap()
    };
    let RespValue::Array(refused) = claim(&generation) else {
        panic!("baton_limit_claim answered no array");
    };
    assert_eq!(refused.len(), 3, "nothing claimed: {refused:?}");
    assert_eq!(backend.describe(&id).await.unwrap().state, State::Waiting);
    // The claimer gives the slots back; the next claim takes it.
    server
        .command(&[
            "FCALL",
            "baton_limit_release",
            "1",
            &lim,
            "unclaimed",
            &holder,
        ])
        .unwrap();
    let claims = backend
        .claim(claim_request(n, &["main"], "w", 10))
        .await
        .unwrap();
    assert_eq!(claims.iter().map(|c| &c.id).collect::<Vec<_>>(), vec![&id]);
}

/// `FCALL name 1 key args...` on `server`.
fn fcall(server: &RedisServer, name: &str, key: &str, args: &[&str]) -> RespValue {
    let mut command = vec!["FCALL", name, "1", key];
    command.extend_from_slice(args);
    server
        .command(&command)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Replaces `key` with a string, so every function that reads it as a hash,
/// set or list fails (WRONGTYPE): a stand-in for a node that cannot answer.
fn break_key(server: &RedisServer, key: &str) {
    server.command(&["DEL", key]).unwrap();
    server.command(&["SET", key, "broken"]).unwrap();
}

/// A claim whose limited path fails part way answers the claims it made:
/// those of work no limit covers when the admission fails, and those of
/// the partitions whose claims went through when one partition's fails.
/// Only a claim that took nothing answers the error. The slots admitted to
/// the failing partition stay taken (whether it claimed is unknown).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_limited_claim_answers_the_claims_it_made() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, _clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let n = "lfail";
    let lim = format!("{prefix}:{{lim:{n}}}");
    let mut limit = cap_limit(n, "kinds", "kind", 100);
    limit.lane = Some(lane("lim"));
    backend.set_limit(&limit).await.unwrap();
    // Records keep a history, so a claim of one writes its event list.
    backend.set_history(&ns(n), true).await.unwrap();

    // The admission fails: the free lane's claim stands.
    let free = backend.create_one(exec(n, "free")).await.unwrap().id;
    let mut limited = vec![backend.create_one(exec(n, "lim")).await.unwrap().id];
    break_key(server, &format!("{lim}:hold"));
    let both = claim_request(n, &["free", "lim"], "w", 10);
    let claims = backend.claim(both.clone()).await.unwrap();
    assert_eq!(
        claims.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&free]
    );
    assert!(
        backend
            .claim(claim_request(n, &["lim"], "w", 10))
            .await
            .is_err(),
        "a claim that took nothing answers the error"
    );
    server.command(&["DEL", &format!("{lim}:hold")]).unwrap();

    // One partition's claim fails: the others' stand.
    let first = backend
        .create_one(exec(n, "lim").with_priority(10))
        .await
        .unwrap()
        .id;
    for _ in 0..6 {
        limited.push(backend.create_one(exec(n, "lim")).await.unwrap().id);
    }
    let broken = first.partition();
    let elsewhere: BTreeSet<&ExecutionId> = limited
        .iter()
        .filter(|id| id.partition() != broken)
        .collect();
    assert!(!elsewhere.is_empty());
    break_key(
        server,
        &format!(
            "{prefix}:{{p:{}}}:ev:{}",
            broken.get(),
            first.uuid().simple()
        ),
    );
    let claims = backend
        .claim(claim_request(n, &["lim"], "w", 100))
        .await
        .unwrap();
    // The failing partition's claim takes nothing there (its first
    // execution fails it before any write).
    let got: BTreeSet<&ExecutionId> = claims.iter().map(|c| &c.id).collect();
    assert_eq!(got, elsewhere);
    assert_eq!(
        backend.describe(&first).await.unwrap().state,
        State::Waiting
    );
    assert!(
        zscore(
            server,
            &format!("{lim}:hold"),
            &format!("{}:1", first.uuid().simple())
        )
        .is_some(),
        "the slots admitted to the failing partition stay taken"
    );
}

/// An execution whose tags changed between its admission and its claim is
/// not claimed: the admission judged keys it may no longer count under.
/// Its slots go back and the next claim judges its new tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_passes_by_an_execution_retagged_since_its_admission() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let n = "retag";
    let limit = cap_limit(n, "tenants", "tag:tenant", 1);
    backend.set_limit(&limit).await.unwrap();
    let tenant = baton_core::TagKey::new("tenant").unwrap();
    let id = backend
        .create_one(exec(n, "main").with_tag(tenant.clone(), "acme"))
        .await
        .unwrap()
        .id;
    let uuid = id.uuid().simple().to_string();
    let holder = format!("{uuid}:1");
    let lim = format!("{prefix}:{{lim:{n}}}");
    let now = clock.now().as_millis().to_string();
    let expires = (clock.now().as_millis() + 60_000).to_string();
    let judged = r#"{"tenant":"acme"}"#;
    let RespValue::Array(admitted) = fcall(
        server,
        "baton_limit_admit",
        &lim,
        &[&now, &expires, "1", &holder, "main", "job", judged],
    ) else {
        panic!("baton_limit_admit answered no array");
    };
    assert_eq!(admitted[1], RespValue::Array(vec![RespValue::Integer(1)]));
    let generation = resp_text(&admitted[0]);

    backend
        .set_tag(&id, tenant, Some("globex".into()))
        .await
        .unwrap();
    let base = format!("{prefix}:{{p:{}}}", id.partition().get());
    let RespValue::Array(refused) = fcall(
        server,
        "baton_limit_claim",
        &base,
        &[
            &now,
            n,
            "",
            "w",
            &expires,
            &generation,
            "0123456789abcdef",
            &uuid,
            "1",
            "1",
            judged,
        ],
    ) else {
        panic!("baton_limit_claim answered no array");
    };
    assert_eq!(refused.len(), 3, "nothing claimed: {refused:?}");
    assert_eq!(backend.describe(&id).await.unwrap().state, State::Waiting);
    fcall(server, "baton_limit_release", &lim, &["unclaimed", &holder]);
    let claims = backend
        .claim(claim_request(n, &["main"], "w", 10))
        .await
        .unwrap();
    assert_eq!(claims.iter().map(|c| &c.id).collect::<Vec<_>>(), vec![&id]);
    let usage = backend.limit_usage(&limit.name, 10).await.unwrap();
    assert_eq!(
        usage
            .iter()
            .map(|u| (u.key_value.as_str(), u.running))
            .collect::<Vec<_>>(),
        vec![("globex", 1)],
        "counted under its tag of now"
    );
}

/// An admission read before the claim of the same attempt took place (the
/// claim ran and ended since) admits nothing: the holder is already in its
/// key's rate window, and that entry keeps the claim's instant (an
/// admission would move it, and its give-back erase it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_admission_leaves_the_window_entry_of_the_claim_alone() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let n = "stale";
    let mut limit = cap_limit(n, "tenants", "tag:tenant", 5);
    limit.rate = Some(baton_core::Rate {
        count: 10,
        per: Duration::from_secs(60),
    });
    backend.set_limit(&limit).await.unwrap();
    let tags = r#"{"tenant":"acme"}"#;
    let id = backend
        .create_one(exec(n, "main").with_tag(baton_core::TagKey::new("tenant").unwrap(), "acme"))
        .await
        .unwrap()
        .id;
    let claimed_at = clock.now().as_millis();
    let claims = backend
        .claim(claim_request(n, &["main"], "w", 10))
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    backend
        .complete(&claims[0].lease, b"".to_vec())
        .await
        .unwrap();
    let holder = format!("{}:1", id.uuid().simple());
    let lim = format!("{prefix}:{{lim:{n}}}");
    let window = format!("{lim}:q:tenants/acme");
    assert_eq!(zscore(server, &window, &holder), Some(claimed_at));

    clock.advance(Duration::from_secs(1));
    let now = clock.now().as_millis().to_string();
    let lapse = (clock.now().as_millis() + 60_000).to_string();
    let RespValue::Array(admitted) = fcall(
        server,
        "baton_limit_admit",
        &lim,
        &[&now, &lapse, "1", &holder, "main", "job", tags],
    ) else {
        panic!("baton_limit_admit answered no array");
    };
    assert_eq!(admitted[1], RespValue::Array(vec![]), "nothing admitted");
    assert_eq!(zscore(server, &window, &holder), Some(claimed_at));
    assert_eq!(zscore(server, &format!("{lim}:hold"), &holder), None);
    let usage = backend.limit_usage(&limit.name, 10).await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!((usage[0].running, usage[0].window_claims), (0, 1));
}

/// A run set_limit counts is marked with its lease as it is then: a renew
/// between the read that counted it and the mark extended the lease but
/// not the slots (it held none yet), so the mark answers the new expiry
/// and the slots are extended to it (`baton_limit_renew` keeps the later
/// lapse).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mark_of_an_adopted_run_answers_the_lease_a_renew_extended() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let n = "mark";
    let id = backend.create_one(exec(n, "main")).await.unwrap().id;
    let ttl = Duration::from_secs(1);
    let start = clock.now().as_millis();
    let claims = backend
        .claim(claim_request(n, &["main"], "w", 10).with_lease_ttl(ttl))
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    let uuid = id.uuid().simple().to_string();
    let holder = format!("{uuid}:1");
    let base = format!("{prefix}:{{p:{}}}", id.partition().get());
    let lim = format!("{prefix}:{{lim:{n}}}");
    let RespValue::Array(running) = fcall(server, "baton_limit_running", &base, &[n, ""]) else {
        panic!("baton_limit_running answered no array");
    };
    assert_eq!(resp_text(&running[5]), (start + 1_000).to_string());

    clock.advance(Duration::from_millis(500));
    let renewed = backend
        .renew(baton_core::RenewRequest {
            worker_id: WorkerId::new("w").unwrap(),
            lease_ttl: ttl,
            leases: vec![claims[0].lease.clone()],
        })
        .await
        .unwrap();
    assert_eq!(renewed[0].status, baton_core::RenewStatus::Renewed);

    let first_lapse = (start + 1_000 + grace_ms()).to_string();
    fcall(
        server,
        "baton_limit_adopt",
        &lim,
        &["one", &holder, &first_lapse, "main"],
    );
    let mark = fcall(server, "baton_limit_mark", &base, &[&uuid, "1"]);
    let expires = (start + 1_500).to_string();
    assert_eq!(
        mark,
        RespValue::Array(vec![
            RespValue::Array(vec![]),
            RespValue::Array(vec![
                RespValue::Bulk(holder.clone().into_bytes()),
                RespValue::Bulk(expires.into_bytes()),
            ]),
        ])
    );
    let lapse = start + 1_500 + grace_ms();
    fcall(
        server,
        "baton_limit_renew",
        &lim,
        &[&lapse.to_string(), &holder],
    );
    assert_eq!(zscore(server, &format!("{lim}:hold"), &holder), Some(lapse));
    assert_eq!(
        zscore(server, &format!("{lim}:r:one/main"), &holder),
        Some(lapse)
    );
}

/// After a call committed, a failure to apply its limit releases or to
/// extend its slots does not turn it into an error: the renew answers the
/// renewed lease and the complete its snapshot; the release stays recorded
/// in the partition until the promote pass applies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_call_answers_even_when_its_limit_slots_cannot_be_reached() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, _clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let n = "besteffort";
    backend
        .set_limit(&cap_limit(n, "one", "lane", 1))
        .await
        .unwrap();
    backend
        .create_one(exec(n, "main").with_priority(1))
        .await
        .unwrap();
    let second = backend.create_one(exec(n, "main")).await.unwrap().id;
    let request = claim_request(n, &["main"], "w", 10).with_lease_ttl(Duration::from_secs(60));
    let first = backend.claim(request.clone()).await.unwrap();
    assert_eq!(first.len(), 1);
    let holder = format!("{}:1", first[0].id.uuid().simple());
    let hk = format!("{prefix}:{{lim:{n}}}:hk");
    break_key(server, &hk);

    let renewed = backend
        .renew(baton_core::RenewRequest {
            worker_id: WorkerId::new("w").unwrap(),
            lease_ttl: Duration::from_secs(60),
            leases: vec![first[0].lease.clone()],
        })
        .await
        .unwrap();
    assert_eq!(renewed[0].status, baton_core::RenewStatus::Renewed);
    let done = backend
        .complete(&first[0].lease, b"".to_vec())
        .await
        .unwrap();
    assert_eq!(done.state, State::Completed);
    let lrel = format!("{prefix}:{{p:{}}}:lrel", first[0].id.partition().get());
    assert_eq!(
        resp_text(&server.command(&["HGET", &lrel, &holder]).unwrap()),
        format!("{n}/main"),
        "the release waits in its partition"
    );
    assert!(backend.claim(request.clone()).await.unwrap().is_empty());

    server.command(&["DEL", &hk]).unwrap();
    server.command(&["HSET", &hk, &holder, "one/main"]).unwrap();
    backend
        .promote_due(first[0].id.partition(), 100)
        .await
        .unwrap();
    assert_eq!(resp_int(&server.command(&["EXISTS", &lrel]).unwrap()), 0);
    let next = backend.claim(request).await.unwrap();
    assert_eq!(
        next.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&second]
    );
}

/// set_limit puts its limit in force only while the stored definition is
/// still the adopting one it wrote, at the generation that write answered:
/// a limit removed (or rewritten) meanwhile is never brought back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_removed_while_it_adopted_stays_removed() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let _backend = connect(&url_with(server, &prefix, "partitions=4")).await;
    let lim = format!("{prefix}:{{lim:enforce}}");
    let def = format!("{lim}:def");
    let adopting = r#"{"lane":"","key":"lane","max":1,"ad":9999999999999}"#;
    let in_force = r#"{"lane":"","key":"lane","max":1}"#;
    let define = |name: &str, text: &str, forget: &str| {
        resp_int(&fcall(
            server,
            "baton_limit_define",
            &lim,
            &[name, text, forget],
        ))
        .to_string()
    };
    let enforce = |generation: &str| {
        resp_int(&fcall(
            server,
            "baton_limit_enforce",
            &lim,
            &["late", adopting, generation, in_force],
        ))
    };

    let generation = define("late", adopting, "0");
    define("late", "", "1");
    assert_eq!(enforce(&generation), 0);
    assert_eq!(
        server.command(&["HGET", &def, "late"]).unwrap(),
        RespValue::Nil
    );

    let generation = define("late", adopting, "0");
    define("other", in_force, "0");
    assert_eq!(enforce(&generation), 0, "the generation moved on");
    assert_eq!(
        resp_text(&server.command(&["HGET", &def, "late"]).unwrap()),
        adopting
    );

    let generation = define("late", adopting, "0");
    assert_eq!(enforce(&generation), 1);
    assert_eq!(
        resp_text(&server.command(&["HGET", &def, "late"]).unwrap()),
        in_force
    );
}

/// While set_limit still counts what runs, the limit holds its work back,
/// and `explain` says so (`limited`, without a cap of 0 to wait for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_says_limited_while_a_limit_counts_what_runs() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let n = "counting";
    backend
        .set_limit(&cap_limit(n, "one", "lane", 5))
        .await
        .unwrap();
    let id = backend.create_one(exec(n, "main")).await.unwrap().id;
    let until = clock.now().as_millis() + 1_000;
    server
        .command(&[
            "HSET",
            &format!("{prefix}:{{lim:{n}}}:def"),
            "one",
            &format!(r#"{{"lane":"","key":"lane","max":5,"ad":{until}}}"#),
        ])
        .unwrap();
    let request = claim_request(n, &["main"], "w", 10);
    assert!(backend.claim(request.clone()).await.unwrap().is_empty());
    let why = backend.explain(&id).await.unwrap();
    assert_eq!(why.reason, Some("limited"), "{}", why.detail);
    assert!(why.detail.contains("holds"), "{}", why.detail);

    clock.advance(Duration::from_secs(1));
    let why = backend.explain(&id).await.unwrap();
    assert_ne!(why.reason, Some("limited"), "{}", why.detail);
    assert_eq!(backend.claim(request).await.unwrap().len(), 1);
}

/// The value index of a limit names every key value with a runs or window
/// set: a value whose entry passed is dropped only once its sets hold
/// nothing live (here a window lengthened after its claim still holds it),
/// so usage reports it and removing the limit leaves none of its sets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_value_index_names_every_set_a_limit_keeps() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=4")).await;
    let n = "index";
    let tenant = baton_core::TagKey::new("tenant").unwrap();
    let mut limit = cap_limit(n, "tenants", "tag:tenant", 5);
    limit.rate = Some(baton_core::Rate {
        count: 10,
        per: Duration::from_secs(30),
    });
    backend.set_limit(&limit).await.unwrap();
    backend
        .create_one(exec(n, "main").with_tag(tenant.clone(), "acme"))
        .await
        .unwrap();
    let request = claim_request(n, &["main"], "w", 10).with_lease_ttl(Duration::from_secs(1));
    let claims = backend.claim(request.clone()).await.unwrap();
    assert_eq!(claims.len(), 1);
    backend
        .complete(&claims[0].lease, b"".to_vec())
        .await
        .unwrap();

    limit.rate = Some(baton_core::Rate {
        count: 10,
        per: Duration::from_secs(60),
    });
    backend.set_limit(&limit).await.unwrap();
    clock.advance(Duration::from_secs(31));
    backend
        .create_one(exec(n, "main").with_tag(tenant, "globex"))
        .await
        .unwrap();
    assert_eq!(backend.claim(request).await.unwrap().len(), 1);
    let usage = backend.limit_usage(&limit.name, 10).await.unwrap();
    assert_eq!(
        usage
            .iter()
            .map(|u| (u.key_value.as_str(), u.running, u.window_claims))
            .collect::<Vec<_>>(),
        vec![("acme", 0, 1), ("globex", 1, 1)]
    );

    assert!(backend.remove_limit(&limit.name).await.unwrap().is_some());
    let mut sets = keys_with(server, &prefix, "{lim:");
    sets.retain(|k| [":r:", ":q:", ":v:"].iter().any(|part| k.contains(part)));
    assert!(sets.is_empty(), "{sets:?}");
}

// ------------------------------------------------------------- routing

fn session(name: &str) -> baton_core::SessionName {
    baton_core::SessionName::new(name).unwrap()
}

fn resp_opt_text(v: &RespValue) -> Option<String> {
    match v {
        RespValue::Nil => None,
        other => Some(resp_text(other)),
    }
}

/// A session's work is created in its partition, where the claim that
/// takes it writes the lock (`ses`, `sesx`: worker, expiry, idle); a renew
/// extends it, a claim by another worker passes the work over, the reclaim
/// of the holder's run releases it, and the reclaim pass sweeps a lapsed
/// one. Versions filter claims, and both travel with claims and snapshots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_locks_live_beside_their_work() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "partitions=8")).await;
    let t0 = clock.now();
    let count = PartitionCount::new(8).unwrap();
    let chat = session("chat/1");
    let p = baton_core::raw::rules::session_partition(&ns("rt"), &chat, count);
    let version: baton_core::Version = "2.1".parse().unwrap();
    let made = backend
        .create(
            (0..3)
                .map(|_| {
                    exec("rt", "l")
                        .with_session(chat.clone())
                        .with_version(version.clone())
                })
                .collect(),
        )
        .await
        .unwrap();
    for o in &made {
        assert_eq!(
            o.id.partition(),
            p,
            "a session's work lives in its partition"
        );
        let snap = backend.describe(&o.id).await.unwrap();
        assert_eq!(snap.session.as_ref(), Some(&chat));
        assert_eq!(snap.version.as_ref().map(|v| v.as_str()), Some("2.1"));
    }
    let base = format!("{prefix}:{{p:{}}}", p.get());
    let field = "rt/chat/1";
    let lock = || {
        resp_opt_text(
            &server
                .command(&["HGET", &format!("{base}:ses"), field])
                .unwrap(),
        )
    };
    let indexed = || {
        resp_opt_text(
            &server
                .command(&["ZSCORE", &format!("{base}:sesx"), field])
                .unwrap(),
        )
    };

    // A worker of other versions takes nothing.
    let v3 = baton_core::VersionRange::between(Some("3".parse().unwrap()), None);
    let other = claim_request("rt", &["l"], "c", 10).with_versions(v3);
    assert!(backend.claim(other).await.unwrap().is_empty());
    assert_eq!(lock(), None, "a claim that took nothing holds no session");

    // Worker a takes two: the lock is its own for the idle time (longer
    // than the lease).
    let take = |worker: &str, max: usize| {
        claim_request("rt", &["l"], worker, max)
            .with_versions(baton_core::VersionRange::between(
                Some("2".parse().unwrap()),
                Some("2.999".parse().unwrap()),
            ))
            .with_session_idle(Duration::from_secs(60))
    };
    let a = backend.claim(take("a", 2)).await.unwrap();
    assert_eq!(a.len(), 2);
    for c in &a {
        assert_eq!(c.session.as_ref(), Some(&chat));
        assert_eq!(c.version.as_ref(), Some(&version));
    }
    let until = t0.as_millis() + 60_000;
    assert_eq!(lock(), Some(format!("a|{until}|60000")));
    assert_eq!(indexed(), Some(until.to_string()));

    // Another worker passes the session's work over; its holder takes it.
    assert!(backend.claim(take("b", 10)).await.unwrap().is_empty());
    let more = backend.claim(take("a", 10)).await.unwrap();
    assert_eq!(more.len(), 1);

    // A renew 20 s on extends the lock to 60 s past it.
    clock.advance(Duration::from_secs(20));
    let renewed = backend
        .renew(baton_core::RenewRequest {
            worker_id: WorkerId::new("a").unwrap(),
            lease_ttl: Duration::from_secs(30),
            leases: a.iter().chain(&more).map(|c| c.lease.clone()).collect(),
        })
        .await
        .unwrap();
    assert!(
        renewed
            .iter()
            .all(|r| r.status == baton_core::RenewStatus::Renewed),
        "{renewed:?}"
    );
    let until = t0.as_millis() + 80_000;
    assert_eq!(lock(), Some(format!("a|{until}|60000")));
    assert_eq!(indexed(), Some(until.to_string()));

    // a's leases lapse: the reclaim of its runs releases the session, and
    // b takes it over.
    clock.advance(Duration::from_secs(31));
    backend.reclaim_expired_leases(p, 100).await.unwrap();
    assert_eq!(
        lock(),
        None,
        "a reclaimed run releases its worker's session"
    );
    assert_eq!(indexed(), None);
    // Their retries are due after the backoff.
    clock.advance(Duration::from_secs(2));
    backend.promote_due(p, 100).await.unwrap();
    let b = backend.claim(take("b", 10)).await.unwrap();
    assert_eq!(b.len(), 3, "the session's work went back to waiting");
    let now = clock.now().as_millis();
    assert_eq!(lock(), Some(format!("b|{}|60000", now + 60_000)));

    // b finishes; its lock lapses and the next reclaim pass sweeps it.
    for c in &b {
        backend.complete(&c.lease, Vec::new()).await.unwrap();
    }
    assert!(
        lock().is_some(),
        "a finished run keeps its session for the idle time"
    );
    clock.advance(Duration::from_secs(61));
    backend.reclaim_expired_leases(p, 100).await.unwrap();
    assert_eq!(lock(), None, "the pass drops lapsed locks");
    assert_eq!(indexed(), None);
}

/// An idempotency key dedupes within its session: the same key in two
/// sessions and without one names three executions, and the field of a
/// key without a session is the one it always was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_are_scoped_by_session() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let backend = connect(&url_with(server, &prefix, "partitions=4")).await;
    let key = IdempotencyKey::new("order 7/charge").unwrap();
    let with = |s: Option<&str>| {
        let e = exec("ik", "l").with_idempotency_key(key.clone());
        match s {
            Some(s) => e.with_session(session(s)),
            None => e,
        }
    };
    let first = backend
        .create(vec![
            with(None),
            with(Some("s1")),
            with(Some("s2")),
            with(Some("s1")),
        ])
        .await
        .unwrap();
    assert!(first[0].created && first[1].created && first[2].created);
    assert!(!first[3].created);
    assert_eq!(first[3].id, first[1].id);
    let ids: BTreeSet<_> = first.iter().map(|o| o.id.clone()).collect();
    assert_eq!(ids.len(), 3);
    let again = backend
        .create(vec![with(None), with(Some("s2"))])
        .await
        .unwrap();
    assert_eq!(
        (again[0].id.clone(), again[0].created),
        (first[0].id.clone(), false)
    );
    assert_eq!(
        (again[1].id.clone(), again[1].created),
        (first[2].id.clone(), false)
    );
    let field = |id: &ExecutionId, f: &str| {
        let idem = format!("{prefix}:{{p:{}}}:idem", id.partition().get());
        resp_opt_text(&server.command(&["HGET", &idem, f]).unwrap())
    };
    assert_eq!(
        field(&first[0].id, "ik/l/order 7/charge"),
        Some(first[0].id.uuid().simple().to_string())
    );
    assert_eq!(
        field(&first[1].id, "ik/l s1 order 7/charge"),
        Some(first[1].id.uuid().simple().to_string())
    );
}

/// Workers claiming at once over 30 sessions of 4 executions each never
/// split a session: every session's work goes to one worker.
async fn sessions_are_never_split(server: &RedisServer) {
    let prefix = RedisServer::unique_prefix();
    let backend = connect(&url_with(server, &prefix, "partitions=8")).await;
    let mut work = Vec::new();
    for round in 0..4 {
        for s in 0..30 {
            work.push(
                exec("split", "l")
                    .with_session(session(&format!("s{s}")))
                    .with_priority(round),
            );
        }
    }
    backend.create(work).await.unwrap();
    let workers = (0..6).map(|w| {
        let backend = backend.clone();
        tokio::spawn(async move {
            let mut got: Vec<(String, String)> = Vec::new();
            let worker = format!("w{w}");
            let mut empty = 0;
            while empty < 3 {
                let claims = backend
                    .claim(
                        claim_request("split", &["l"], &worker, 3)
                            .with_session_idle(Duration::from_secs(600)),
                    )
                    .await
                    .unwrap();
                if claims.is_empty() {
                    empty += 1;
                    tokio::task::yield_now().await;
                }
                for c in claims {
                    got.push((c.session.unwrap().to_string(), worker.clone()));
                }
            }
            got
        })
    });
    let mut by_session: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut total = 0;
    for w in workers {
        for (s, worker) in w.await.unwrap() {
            by_session.entry(s).or_default().insert(worker);
            total += 1;
        }
    }
    assert_eq!(total, 120, "every execution was claimed once");
    assert_eq!(by_session.len(), 30);
    for (s, holders) in by_session {
        assert_eq!(holders.len(), 1, "session {s} went to {holders:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_never_split_between_concurrent_workers() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    sessions_are_never_split(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_never_split_between_concurrent_workers_on_a_cluster() {
    let Some(server) = servers::valkey_cluster().await else {
        return;
    };
    sessions_are_never_split(server).await;
}

/// The registry keeps each worker's version range, and `explain` names the
/// worker holding a waiting execution's session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_keep_their_versions_and_explain_names_the_session_owner() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let backend = connect(&url_with(server, &prefix, "partitions=4")).await;
    let s = session("room-9");
    let made = backend
        .create(vec![
            exec("ex", "l").with_session(s.clone()),
            exec("ex", "l").with_session(s.clone()),
        ])
        .await
        .unwrap();
    let range = baton_core::VersionRange::between(Some("1.2".parse().unwrap()), None);
    let got = backend
        .claim(claim_request("ex", &["l"], "owner", 1).with_versions(range.clone()))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let workers = backend.workers(&ns("ex"), 10).await.unwrap();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].versions, range);
    let waiting = made.iter().find(|o| o.id != got[0].id).unwrap();
    let why = backend.explain(&waiting.id).await.unwrap();
    assert_eq!(why.reason, Some("session_owned_by"), "{}", why.detail);
    assert!(why.detail.contains("owner"), "{}", why.detail);
}

/// The limited path honours sessions and versions as the plain claim
/// does: it passes over work of another worker's session and of versions
/// outside the claim's range, and takes the lock when it claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limited_path_honours_sessions_and_versions() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let backend = connect(&url_with(server, &prefix, "partitions=4")).await;
    let n = "lroute";
    backend
        .set_limit(&cap_limit(n, "kinds", "kind", 10))
        .await
        .unwrap();
    let s = session("desk-3");
    let made = backend
        .create(vec![
            exec(n, "l").with_session(s.clone()),
            exec(n, "l").with_session(s.clone()),
            exec(n, "l").with_version("5".parse().unwrap()),
        ])
        .await
        .unwrap();
    let upto4 = baton_core::VersionRange::between(None, Some("4".parse().unwrap()));
    let a = backend
        .claim(claim_request(n, &["l"], "a", 1).with_versions(upto4.clone()))
        .await
        .unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].session.as_ref(), Some(&s));
    let b = backend
        .claim(claim_request(n, &["l"], "b", 10).with_versions(upto4))
        .await
        .unwrap();
    assert!(
        b.is_empty(),
        "b took {:?}",
        b.iter().map(|c| &c.id).collect::<Vec<_>>()
    );
    let a_more = backend
        .claim(claim_request(n, &["l"], "a", 10))
        .await
        .unwrap();
    let got: BTreeSet<_> = a.iter().chain(&a_more).map(|c| c.id.clone()).collect();
    let all: BTreeSet<_> = made.iter().map(|o| o.id.clone()).collect();
    assert_eq!(got, all);
}

/// A revoke that releases a session wakes claimers parked on its lane,
/// although the lane was not empty (it held the session's work they could
/// not take): the parked wait ends long before its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_session_wakes_parked_claimers() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let backend = connect(&url_with(server, &prefix, "partitions=4")).await;
    let held = session("held");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let e = exec("wr", "l").with_session(held.clone());
        ids.push(backend.create_one(e).await.unwrap().id);
    }
    let a = ClaimRequest::new(ns("wr"), lane("l"), WorkerId::new("a").unwrap(), 1);
    let taken = backend.claim(a).await.unwrap();
    assert_eq!(taken.len(), 1);
    let b = ClaimRequest::new(ns("wr"), lane("l"), WorkerId::new("b").unwrap(), 10);
    assert!(
        backend.claim(b.clone()).await.unwrap().is_empty(),
        "a holds it"
    );
    let started = Instant::now();
    let waiter = {
        let backend = backend.clone();
        tokio::spawn(async move {
            backend
                .wait_for_work(&ns("wr"), &[lane("l")], Duration::from_secs(30))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    backend.revoke(&taken[0].id).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("the release woke the parked claimer before its 30 s timeout")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    let claimed = backend.claim(b).await.unwrap();
    assert!(
        claimed.iter().any(|c| c.id == ids[1]),
        "b takes the session: {claimed:?}"
    );
}

// ------------------------------------------------------------ fair limits

/// A fair limit (no cap, no rate) of namespace `n` by `key`, over `lane_name`
/// or every lane.
fn fair_limit(n: &str, name: &str, lane_name: Option<&str>, key: &str) -> baton_core::Limit {
    baton_core::Limit {
        name: baton_core::LimitName::new(name).unwrap(),
        namespace: ns(n),
        lane: lane_name.map(lane),
        key: key.parse().unwrap(),
        max_running: None,
        rate: None,
        fair: true,
    }
}

fn tenant() -> baton_core::TagKey {
    baton_core::TagKey::new("tenant").unwrap()
}

/// The per-key sets of fair turns under `prefix` (standalone servers only):
/// `<ns>/<lane>/<key>` -> how many members all partitions' sets hold.
fn fair_sets(server: &RedisServer, prefix: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for key in keys_with(server, prefix, ":fk:") {
        let name = key.split_once(":fk:").unwrap().1.to_owned();
        *out.entry(name).or_default() += resp_int(&server.command(&["ZCARD", &key]).unwrap());
    }
    out
}

/// The partition `p`'s copy of the limits of namespace `n`, field -> value.
fn limit_copy(server: &RedisServer, prefix: &str, p: u16, n: &str) -> BTreeMap<String, String> {
    let key = format!("{prefix}:{{p:{p}}}:lim:{n}");
    let flat = resp_texts(&server.command(&["HGETALL", &key]).unwrap());
    flat.chunks(2)
        .map(|kv| (kv[0].clone(), kv[1].clone()))
        .collect()
}

/// A fair-only limit marks no lane limited in the partitions' copies (its
/// work keeps the plain claim path) but names its key spec there; only the
/// lanes it orders get per-key sets, one per key (untagged work under
/// `""`), holding exactly the waiting work: a priority edit replaces its
/// member, a cancel and a claim take it out, a retry puts it back, and
/// once the work is claimed no set is left. Removing the limit drops the
/// copies, and later work gets no set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fair_turns_keep_per_key_sets_only_for_fair_lanes() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let backend = connect(&url_with(server, &prefix, "partitions=4")).await;
    let n = "fk";
    let fair = fair_limit(n, "fk-turns", Some("fair"), "tag:tenant");
    let mut capped = cap_limit(n, "fk-capped", "kind", 5);
    capped.lane = Some(lane("capped"));
    backend.set_limit(&fair).await.unwrap();
    backend.set_limit(&capped).await.unwrap();
    assert_eq!(
        backend.limits(Some(&ns(n))).await.unwrap(),
        vec![capped.clone(), fair.clone()],
        "both kept as given, fair included"
    );
    for p in 0..4 {
        let copy = limit_copy(server, &prefix, p, n);
        let fields: BTreeSet<&str> = copy.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            BTreeSet::from(["#", "capped", "f:fair"]),
            "partition {p}: only the capped lane is limited: {copy:?}"
        );
        assert_eq!(copy["f:fair"], "tag:tenant");
    }
    let mut ids = BTreeMap::<&str, Vec<ExecutionId>>::new();
    for (t, count) in [("a", 3), ("b", 2), ("", 1)] {
        for _ in 0..count {
            let mut new = exec(n, "fair").with_retry(baton_core::RetryPolicy::attempts(3));
            if !t.is_empty() {
                new = new.with_tag(tenant(), t);
            }
            ids.entry(t)
                .or_default()
                .push(backend.create_one(new).await.unwrap().id);
        }
    }
    for lane_name in ["plain", "plain", "capped"] {
        backend
            .create_one(exec(n, lane_name).with_tag(tenant(), "a"))
            .await
            .unwrap();
    }
    let expect = |a: i64, b: i64, none: i64| -> BTreeMap<String, i64> {
        [("fk/fair/a", a), ("fk/fair/b", b), ("fk/fair/", none)]
            .into_iter()
            .filter(|(_, c)| *c > 0)
            .map(|(k, c)| (k.to_owned(), c))
            .collect()
    };
    assert_eq!(fair_sets(server, &prefix), expect(3, 2, 1));
    backend.set_priority(&ids["a"][1], 7).await.unwrap();
    assert_eq!(
        fair_sets(server, &prefix),
        expect(3, 2, 1),
        "a priority edit replaces its member"
    );
    backend
        .cancel(&ids["b"][0], CancelRequest::default())
        .await
        .unwrap();
    assert_eq!(fair_sets(server, &prefix), expect(3, 1, 1), "a cancel");
    let claimed = backend
        .claim(claim_request(n, &["fair"], "w", 1))
        .await
        .unwrap();
    assert_eq!(claimed[0].id, ids["a"][1], "the raised priority first");
    assert_eq!(fair_sets(server, &prefix), expect(2, 1, 1), "a claim");
    let snap = backend
        .fail(
            &claimed[0].lease,
            Failure::retry_after("again", Duration::ZERO),
        )
        .await
        .unwrap();
    assert_eq!(snap.state, State::Waiting);
    assert_eq!(fair_sets(server, &prefix), expect(3, 1, 1), "a retry");
    let rest = claim_up_to(&backend, n, &["fair"], "w", usize::MAX).await;
    assert_eq!(rest.len(), 5);
    assert_eq!(
        fair_sets(server, &prefix),
        BTreeMap::new(),
        "no set outlives the waiting work"
    );
    backend.remove_limit(&fair.name).await.unwrap();
    backend.remove_limit(&capped.name).await.unwrap();
    for p in 0..4 {
        assert_eq!(limit_copy(server, &prefix, p, n), BTreeMap::new());
    }
    backend
        .create_one(exec(n, "fair").with_tag(tenant(), "a"))
        .await
        .unwrap();
    assert_eq!(fair_sets(server, &prefix), BTreeMap::new());
}

/// A fair limit with a cap marks every lane limited in the partitions'
/// copies (its work takes the limited path) besides naming its key spec,
/// and the limited path's claims take work out of the per-key sets as the
/// plain path's do: each round of claims takes one of each kind with room
/// (the cap holds one run per kind), and the sets end empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_fair_limit_claims_through_the_limited_path() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    let prefix = RedisServer::unique_prefix();
    let backend = connect(&url_with(server, &prefix, "partitions=2")).await;
    let n = "cf";
    let limit = baton_core::Limit {
        max_running: Some(1),
        ..fair_limit(n, "cf-kinds", None, "kind")
    };
    backend.set_limit(&limit).await.unwrap();
    for p in 0..2 {
        let copy = limit_copy(server, &prefix, p, n);
        let fields: BTreeSet<&str> = copy.keys().map(String::as_str).collect();
        assert_eq!(fields, BTreeSet::from(["#", "", "f:"]), "{copy:?}");
        assert_eq!(copy["f:"], "kind");
    }
    for (kind, count) in [("x", 3), ("y", 2)] {
        for _ in 0..count {
            let new = NewExecution::new(ns(n), lane("l"), Kind::new(kind).unwrap(), b"{}".to_vec());
            backend.create_one(new).await.unwrap();
        }
    }
    let sets = |x: i64, y: i64| -> BTreeMap<String, i64> {
        [("cf/l/x", x), ("cf/l/y", y)]
            .into_iter()
            .filter(|(_, c)| *c > 0)
            .map(|(k, c)| (k.to_owned(), c))
            .collect()
    };
    assert_eq!(fair_sets(server, &prefix), sets(3, 2));
    for (x, y) in [(2, 1), (1, 0), (0, 0)] {
        let claims = backend
            .claim(claim_request(n, &["l"], "w", 10))
            .await
            .unwrap();
        let kinds: BTreeSet<&str> = claims.iter().map(|c| c.kind.as_str()).collect();
        let expected: BTreeSet<&str> = if y > 0 || x == 1 {
            BTreeSet::from(["x", "y"])
        } else {
            BTreeSet::from(["x"])
        };
        assert_eq!(kinds, expected, "one per kind with work");
        assert_eq!(claims.len(), expected.len());
        assert_eq!(fair_sets(server, &prefix), sets(x, y));
        for c in &claims {
            backend.complete(&c.lease, b"ok".to_vec()).await.unwrap();
        }
    }
}

/// One tenant submits a hundred times more than each of nine others, at
/// the default sixteen partitions: 1,600 executions in sixteen calls of a
/// hundred (each call's work lands in one partition, the next in the
/// instance's rotation), then, a millisecond later, sixteen per small
/// tenant, one per call with the tenants in turn (so the rotation spreads
/// each small tenant's work over the partitions). Answers the tenants of
/// the first `n` claims (ten per claim) and the most work one small tenant
/// has in one partition.
async fn one_big_tenant_and_nine_small(
    server: &RedisServer,
    fair: bool,
    n: usize,
) -> (Vec<String>, usize) {
    let prefix = RedisServer::unique_prefix();
    let (backend, clock) = connect_with_clock(&url_with(server, &prefix, "")).await;
    let namespace = "shares";
    if fair {
        let limit = fair_limit(namespace, "shares-tenants", None, "tag:tenant");
        backend.set_limit(&limit).await.unwrap();
    }
    for _ in 0..16 {
        let batch = (0..100)
            .map(|_| exec(namespace, "l").with_tag(tenant(), "big"))
            .collect();
        backend.create(batch).await.unwrap();
    }
    clock.advance(Duration::from_millis(1));
    // Each small tenant submits its sixteen in one call: in a fair lane a
    // call's work is dealt over the partitions, so it spreads like the big
    // tenant's instead of sitting in one partition.
    let mut placed: BTreeMap<(String, u16), usize> = BTreeMap::new();
    for s in 0..9 {
        let t = format!("small{s}");
        let batch = (0..16)
            .map(|_| exec(namespace, "l").with_tag(tenant(), &t))
            .collect();
        for outcome in backend.create(batch).await.unwrap() {
            *placed
                .entry((t.clone(), outcome.id.partition().get()))
                .or_default() += 1;
        }
    }
    let most = placed.values().copied().max().unwrap();
    let mut order = Vec::new();
    while order.len() < n {
        let claims = backend
            .claim(claim_request(namespace, &["l"], "w", 10))
            .await
            .unwrap();
        assert!(!claims.is_empty(), "work left after {} claims", order.len());
        order.extend(claims.iter().map(|c| c.tags[&tenant()].clone()));
    }
    (order, most)
}

/// Fairness across partitions: turns are given per partition and claims
/// merge the partitions in turn order, so while every tenant has work the
/// big tenant is served about as often as each small one — at most once
/// per partition per turn a small tenant holds there — instead of its
/// whole backlog first (which is what the same submissions get without
/// the fair limit).
async fn fair_shares_across_partitions(server: &RedisServer, control: bool) {
    let total = 1_600 + 9 * 16;
    let (order, most) = one_big_tenant_and_nine_small(server, true, total).await;
    let last_small = order.iter().rposition(|t| t != "big").unwrap();
    let window = &order[..=last_small];
    let big = window.iter().filter(|t| *t == "big").count();
    assert!(
        big <= 16 * most,
        "the big tenant had {big} claims while the small ones had work \
         (at most {most} of a small tenant's in one partition)"
    );
    // Each small tenant had its 16 claims in the window: the big one's
    // share is at most `most` times theirs.
    assert_eq!(
        most, 1,
        "each small tenant's call was dealt over the partitions"
    );
    if control {
        let (order, _) = one_big_tenant_and_nine_small(server, false, 160).await;
        assert!(
            order.iter().all(|t| t == "big"),
            "without the limit the backlog comes first: {order:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fair_limit_shares_claims_across_partitions() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    fair_shares_across_partitions(server, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fair_limit_shares_claims_across_partitions_on_a_cluster() {
    let Some(server) = servers::valkey_cluster().await else {
        return;
    };
    fair_shares_across_partitions(server, false).await;
}
