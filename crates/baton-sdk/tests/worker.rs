//! The client and worker runtime on every available transport: SQLite opened
//! in the test process, and the HTTP API of a real server (on the same kind
//! of SQLite file) over loopback. Each test uses its own namespace and
//! database; no assertion depends on timing, only on bounded waits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use baton_core::{
    AdminBackend, Backoff, CancelRequest, CancelScope, ChildKey, EngineBackend, EngineError,
    ExecutionId, LeaseToken, ListFilter, Page, RetryPolicy, State,
};
use baton_engine::{Scheduler, SchedulerConfig};
use baton_sdk::{Client, Context, HandlerError, StopReason, Worker, decode_result};
use serde_json::{Value, json};

/// Upper bound of every wait: generous, never an assertion about speed.
const BOUND: Duration = Duration::from_secs(60);

struct Env {
    client: Client,
    engine: Option<Scheduler>,
    stop_server: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn sqlite() -> Env {
        Self::start(false).await
    }

    async fn http() -> Env {
        Self::start(true).await
    }

    async fn start(http: bool) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("baton.db").display());
        let backend: Arc<dyn AdminBackend> =
            Arc::new(baton_sqlite::SqliteBackend::connect(&url).await.unwrap());
        // A quick sweep, so a lease that was not renewed is reclaimed soon.
        let engine_backend: Arc<dyn EngineBackend> = backend.clone();
        let engine = Scheduler::start(
            engine_backend,
            SchedulerConfig::default().with_sweep(Duration::from_millis(50)),
        );
        let namespace = format!("t{:x}", LeaseToken::random_nonce());
        let (client, stop_server) = if http {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let state = baton_server::AppState::new(backend, baton_server::ServerConfig::default());
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(baton_server::serve(listener, state, async move {
                let _ = rx.await;
            }));
            let client = Client::connect(&format!("http://{addr}")).await.unwrap();
            (client, Some(tx))
        } else {
            (Client::from_backend(backend).unwrap(), None)
        };
        Env {
            client: client.with_namespace(&namespace).unwrap(),
            engine: Some(engine),
            stop_server,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop_server.take() {
            let _ = tx.send(());
        }
        if let Some(e) = self.engine.take() {
            e.shutdown().await;
        }
    }
}

async fn done(client: &Client, id: &ExecutionId) -> baton_core::ExecutionSnapshot {
    let snap = client.wait_for_completion(id, BOUND).await.unwrap();
    assert!(snap.state.is_terminal(), "{} still {}", snap.id, snap.state);
    snap
}

async fn wait_until(
    client: &Client,
    id: &ExecutionId,
    what: impl Fn(&baton_core::ExecutionSnapshot) -> bool,
) -> baton_core::ExecutionSnapshot {
    let until = tokio::time::Instant::now() + BOUND;
    loop {
        let snap = client.describe(id).await.unwrap();
        if what(&snap) {
            return snap;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "condition never met: {snap:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn quick_retries(n: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts: n,
        backoff: Backoff::NONE,
    }
}

async fn client_calls(env: Env) {
    let c = &env.client;
    assert!(!c.history_enabled().await.unwrap(), "off by default");
    assert!(!c.set_history(true).await.unwrap());
    assert!(c.history_enabled().await.unwrap());
    let day = Duration::from_secs(86_400);
    let mail = baton_core::Lane::new("mail").unwrap();
    assert_eq!(c.set_retention(None, 30 * day).await.unwrap(), None);
    assert_eq!(c.set_retention(Some(&mail), day).await.unwrap(), None);
    assert_eq!(
        c.set_retention(None, 7 * day).await.unwrap(),
        Some(30 * day),
        "a replaced rule answers the keep it had"
    );
    let ours: Vec<_> = c
        .retention_rules()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| &r.namespace == c.namespace())
        .map(|r| (r.lane.map(|l| l.to_string()), r.keep))
        .collect();
    assert_eq!(ours, vec![(None, 7 * day), (Some("mail".into()), day)]);
    assert!(c.set_retention(None, Duration::ZERO).await.is_err());
    assert_eq!(c.remove_retention(Some(&mail)).await.unwrap(), Some(day));
    assert_eq!(c.remove_retention(Some(&mail)).await.unwrap(), None);
    assert_eq!(c.remove_retention(None).await.unwrap(), Some(7 * day));
    let limit = baton_core::Limit {
        name: format!("{}-cap", c.namespace()).parse().unwrap(),
        namespace: c.namespace().clone(),
        lane: Some(mail.clone()),
        key: baton_core::LimitKey::Kind,
        max_running: Some(3),
        rate: None,
        fair: true,
    };
    assert_eq!(c.set_limit(&limit).await.unwrap(), None);
    assert_eq!(c.set_limit(&limit).await.unwrap(), Some(limit.clone()));
    assert_eq!(
        c.limits(Some(c.namespace())).await.unwrap(),
        vec![limit.clone()]
    );
    assert_eq!(c.limit_usage(&limit.name, 10).await.unwrap(), vec![]);
    let bad = baton_core::Limit {
        max_running: None,
        fair: false,
        ..limit.clone()
    };
    assert!(c.set_limit(&bad).await.is_err());
    assert_eq!(
        c.remove_limit(&limit.name).await.unwrap(),
        Some(limit.clone())
    );
    assert_eq!(c.remove_limit(&limit.name).await.unwrap(), None);
    assert!(
        c.limit_usage(&limit.name, 10).await.is_err(),
        "unknown limit"
    );
    let batch = (0..3)
        .map(|i| c.execution("echo", &json!({"n": i})))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let out = c.submit_batch(batch).await.unwrap();
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|o| o.created && o.state == State::Waiting));
    let snap = c.describe(&out[1].id).await.unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&snap.payload).unwrap(),
        json!({"n": 1})
    );
    let page = c
        .list(
            &ListFilter::namespace(c.namespace().clone()).with_state(State::Waiting),
            Page::first(2),
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    assert!(page.next_cursor.is_some());
    let stats = c.stats().await.unwrap();
    assert_eq!(stats.get(c.lane()).unwrap().waiting, 3);
    let cancelled = c
        .cancel(&out[0].id, Some("changed my mind".into()))
        .await
        .unwrap();
    assert_eq!(cancelled.state, State::Cancelled);
    // Several states and a time range reach the backend over either
    // transport.
    let filter = ListFilter::namespace(c.namespace().clone())
        .with_states([State::Cancelled, State::Failed])
        .with_created(
            Some(snap.created_at.saturating_sub(Duration::from_secs(1))),
            None,
        );
    let page = c.list(&filter, Page::first(10)).await.unwrap();
    let ids: Vec<ExecutionId> = page.items.iter().map(|s| s.id.clone()).collect();
    assert_eq!(ids, vec![out[0].id.clone()]);
    let many = c
        .describe_many(&[out[2].id.clone(), out[0].id.clone()])
        .await
        .unwrap();
    assert_eq!(
        many[0].as_ref().map(|s| s.id.clone()),
        Some(out[2].id.clone())
    );
    assert_eq!(many[1].as_ref().map(|s| s.state), Some(State::Cancelled));
    let missing = ExecutionId::generate(baton_core::PartitionCount::DEFAULT);
    assert!(matches!(
        c.describe(&missing).await,
        Err(EngineError::NotFound { .. })
    ));

    let worker = Worker::builder(c)
        .handler(
            "echo",
            |_ctx, v: Value| async move { Ok::<_, HandlerError>(v) },
        )
        .start()
        .unwrap();
    let snap = done(c, &out[2].id).await;
    assert_eq!(snap.state, State::Completed);
    assert_eq!(
        decode_result::<Value>(&snap).unwrap(),
        Some(json!({"n": 2}))
    );
    let e = c.cancel(&out[2].id, None).await.unwrap_err();
    assert!(
        matches!(
            e,
            EngineError::Conflict {
                state: State::Completed,
                ..
            }
        ),
        "{e}"
    );
    worker.shutdown(BOUND).await;
    let history = c.events(&out[0].id, 0, 10).await.unwrap();
    let names: Vec<_> = history.iter().map(|e| e.event).collect();
    assert_eq!(
        names,
        [
            baton_core::EventKind::Created,
            baton_core::EventKind::Cancelled
        ]
    );
    assert_eq!(history[1].detail.as_deref(), Some("changed my mind"));
    // Delete one finished execution, then by filter the rest (a dry run
    // first), over either transport.
    let report = c.delete(&out[2].id, false).await.unwrap();
    assert_eq!((report.id.clone(), report.deleted), (out[2].id.clone(), 1));
    assert!(matches!(
        c.describe(&out[2].id).await,
        Err(EngineError::NotFound { .. })
    ));
    let all = ListFilter::namespace(c.namespace().clone());
    let request = |dry_run: bool| baton_core::BulkRequest {
        action: baton_core::BulkAction::Delete { force: false },
        filter: all.clone(),
        ids: Vec::new(),
        limit: 100,
        dry_run,
        cursor: None,
        actor: None,
    };
    let preview = c.bulk(request(true)).await.unwrap();
    assert_eq!((preview.matched, preview.changed), (2, 2), "{preview:?}");
    let gone = c.bulk(request(false)).await.unwrap();
    assert_eq!((gone.matched, gone.changed), (2, 2), "{gone:?}");
    assert!(
        c.list(&all, Page::first(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    env.stop().await;
}

async fn concurrency_limit(env: Env) {
    let c = &env.client;
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let worker = Worker::builder(c)
        .concurrency(3)
        .handler("slow", move |_ctx, n: u32| {
            let (r, p) = (r.clone(), p.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, HandlerError>(n)
            }
        })
        .start()
        .unwrap();
    let batch = (0..12u32)
        .map(|i| c.execution("slow", &i))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let out = c.submit_batch(batch).await.unwrap();
    for (i, o) in out.iter().enumerate() {
        let snap = done(c, &o.id).await;
        assert_eq!(decode_result::<usize>(&snap).unwrap(), Some(i));
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!((1..=3).contains(&peak), "peak concurrency {peak}");
    let stats = worker.shutdown(BOUND).await;
    assert_eq!(stats.completed, 12);
    env.stop().await;
}

async fn heartbeat_keeps_the_lease(env: Env) {
    let c = &env.client;
    // A lease long enough that a busy machine (the whole suite runs in
    // parallel on two cores) cannot delay a heartbeat past it by accident.
    let worker = Worker::builder(c)
        .lease(Duration::from_secs(1))
        .handler("long", |ctx: Context, _: Value| async move {
            // About three leases long; a lost lease would fire the token.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(3_200)) => Ok("done"),
                r = ctx.stopped() => Err(HandlerError::permanent(format!("stopped: {r}"))),
            }
        })
        .start()
        .unwrap();
    let id = c.submit("long", &Value::Null).await.unwrap().id;
    let snap = done(c, &id).await;
    assert_eq!(snap.state, State::Completed, "{:?}", snap.last_error);
    assert_eq!(snap.attempts, 1);
    let stats = worker.shutdown(BOUND).await;
    assert_eq!((stats.completed, stats.abandoned), (1, 0));
    env.stop().await;
}

async fn cancel_reaches_the_handler(env: Env) {
    let c = &env.client;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // Long enough that a delayed heartbeat on a busy machine cannot lose
    // the lease (a lost lease would stop the handler for another reason);
    // the heartbeat every third of it still carries the cancel soon.
    let worker = Worker::builder(c)
        .lease(Duration::from_secs(1))
        .handler("wait", move |ctx: Context, _: Value| {
            let tx = tx.clone();
            async move {
                let reason = ctx.stopped().await;
                let _ = tx.send(reason);
                Err::<(), _>(HandlerError::retry("stopped"))
            }
        })
        .start()
        .unwrap();
    let id = c.submit("wait", &Value::Null).await.unwrap().id;
    wait_until(c, &id, |s| s.state == State::Running).await;
    c.cancel(&id, Some("stop it".into())).await.unwrap();
    let reason = tokio::time::timeout(BOUND, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reason, StopReason::Cancelled);
    let snap = c.describe(&id).await.unwrap();
    assert_eq!(
        (snap.state, snap.cancel_reason.as_deref()),
        (State::Cancelled, Some("stop it"))
    );
    let stats = worker.shutdown(BOUND).await;
    assert_eq!((stats.completed, stats.failed, stats.abandoned), (0, 0, 1));
    env.stop().await;
}

async fn panic_is_a_failed_attempt(env: Env) {
    let c = &env.client;
    let worker = Worker::builder(c)
        .handler("fragile", |ctx: Context, _: Value| async move {
            if ctx.attempt() == 1 {
                panic!("boom");
            }
            Ok::<_, HandlerError>("survived")
        })
        .start()
        .unwrap();
    let new = c
        .execution("fragile", &Value::Null)
        .unwrap()
        .with_retry(quick_retries(3));
    let id = c.submit_execution(new).await.unwrap().id;
    let snap = done(c, &id).await;
    assert_eq!(snap.state, State::Completed);
    assert_eq!(snap.attempts, 2);
    assert_eq!(
        decode_result::<String>(&snap).unwrap().as_deref(),
        Some("survived")
    );
    let stats = worker.shutdown(BOUND).await;
    assert_eq!((stats.panicked, stats.failed, stats.completed), (1, 1, 1));
    env.stop().await;
}

async fn handler_errors_choose_the_outcome(env: Env) {
    let c = &env.client;
    let worker = Worker::builder(c)
        .handler("never", |_ctx, _: Value| async move {
            Err::<(), _>(HandlerError::permanent("bad input"))
        })
        .handler("later", |_ctx, _: Value| async move {
            Err::<(), _>(HandlerError::retry_after("busy", Duration::from_secs(3600)))
        })
        .start()
        .unwrap();
    let never = c
        .submit_execution(
            c.execution("never", &1)
                .unwrap()
                .with_retry(quick_retries(5)),
        )
        .await
        .unwrap()
        .id;
    let later = c
        .submit_execution(
            c.execution("later", &1)
                .unwrap()
                .with_retry(quick_retries(5)),
        )
        .await
        .unwrap()
        .id;
    let snap = done(c, &never).await;
    assert_eq!((snap.state, snap.attempts), (State::Failed, 1));
    assert_eq!(snap.last_error.as_deref(), Some("bad input"));
    let snap = wait_until(c, &later, |s| s.attempts == 1 && s.state == State::Delayed).await;
    assert_eq!(snap.last_error.as_deref(), Some("busy"));
    worker.shutdown(BOUND).await;
    env.stop().await;
}

async fn shutdown_releases_work(env: Env) {
    let c = &env.client;
    let stuck = Worker::builder(c)
        .concurrency(2)
        .handler("job", |ctx: Context, _: Value| async move {
            ctx.stopped().await;
            Ok::<_, HandlerError>("too late")
        })
        .start()
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..2 {
        // On their last attempt: a shutdown must not fail them.
        let new = c.execution("job", &i).unwrap().with_retry(quick_retries(1));
        ids.push(c.submit_execution(new).await.unwrap().id);
    }
    for id in &ids {
        wait_until(c, id, |s| s.state == State::Running).await;
    }
    let stats = stuck.shutdown(Duration::from_millis(100)).await;
    assert_eq!(stats.released, 2);
    for id in &ids {
        let snap = c.describe(id).await.unwrap();
        // Released for another worker at once, not left to lease expiry,
        // and without spending the one attempt allowed.
        assert_eq!((snap.state, snap.attempts), (State::Waiting, 1), "{snap:?}");
        assert_eq!(snap.last_error, None);
    }
    let next = Worker::builder(c)
        .handler(
            "job",
            |_ctx, n: u32| async move { Ok::<_, HandlerError>(n) },
        )
        .start()
        .unwrap();
    for id in &ids {
        let snap = done(c, id).await;
        assert_eq!((snap.state, snap.attempts), (State::Completed, 2));
    }
    next.shutdown(BOUND).await;
    env.stop().await;
}

/// A handler waits for a signal, sleeps, then waits for a signal that
/// never comes, over three suspensions: each run replays the waits that
/// ended (the signal's payload, the sleep, the timeout) and suspends at
/// the first new one; no attempt is spent on waiting.
async fn handlers_wait_for_signals_and_sleep(env: Env) {
    let c = &env.client;
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let worker = Worker::builder(c)
        .handler("refund", move |ctx: Context, amount: u64| {
            let runs = counter.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                let approval = ctx.wait_for_signal("approval", None).await?;
                ctx.sleep(Duration::from_millis(200)).await?;
                let confirm = ctx
                    .wait_for_signal("confirm", Some(Duration::from_millis(100)))
                    .await?;
                let by: Value = serde_json::from_slice(&approval.unwrap_or_default())?;
                Ok::<_, HandlerError>(
                    json!({"amount": amount, "by": by, "confirm": confirm.is_some()}),
                )
            }
        })
        .start()
        .unwrap();
    let new = c
        .execution("refund", &25)
        .unwrap()
        .with_retry(quick_retries(1));
    let id = c.submit_execution(new).await.unwrap().id;
    let snap = wait_until(c, &id, |s| s.state == State::Suspended).await;
    let wait = snap.suspension.clone().unwrap();
    assert_eq!(wait.waitpoints[0].as_str(), "approval");
    assert_eq!(snap.wait_reason().unwrap().reason, "signals");
    let out = c
        .signal(&id, "approval", &"ana", Some("mail-1"))
        .await
        .unwrap();
    assert_eq!(out, baton_core::SignalOutcome::Resumed);
    let again = c
        .signal(&id, "approval", &"bob", Some("mail-1"))
        .await
        .unwrap();
    assert_eq!(again, baton_core::SignalOutcome::Duplicate);
    let snap = done(c, &id).await;
    assert_eq!(snap.state, State::Completed, "{snap:?}");
    let result: Value = decode_result(&snap).unwrap().unwrap();
    assert_eq!(result, json!({"amount": 25, "by": "ana", "confirm": false}));
    // Four runs (three suspensions), one attempt each, none failed.
    assert_eq!((runs.load(Ordering::SeqCst), snap.attempts), (4, 4));
    let signals = c.signals(&id).await.unwrap();
    assert_eq!(signals.len(), 1);
    assert_eq!(
        (signals[0].name.as_str(), signals[0].wait),
        ("approval", Some(1))
    );
    worker.shutdown(BOUND).await;
    env.stop().await;
}

/// A workflow of checkpointed steps whose first attempt crashes between
/// steps: the retry replays the finished steps' outputs without running
/// them again, and a step that failed once keeps its failure count.
async fn steps_are_skipped_by_the_retry(env: Env) {
    let c = &env.client;
    let runs: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
    let counts = runs.clone();
    let worker = Worker::builder(c)
        .handler("order", move |ctx: Context, amount: u64| {
            let runs = counts.clone();
            async move {
                let charge: String = ctx
                    .step("charge", || async {
                        runs[0].fetch_add(1, Ordering::SeqCst);
                        Ok(format!("ch_{amount}"))
                    })
                    .await?;
                let label: u32 = ctx
                    .step("label", || async {
                        // Fails the first time it runs, as a flaky call would.
                        if runs[1].fetch_add(1, Ordering::SeqCst) == 0 {
                            return Err(HandlerError::retry("label service down"));
                        }
                        Ok(7)
                    })
                    .await?;
                if ctx.attempt() == 2 {
                    panic!("the worker crashes after two steps");
                }
                let shipped: bool = ctx
                    .step("ship", || async {
                        runs[2].fetch_add(1, Ordering::SeqCst);
                        Ok(true)
                    })
                    .await?;
                Ok::<_, HandlerError>(json!({"charge": charge, "label": label, "shipped": shipped}))
            }
        })
        .start()
        .unwrap();
    let new = c
        .execution("order", &25)
        .unwrap()
        .with_retry(quick_retries(5));
    let id = c.submit_execution(new).await.unwrap().id;
    let snap = done(c, &id).await;
    assert_eq!(snap.state, State::Completed, "{snap:?}");
    let result: Value = decode_result(&snap).unwrap().unwrap();
    assert_eq!(
        result,
        json!({"charge": "ch_25", "label": 7, "shipped": true})
    );
    // Attempt 1: charge, label fails. Attempt 2: label, then the crash.
    // Attempt 3: ship only.
    let ran: Vec<usize> = runs.iter().map(|r| r.load(Ordering::SeqCst)).collect();
    assert_eq!((ran, snap.attempts), (vec![1, 2, 1], 3));
    let steps = c.steps(&id).await.unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["charge", "label", "ship"]);
    let label = &steps[1];
    assert_eq!(
        (label.attempt, label.failures, label.error.as_deref()),
        (2, 1, Some("label service down"))
    );
    assert_eq!(steps[2].attempt, 3);
    worker.shutdown(BOUND).await;
    env.stop().await;
}

/// `step_with_retry` retries a failing step in process, and its count of
/// failures survives a crash: the next attempt goes on counting and stops
/// at the policy's most tries.
async fn step_retries_count_across_attempts(env: Env) {
    let c = &env.client;
    let tries = Arc::new(AtomicUsize::new(0));
    let counted = tries.clone();
    let worker = Worker::builder(c)
        .handler("flaky", move |ctx: Context, _: Value| {
            let tries = counted.clone();
            async move {
                let retry = baton_sdk::StepRetry::fixed(3, Duration::from_millis(5));
                let out: u32 = ctx
                    .step_with_retry("call", retry, || {
                        let tries = tries.clone();
                        let attempt = ctx.attempt();
                        async move {
                            let n = tries.fetch_add(1, Ordering::SeqCst);
                            if attempt == 1 && n == 1 {
                                panic!("the worker crashes after two tries");
                            }
                            Err::<u32, _>(HandlerError::retry(format!("try {n} failed")))
                        }
                    })
                    .await?;
                Ok::<_, HandlerError>(out)
            }
        })
        .start()
        .unwrap();
    let new = c
        .execution("flaky", &Value::Null)
        .unwrap()
        .with_retry(quick_retries(5));
    let id = c.submit_execution(new).await.unwrap().id;
    let snap = done(c, &id).await;
    // Attempt 1: try 0 fails (recorded), try 1 panics (not recorded).
    // Attempt 2: tries 2 and 3 fail: 3 failures recorded, the most allowed.
    assert_eq!((snap.state, snap.attempts), (State::Failed, 2), "{snap:?}");
    assert!(
        snap.last_error
            .as_deref()
            .unwrap_or("")
            .contains("failed 3 times"),
        "{snap:?}"
    );
    assert_eq!(tries.load(Ordering::SeqCst), 4);
    let steps = c.steps(&id).await.unwrap();
    assert_eq!((steps[0].failures, steps[0].attempt), (3, 2));
    worker.shutdown(BOUND).await;
    env.stop().await;
}

/// A worker on several lanes gets work in priority order across them, as
/// one backend claim orders it: high-priority work on its second lane comes
/// before older low-priority work on its first.
async fn priority_decides_across_lanes(env: Env) {
    let c = &env.client;
    let on = |lane: &str| c.clone().with_lane(lane).unwrap();
    let high = on("b").execution("job", "high").unwrap().with_priority(10);
    let high = on("b").submit_execution(high).await.unwrap().id;
    let low = on("a").execution("job", "low").unwrap();
    let low = on("a").submit_execution(low).await.unwrap().id;
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = order.clone();
    let worker = Worker::builder(c)
        .lane("a")
        .lane("b")
        .concurrency(1)
        .handler("job", move |_ctx, name: String| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(name);
                Ok::<_, HandlerError>(())
            }
        })
        .start()
        .unwrap();
    done(c, &high).await;
    done(c, &low).await;
    worker.shutdown(BOUND).await;
    assert_eq!(*order.lock().unwrap(), ["high", "low"]);
    env.stop().await;
}

/// A handler fans out with `ctx.submit_child`: its children join its flow
/// (parent and root set, same partition), a retried attempt that submits
/// them again under the same child keys creates none twice, and
/// `Client::tree` and `Client::children` show the flow.
async fn handlers_submit_children(env: Env) {
    let c = &env.client;
    let repeats = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = repeats.clone();
    let worker = Worker::builder(c)
        .concurrency(4)
        .handler("fan_out", move |ctx: Context, n: u32| {
            let seen = seen.clone();
            async move {
                for i in 0..n {
                    let key = ChildKey::new(format!("part-{i}"))?;
                    let child = ctx.child("leaf", &i)?.with_child_key(key);
                    let out = ctx.submit_child(child).await?;
                    if ctx.attempt() > 1 {
                        seen.lock().unwrap().push(out.created);
                    }
                }
                // The first attempt fails after fanning out, so the second
                // submits every child again.
                if ctx.attempt() == 1 {
                    return Err(HandlerError::retry("first attempt fails on purpose"));
                }
                Ok(n)
            }
        })
        .handler("leaf", |_ctx, i: u32| async move {
            Ok::<_, HandlerError>(i * 10)
        })
        .start()
        .unwrap();
    let new = c
        .execution("fan_out", &3u32)
        .unwrap()
        .with_retry(quick_retries(2));
    let root = c.submit_execution(new).await.unwrap().id;
    let snap = done(c, &root).await;
    assert_eq!(
        (snap.state, snap.attempts),
        (State::Completed, 2),
        "{snap:?}"
    );
    assert_eq!(*repeats.lock().unwrap(), [false, false, false]);

    let mut kids = Vec::new();
    let mut page = Page::first(2);
    loop {
        let out = c.children(&root, page).await.unwrap();
        kids.extend(out.items);
        let Some(cursor) = out.next_cursor else { break };
        page.cursor = Some(cursor);
    }
    assert_eq!(kids.len(), 3, "{kids:?}");
    for (i, kid) in kids.iter().enumerate() {
        assert_eq!(kid.parent.as_ref(), Some(&root));
        assert_eq!(kid.root, root);
        assert_eq!(kid.id.partition(), root.partition());
        assert_eq!(kid.namespace, *c.namespace());
        let key = format!("part-{i}");
        assert_eq!(
            kid.child_key.as_ref().map(|k| k.as_str()),
            Some(key.as_str())
        );
        let done = done(c, &kid.id).await;
        assert_eq!(decode_result::<u32>(&done).unwrap(), Some(i as u32 * 10));
    }

    // Asked by a child's id, the tree answers the whole flow from its root.
    let tree = c.tree(&kids[2].id, 100).await.unwrap();
    assert_eq!(tree.root, root);
    assert!(!tree.truncated);
    let ids: Vec<&ExecutionId> = tree.items.iter().map(|n| &n.id).collect();
    let mut expected = vec![&root];
    expected.extend(kids.iter().map(|k| &k.id));
    assert_eq!(ids, expected);
    assert_eq!(tree.items[0].parent, None);
    assert!(
        tree.items[1..]
            .iter()
            .all(|n| n.parent.as_ref() == Some(&root))
    );
    assert!(tree.items.iter().all(|n| n.state == State::Completed));
    let cut = c.tree(&root, 2).await.unwrap();
    assert_eq!((cut.items.len(), cut.truncated), (2, true));
    assert!(matches!(
        c.tree(&root, 0).await,
        Err(EngineError::InvalidInput { field: "limit", .. })
    ));
    worker.shutdown(BOUND).await;
    env.stop().await;
}

/// `cancel_with` scope `execution` leaves the descendants running; the
/// default scope reaches every unfinished descendant (also below an already
/// cancelled one) and counts them.
async fn cancel_reaches_the_flow(env: Env) {
    let c = &env.client;
    let root = c.submit("flow", &0).await.unwrap().id;
    let child = |parent: &ExecutionId, name: &str| {
        c.execution("flow", name)
            .unwrap()
            .with_parent(parent.clone())
    };
    let a = c.submit_execution(child(&root, "a")).await.unwrap().id;
    let b = c.submit_execution(child(&root, "b")).await.unwrap().id;
    let a1 = c.submit_execution(child(&a, "a1")).await.unwrap().id;

    let only = CancelRequest::because("just a").with_scope(CancelScope::Execution);
    let out = c.cancel_with(&a, only).await.unwrap();
    assert_eq!(out.snapshot.state, State::Cancelled);
    assert_eq!((out.cascaded, out.cascade_pending), (0, false));
    assert_eq!(c.describe(&a1).await.unwrap().state, State::Waiting);

    let out = c
        .cancel_with(&root, CancelRequest::because("done"))
        .await
        .unwrap();
    assert_eq!(out.snapshot.id, root);
    assert_eq!(out.snapshot.cancel_reason.as_deref(), Some("done"));
    // b and a1: a was already cancelled.
    assert_eq!((out.cascaded, out.cascade_pending), (2, false));
    let a1 = c.describe(&a1).await.unwrap();
    assert_eq!(a1.state, State::Cancelled);
    assert_eq!(
        a1.cancel_reason,
        Some(format!("cancelled with its ancestor {root}: done"))
    );
    assert_eq!(
        c.describe(&a).await.unwrap().cancel_reason.as_deref(),
        Some("just a")
    );
    assert_eq!(c.describe(&b).await.unwrap().state, State::Cancelled);
    // The plain `cancel` keeps working, and is a no-op on a cancelled one.
    let again = c.cancel(&root, Some("again".into())).await.unwrap();
    assert_eq!(again.cancel_reason.as_deref(), Some("done"));
    env.stop().await;
}

/// Fan-out and fan-in with `ctx.wait_children`: the first attempt submits
/// the children and hands its lease back (the worker reports nothing, and
/// counts it), the parent is `blocked` with a readable reason while they
/// run, and the second attempt finds them finished and joins their results.
async fn handlers_wait_for_their_children(env: Env) {
    let c = &env.client;
    // Closed until the test has seen the parent blocked: no permits yet.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let open = gate.clone();
    let worker = Worker::builder(c)
        .concurrency(4)
        .handler("join", |ctx: Context, n: u32| async move {
            for i in 0..n {
                let key = ChildKey::new(format!("part-{i}"))?;
                ctx.submit_child(ctx.child("part", &i)?.with_child_key(key))
                    .await?;
            }
            ctx.wait_children().await?;
            let kids = ctx.children(Page::first(100)).await?;
            let mut sum = 0;
            for kid in &kids.items {
                sum += decode_result::<u32>(kid)?.unwrap_or(0);
            }
            Ok::<_, HandlerError>((ctx.attempt(), sum))
        })
        .handler("part", move |_ctx, i: u32| {
            let gate = open.clone();
            async move {
                // Held until the test has seen the parent blocked.
                let _permit = gate.acquire().await;
                Ok::<_, HandlerError>(i + 1)
            }
        })
        .start()
        .unwrap();
    let parent = c.submit("join", &3u32).await.unwrap().id;
    let blocked = wait_until(c, &parent, |s| s.state == State::Blocked).await;
    assert_eq!(blocked.waiting_on, Some(baton_core::WaitingOn::Children(3)));
    let why = blocked.wait_reason().unwrap();
    assert_eq!(why.reason, "children");
    assert!(
        why.detail.contains("3 unfinished children"),
        "{}",
        why.detail
    );
    assert_eq!((blocked.attempts, blocked.worker_id.clone()), (1, None));
    // Let the children finish, whenever each reaches the gate.
    gate.add_permits(3);
    let snap = done(c, &parent).await;
    assert_eq!(snap.state, State::Completed, "{snap:?}");
    assert_eq!(
        decode_result::<(u32, u32)>(&snap).unwrap(),
        Some((2, 1 + 2 + 3)),
        "the second attempt joins the three children"
    );
    let stats = worker.shutdown(BOUND).await;
    assert_eq!(stats.waiting, 1);
    assert_eq!(stats.failed, 0, "a wait is not a failure");
    env.stop().await;
}

/// A DAG inside a flow: a `merge` that depends on two `fetch` children
/// reads their results from `ctx.upstream()`; a dependent of a fetch that
/// fails for good is skipped and never reaches a handler; the parent,
/// waiting for its children, sees every one finished.
async fn dependents_read_their_upstream_results(env: Env) {
    let c = &env.client;
    let ran_skipped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ran = ran_skipped.clone();
    let worker = Worker::builder(c)
        .concurrency(4)
        .handler("root", |ctx: Context, _: ()| async move {
            let mut fetches = Vec::new();
            for n in [3u32, 4, 0] {
                let key = ChildKey::new(format!("fetch-{n}"))?;
                let out = ctx
                    .submit_child(ctx.child("fetch", &n)?.with_child_key(key))
                    .await?;
                fetches.push(out.id);
            }
            let merge = ctx
                .child("merge", &())?
                .with_child_key(ChildKey::new("merge")?)
                .with_dependencies(fetches[..2].to_vec());
            let merge = ctx.submit_child(merge).await?.id;
            let after_all = ctx
                .child("after-all", &())?
                .with_child_key(ChildKey::new("after-all")?)
                .with_dependencies(fetches.clone());
            let after_all = ctx.submit_child(after_all).await?.id;
            ctx.wait_children().await?;
            let kids = ctx.children(Page::first(100)).await?;
            let of = |id: &ExecutionId| kids.items.iter().find(|k| &k.id == id).cloned();
            let (Some(merged), Some(skipped)) = (of(&merge), of(&after_all)) else {
                return Err(HandlerError::permanent("a child is missing"));
            };
            Ok::<_, HandlerError>((decode_result::<u32>(&merged)?, skipped.state))
        })
        .handler("fetch", |_ctx, n: u32| async move {
            if n == 0 {
                return Err(HandlerError::permanent("nothing to fetch"));
            }
            Ok::<_, HandlerError>(n * 10)
        })
        .handler("merge", |ctx: Context, _: ()| async move {
            let mut sum = 0;
            for up in ctx.upstream().values() {
                assert_eq!(up.state, State::Completed);
                let bytes = up.result.as_deref().unwrap_or(b"0");
                sum += serde_json::from_slice::<u32>(bytes)
                    .map_err(|e| HandlerError::permanent(e.to_string()))?;
            }
            Ok::<_, HandlerError>(sum + ctx.upstream().len() as u32)
        })
        .handler("after-all", move |_ctx, _: ()| {
            let ran = ran.clone();
            async move {
                ran.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok::<_, HandlerError>(())
            }
        })
        .start()
        .unwrap();
    let root = c.submit("root", &()).await.unwrap().id;
    let snap = done(c, &root).await;
    assert_eq!(snap.state, State::Completed, "{snap:?}");
    assert_eq!(
        decode_result::<(Option<u32>, State)>(&snap).unwrap(),
        Some((Some(30 + 40 + 2), State::Skipped)),
        "merge read both results; the dependent of the failed fetch was skipped"
    );
    assert!(!ran_skipped.load(std::sync::atomic::Ordering::SeqCst));
    worker.shutdown(BOUND).await;
    env.stop().await;
}

/// A handler keeps its place in key-value state across attempts, reports a
/// custom status and progress frames; a follower parked on the progress
/// long-poll gets the next frame, `wait_for_completion` the outcome.
async fn handlers_report_status_progress_and_state(env: Env) {
    let c = &env.client;
    let gate = Arc::new(tokio::sync::Notify::new());
    let opened = gate.clone();
    let worker = Worker::builder(c)
        .handler("import", move |ctx: Context, pages: u32| {
            let gate = opened.clone();
            async move {
                let mut page: u32 = ctx.get_state("page").await?.unwrap_or(0);
                if ctx.attempt() == 1 {
                    page += 1;
                    ctx.set_state("page", &page).await?;
                    ctx.progress(&json!({"page": page})).await?;
                    ctx.set_status(&json!({"stage": "importing"})).await?;
                    ctx.set_state("scratch", &true).await?;
                    return Err(HandlerError::retry("connection reset"));
                }
                ctx.clear_state("scratch").await?;
                gate.notified().await;
                while page < pages {
                    page += 1;
                    ctx.set_state("page", &page).await?;
                    ctx.progress(&json!({"page": page})).await?;
                }
                ctx.set_status(&json!({"stage": "done"})).await?;
                Ok::<_, HandlerError>(page)
            }
        })
        .start()
        .unwrap();
    let new = c
        .execution("import", &3)
        .unwrap()
        .with_retry(quick_retries(3));
    let id = c.submit_execution(new).await.unwrap().id;
    let parked = wait_until(c, &id, |s| s.attempts == 2 && s.state == State::Running).await;
    assert_eq!(
        (parked.status_version, parked.progress_seq),
        (1, 1),
        "the first attempt's status and frame stay"
    );
    let follower = {
        let c = c.clone();
        let id = id.clone();
        tokio::spawn(async move { c.progress(&id, 1, 100, BOUND).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    gate.notify_one();
    let (frames, _) = tokio::time::timeout(BOUND, follower)
        .await
        .expect("the follower is woken by the next frame")
        .unwrap()
        .unwrap();
    assert_eq!(frames[0].seq, 2);
    assert_eq!(frames[0].frame, br#"{"page":2}"#.to_vec());
    let snap = done(c, &id).await;
    assert_eq!(snap.state, State::Completed, "{snap:?}");
    assert_eq!(
        decode_result::<u32>(&snap).unwrap(),
        Some(3),
        "resumed at page 1"
    );
    assert_eq!(
        snap.custom_status.as_deref(),
        Some(&br#"{"stage":"done"}"#[..])
    );
    assert_eq!((snap.status_version, snap.progress_seq), (2, 3));
    let state = c.state(&id).await.unwrap();
    assert_eq!(
        state
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_slice()))
            .collect::<Vec<_>>(),
        vec![("page", &b"3"[..])]
    );
    let (all, end) = c.progress(&id, 0, 100, Duration::ZERO).await.unwrap();
    assert_eq!(all.iter().map(|f| f.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(end, State::Completed);
    worker.shutdown(BOUND).await;
    env.stop().await;
}

/// Operator calls through the client: priority and tag edits, the live
/// worker in the registry, and a revoke that takes a wedged handler's
/// lease (the retry completes).
async fn operators_edit_revoke_and_list_workers(env: Env) {
    let c = &env.client;
    let wedged = Arc::new(AtomicUsize::new(0));
    let runs = wedged.clone();
    let id = c
        .submit_execution(
            c.execution("slow", &0)
                .unwrap()
                .with_retry(quick_retries(3)),
        )
        .await
        .unwrap()
        .id;
    let snap = c.set_priority(&id, 4).await.unwrap();
    assert_eq!(snap.priority, 4);
    let snap = c.set_tag(&id, "team", "core").await.unwrap();
    assert_eq!(snap.tags.len(), 1);
    let snap = c.remove_tag(&id, "team").await.unwrap();
    assert!(snap.tags.is_empty());
    let err = c.revoke(&id).await.unwrap_err();
    assert!(matches!(err, EngineError::Conflict { .. }), "{err}");
    let worker = Worker::builder(c)
        .worker_id("sdk-op")
        // Renewed often, so the revoke reaches the handler soon.
        .lease(Duration::from_secs(1))
        .handler("slow", move |ctx: Context, _: u32| {
            let runs = runs.clone();
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    // Wedged until told to stop: the revoke tells it.
                    let why = ctx.stopped().await;
                    return Err(HandlerError::retry(format!("stopped: {why}")));
                }
                Ok::<_, HandlerError>(json!("done"))
            }
        })
        .start()
        .unwrap();
    wait_until(c, &id, |s| s.state == State::Running).await;
    let why = c.explain(&id).await.unwrap();
    assert_eq!(why.reason, Some("leased"), "{}", why.detail);
    assert!(why.detail.contains("sdk-op"), "{}", why.detail);
    let live = c.workers(10).await.unwrap();
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0].worker_id.as_str(), "sdk-op");
    let snap = c.revoke(&id).await.unwrap();
    assert_ne!(snap.state, State::Running);
    let snap = done(c, &id).await;
    assert_eq!(snap.state, State::Completed, "{snap:?}");
    assert_eq!(snap.attempts, 2);
    worker.shutdown(BOUND).await;
    env.stop().await;
}

/// A pause reaches a running handler at its next renew (stopped with
/// `Paused`, nothing reported, no attempt used); the resume runs it
/// again; a paused lane holds the worker off; a failed execution is
/// replayed and completes.
async fn operators_pause_resume_and_replay(env: Env) {
    let c = &env.client;
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let id = c
        .submit_execution(
            c.execution("pausable", &0)
                .unwrap()
                .with_retry(quick_retries(1)),
        )
        .await
        .unwrap()
        .id;
    let stops = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = stops.clone();
    let worker = Worker::builder(c)
        .worker_id("sdk-pause")
        .lease(Duration::from_secs(1))
        .handler("pausable", move |ctx: Context, _: u32| {
            let counted = counted.clone();
            let seen = seen.clone();
            async move {
                match counted.fetch_add(1, Ordering::SeqCst) {
                    0 => {
                        let why = ctx.stopped().await;
                        if let Ok(mut s) = seen.lock() {
                            s.push(why);
                        }
                        Err(HandlerError::retry(format!("stopped: {why}")))
                    }
                    1 => Err(HandlerError::permanent("second run fails")),
                    _ => Ok::<_, HandlerError>(json!("done")),
                }
            }
        })
        .start()
        .unwrap();
    wait_until(c, &id, |s| s.state == State::Running).await;
    let out = c.pause(&id, CancelScope::Tree).await.unwrap();
    assert_eq!(out.snapshot.state, State::Paused);
    // The worker stops the handler at its next renew and reports nothing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stops.lock().map(|s| s.is_empty()).unwrap_or(true) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the handler was never stopped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stops.lock().unwrap().as_slice(), &[StopReason::Paused]);
    let snap = c.describe(&id).await.unwrap();
    assert_eq!((snap.state, snap.attempts), (State::Paused, 1), "{snap:?}");
    // The lane paused too: resuming the execution does not let it run.
    let lane = c.lane().as_str().to_owned();
    assert!(c.pause_lane(&lane).await.unwrap());
    let lanes = c.lanes().await.unwrap();
    assert!(
        lanes
            .iter()
            .any(|l| l.lane.as_str() == lane && l.paused_at.is_some()),
        "{lanes:?}"
    );
    c.resume(&id, CancelScope::Tree).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.describe(&id).await.unwrap().state, State::Waiting);
    assert_eq!(c.explain(&id).await.unwrap().reason, Some("lane_paused"));
    assert!(c.resume_lane(&lane).await.unwrap());
    // One attempt allowed, none used by the pause: the second run fails it.
    let snap = done(c, &id).await;
    assert_eq!((snap.state, snap.attempts), (State::Failed, 2), "{snap:?}");
    let snap = c.replay(&id).await.unwrap();
    assert_eq!(snap.state, State::Waiting);
    let snap = done(c, &id).await;
    assert_eq!(
        (snap.state, snap.attempts),
        (State::Completed, 3),
        "{snap:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    worker.shutdown(BOUND).await;
    env.stop().await;
}

/// Two workers in a rolling deploy: one runs versions up to 1.999, the
/// other from 2; each runs only what its range accepts (work without a
/// version goes to either). A session's executions all run on the worker
/// that took its first one, and the handler sees its session.
async fn versions_and_sessions_route_work(env: Env) {
    let c = &env.client;
    let mut ids = Vec::new();
    for (name, version) in [("old", "1.5"), ("new", "2.0"), ("new", "2.3"), ("old", "1")] {
        let e = c
            .execution("job", name)
            .unwrap()
            .with_version(version.parse().unwrap());
        ids.push(c.submit_execution(e).await.unwrap().id);
    }
    for i in 0..6 {
        let e = c
            .execution("chat", &i)
            .unwrap()
            .with_session(baton_core::SessionName::new("room-7").unwrap());
        ids.push(c.submit_execution(e).await.unwrap().id);
    }
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let start = |id: &str, min: Option<&str>, max: Option<&str>| {
        let jobs = seen.clone();
        let chats = seen.clone();
        let me = id.to_owned();
        let me2 = id.to_owned();
        Worker::builder(c)
            .worker_id(id)
            .versions(min, max)
            .session_idle(Duration::from_secs(60))
            .concurrency(2)
            .handler("job", move |_ctx: Context, name: String| {
                let jobs = jobs.clone();
                let me = me.clone();
                async move {
                    jobs.lock().unwrap().push((me, name));
                    Ok::<_, HandlerError>(())
                }
            })
            .handler("chat", move |ctx: Context, _i: u32| {
                let chats = chats.clone();
                let me = me2.clone();
                async move {
                    let session = ctx.session().map(|s| s.to_string()).unwrap_or_default();
                    chats.lock().unwrap().push((me, session));
                    Ok::<_, HandlerError>(())
                }
            })
            .start()
            .unwrap()
    };
    let old = start("old-worker", None, Some("1.999"));
    let new = start("new-worker", Some("2"), None);
    for id in &ids {
        done(c, id).await;
    }
    old.shutdown(BOUND).await;
    new.shutdown(BOUND).await;
    let seen = seen.lock().unwrap().clone();
    let jobs: Vec<_> = seen
        .iter()
        .filter(|(_, n)| n == "old" || n == "new")
        .collect();
    assert_eq!(jobs.len(), 4);
    for (worker, name) in jobs {
        assert_eq!(worker.as_str(), format!("{name}-worker"), "{seen:?}");
    }
    let chats: Vec<_> = seen.iter().filter(|(_, s)| s == "room-7").collect();
    assert_eq!(chats.len(), 6, "{seen:?}");
    assert!(
        chats.iter().all(|(w, _)| w == &chats[0].0),
        "one worker ran the session: {seen:?}"
    );
    env.stop().await;
}

macro_rules! on_every_transport {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(Env::sqlite().await).await;
                }
            )*
        }
        mod http {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(Env::http().await).await;
                }
            )*
        }
    };
}

on_every_transport!(
    client_calls,
    concurrency_limit,
    heartbeat_keeps_the_lease,
    cancel_reaches_the_handler,
    panic_is_a_failed_attempt,
    handler_errors_choose_the_outcome,
    shutdown_releases_work,
    handlers_wait_for_signals_and_sleep,
    steps_are_skipped_by_the_retry,
    step_retries_count_across_attempts,
    handlers_report_status_progress_and_state,
    operators_edit_revoke_and_list_workers,
    operators_pause_resume_and_replay,
    priority_decides_across_lanes,
    handlers_submit_children,
    handlers_wait_for_their_children,
    dependents_read_their_upstream_results,
    cancel_reaches_the_flow,
    versions_and_sessions_route_work,
);
