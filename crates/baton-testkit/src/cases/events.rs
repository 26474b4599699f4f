//! The history of an execution: an event for every transition, written
//! with it, bounded, gone with the execution.

use super::prelude::*;
use baton_core::{EventKind, ExecutionEvent, SuspendRequest, WorkerId};

/// An expected event: what happened, the states, attempt, worker, detail
/// and time.
type Expected = (
    EventKind,
    Option<State>,
    Option<State>,
    u32,
    Option<WorkerId>,
    Option<String>,
    Timestamp,
);

/// A case's context with the history of its namespace on.
async fn with_history(h: &dyn Harness) -> Ctx {
    let ctx = Ctx::new(h).await;
    let was = ok(ctx.backend.set_history(&ctx.ns, true).await, "set_history");
    assert!(!was, "the history of a namespace is off by default");
    ctx
}

async fn history(ctx: &Ctx, id: &ExecutionId) -> Vec<ExecutionEvent> {
    ok(ctx.backend.events(id, 0, 1_000).await, "events")
}

fn summary(events: &[ExecutionEvent]) -> Vec<Expected> {
    events
        .iter()
        .map(|e| {
            (
                e.event,
                e.from,
                e.to,
                e.attempt,
                e.worker.clone(),
                e.detail.clone(),
                e.at,
            )
        })
        .collect()
}

fn moved(
    event: EventKind,
    from: State,
    to: State,
    attempt: u32,
    worker_name: Option<&str>,
    detail: Option<&str>,
    at: Timestamp,
) -> Expected {
    (
        event,
        Some(from),
        Some(to),
        attempt,
        worker_name.map(worker),
        detail.map(str::to_owned),
        at,
    )
}

fn noted(event: EventKind, attempt: u32, detail: &str, at: Timestamp) -> Expected {
    (
        event,
        None,
        None,
        attempt,
        None,
        Some(detail.to_owned()),
        at,
    )
}

fn created(to: State, at: Timestamp) -> Expected {
    (EventKind::Created, None, Some(to), 0, None, None, at)
}

/// A worker's life of an execution: created, claimed, a failure retried
/// after a backoff (promoted), a lease that expired (reclaimed, retried
/// after its backoff), claimed again and completed — each event with its time, states, attempt,
/// worker and detail, numbered from 1; paging by `after` and `limit`.
pub async fn history_records_a_workers_attempts(h: &dyn Harness) {
    use baton_core::{Backoff, RetryPolicy};
    let ctx = with_history(h).await;
    let policy = RetryPolicy {
        max_attempts: 3,
        backoff: Backoff {
            initial_ms: 100,
            max_ms: 100,
            multiplier: 1.0,
            jitter: false,
        },
    };
    let id = ctx
        .create_id(ctx.new_exec("job", b"").with_retry(policy))
        .await;
    let t0 = ctx.now();
    ctx.advance(10);
    let first = ctx.claim_one_with("w1", 1_000).await;
    let t1 = ctx.now();
    ctx.advance(10);
    ctx.fail(&first.lease, Failure::retryable("boom")).await;
    let t2 = ctx.now();
    ctx.advance(100);
    assert_eq!(ctx.promote_all().await, 1);
    let t3 = ctx.now();
    let second = ctx.claim_one_with("w2", 1_000).await;
    assert_eq!(second.attempt, 2);
    ctx.advance(1_000);
    assert_eq!(ctx.reclaim_all().await, 1);
    let t4 = ctx.now();
    ctx.advance(100);
    assert_eq!(
        ctx.promote_all().await,
        1,
        "a reclaimed attempt is retried after its backoff"
    );
    let t4b = ctx.now();
    ctx.advance(10);
    let third = ctx.claim_one_with("w3", 1_000).await;
    let t5 = ctx.now();
    ctx.advance(10);
    ctx.complete(&third.lease, b"{}").await;
    let t6 = ctx.now();
    let events = history(&ctx, &id).await;
    let reclaimed = ctx.attempts(&id).await[1].error.clone();
    assert_eq!(
        summary(&events),
        vec![
            created(State::Waiting, t0),
            moved(
                EventKind::Claimed,
                State::Waiting,
                State::Running,
                1,
                Some("w1"),
                None,
                t1
            ),
            moved(
                EventKind::Retried,
                State::Running,
                State::Delayed,
                1,
                Some("w1"),
                Some("boom"),
                t2
            ),
            moved(
                EventKind::Promoted,
                State::Delayed,
                State::Waiting,
                1,
                None,
                None,
                t3
            ),
            moved(
                EventKind::Claimed,
                State::Waiting,
                State::Running,
                2,
                Some("w2"),
                None,
                t3
            ),
            moved(
                EventKind::Reclaimed,
                State::Running,
                State::Delayed,
                2,
                Some("w2"),
                reclaimed.as_deref(),
                t4
            ),
            moved(
                EventKind::Promoted,
                State::Delayed,
                State::Waiting,
                2,
                None,
                None,
                t4b
            ),
            moved(
                EventKind::Claimed,
                State::Waiting,
                State::Running,
                3,
                Some("w3"),
                None,
                t5
            ),
            moved(
                EventKind::Completed,
                State::Running,
                State::Completed,
                3,
                Some("w3"),
                None,
                t6
            ),
        ]
    );
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=9).collect::<Vec<u64>>());
    let page = ok(ctx.backend.events(&id, 2, 3).await, "a page of events");
    assert_eq!(page, events[2..5].to_vec());
    assert!(ok(ctx.backend.events(&id, 9, 10).await, "past the end").is_empty());
    assert_eq!(
        expect_invalid(ctx.backend.events(&id, 0, 0).await, "limit 0"),
        "limit"
    );
    let unknown = ctx.unknown_id();
    expect_not_found(
        ctx.backend.events(&unknown, 0, 10).await,
        &unknown,
        "events of an unknown id",
    );
}

/// Operators and waits: a cancel (with its reason), a replay, a pause and
/// resume, priority and tag edits, a suspension ended by a signal, a
/// parent released to wait for its child and woken by it, a deadline, a
/// failure with no attempts left.
pub async fn history_records_operators_waits_and_ends(h: &dyn Harness) {
    use baton_core::CancelScope;
    let ctx = with_history(h).await;
    // Cancel, replay, pause, resume, edits.
    let id = ctx.create_waiting().await;
    let t0 = ctx.now();
    ctx.advance(5);
    ctx.cancel(&id, Some("not now")).await;
    let t1 = ctx.now();
    ctx.advance(5);
    ok(ctx.backend.replay(&id).await, "replay");
    let t2 = ctx.now();
    ctx.advance(5);
    ok(ctx.backend.pause(&id, CancelScope::Tree).await, "pause");
    let t3 = ctx.now();
    ctx.advance(5);
    ok(ctx.backend.resume(&id, CancelScope::Tree).await, "resume");
    let t4 = ctx.now();
    ctx.advance(5);
    ok(ctx.backend.set_priority(&id, 7).await, "priority");
    let t5 = ctx.now();
    ok(
        ctx.backend
            .set_tag(&id, tag("team"), Some("core".into()))
            .await,
        "tag",
    );
    ok(ctx.backend.set_tag(&id, tag("team"), None).await, "untag");
    // Edits that change nothing record nothing.
    ok(ctx.backend.set_priority(&id, 7).await, "same priority");
    ok(
        ctx.backend.set_tag(&id, tag("team"), None).await,
        "no such tag",
    );
    assert_eq!(
        summary(&history(&ctx, &id).await),
        vec![
            created(State::Waiting, t0),
            moved(
                EventKind::Cancelled,
                State::Waiting,
                State::Cancelled,
                0,
                None,
                Some("not now"),
                t1
            ),
            moved(
                EventKind::Replayed,
                State::Cancelled,
                State::Waiting,
                0,
                None,
                None,
                t2
            ),
            moved(
                EventKind::Paused,
                State::Waiting,
                State::Paused,
                0,
                None,
                None,
                t3
            ),
            moved(
                EventKind::Resumed,
                State::Paused,
                State::Waiting,
                0,
                None,
                None,
                t4
            ),
            noted(EventKind::PriorityChanged, 0, "7", t5),
            noted(EventKind::TagChanged, 0, "team=core", t5),
            noted(EventKind::TagChanged, 0, "team", t5),
        ]
    );
    // A suspension ended by a signal.
    let waiter = ctx.create_waiting().await;
    let lease = ctx.claim_one_pending(&waiter).await;
    ctx.advance(5);
    let s0 = ctx.now();
    ctx.suspend(&lease, SuspendRequest::signals([signal_name("go")]))
        .await;
    ctx.advance(5);
    let s1 = ctx.now();
    ctx.signal(&waiter, "go", b"{}", None).await;
    let events = summary(&history(&ctx, &waiter).await);
    assert_eq!(
        events[2..],
        [
            moved(
                EventKind::Suspended,
                State::Running,
                State::Suspended,
                1,
                Some(DEFAULT_WORKER),
                None,
                s0
            ),
            noted(EventKind::Signalled, 1, "go", s1),
            moved(
                EventKind::Woken,
                State::Suspended,
                State::Waiting,
                1,
                None,
                None,
                s1
            ),
        ],
        "{events:?}"
    );
    // A parent waits for its child and is woken when it finishes.
    let parent = ctx.create_waiting().await;
    let lease = ctx.claim_one_pending(&parent).await;
    let child = ctx
        .create_id(ctx.new_exec("child", b"").with_parent(parent.clone()))
        .await;
    ctx.advance(5);
    let p0 = ctx.now();
    ok(ctx.backend.wait_children(&lease).await, "wait_children");
    ctx.advance(5);
    ctx.cancel(&child, None).await;
    let p1 = ctx.now();
    let events = summary(&history(&ctx, &parent).await);
    assert_eq!(
        events[2..],
        [
            moved(
                EventKind::Released,
                State::Running,
                State::Blocked,
                1,
                Some(DEFAULT_WORKER),
                None,
                p0
            ),
            moved(
                EventKind::Woken,
                State::Blocked,
                State::Waiting,
                1,
                None,
                None,
                p1
            ),
        ],
        "{events:?}"
    );
    // A deadline, and a failure with no attempts left.
    let late = ctx
        .create_id(ctx.new_exec("late", b"").with_deadline(ctx.after(50)))
        .await;
    ctx.advance(50);
    assert!(ctx.expire_all().await >= 1);
    let events = summary(&history(&ctx, &late).await);
    assert_eq!(
        events.last().map(|e| (e.0, e.2)),
        Some((EventKind::Expired, Some(State::Expired)))
    );
    let doomed = ctx
        .create_id(ctx.new_exec("once", b"").with_retry(no_backoff(1)))
        .await;
    let lease = ctx.claim_one_pending(&doomed).await;
    ctx.fail(&lease, Failure::retryable("for good")).await;
    let events = summary(&history(&ctx, &doomed).await);
    assert_eq!(
        events.last().cloned(),
        Some(moved(
            EventKind::Failed,
            State::Running,
            State::Failed,
            1,
            Some(DEFAULT_WORKER),
            Some("for good"),
            ctx.now()
        ))
    );
}

/// An execution keeps its first event and its latest ones up to the
/// bound, numbered on (never reused); a long detail is cut; its history
/// goes with it when it is deleted.
pub async fn history_is_bounded_and_goes_with_the_execution(h: &dyn Harness) {
    let ctx = with_history(h).await;
    let id = ctx.create_waiting().await;
    let edits = 250u64;
    for i in 0..edits {
        ok(
            ctx.backend.set_priority(&id, (i % 2) as i32 + 1).await,
            "priority",
        );
    }
    let events = history(&ctx, &id).await;
    assert_eq!(events.len() as u64, ExecutionEvent::MAX_KEPT);
    assert_eq!(events[0].event, EventKind::Created);
    assert_eq!(events[0].seq, 1);
    let last = edits + 1;
    assert_eq!(events[1].seq, last - ExecutionEvent::MAX_KEPT + 2);
    assert_eq!(events.last().map(|e| e.seq), Some(last));
    // A long cancel reason is cut in the history (the snapshot keeps it).
    let other = ctx.create_waiting().await;
    let reason = "r".repeat(ExecutionEvent::MAX_DETAIL + 100);
    ctx.cancel(&other, Some(&reason)).await;
    let events = history(&ctx, &other).await;
    assert_eq!(
        events
            .last()
            .and_then(|e| e.detail.as_ref())
            .map(String::len),
        Some(ExecutionEvent::MAX_DETAIL)
    );
    ok(ctx.backend.delete(&other, false).await, "delete");
    expect_not_found(
        ctx.backend.events(&other, 0, 10).await,
        &other,
        "events of a deleted execution",
    );
}

/// The history is off by default: nothing is recorded and `events`
/// answers an empty history; turned on, it covers executions created from
/// then on, each keeping the setting it was created with (turning it off
/// again stops new ones only); other namespaces are not affected.
pub async fn history_is_kept_per_namespace_from_creation(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    assert!(!ok(
        ctx.backend.history_enabled(&ctx.ns).await,
        "history_enabled"
    ));
    let before = ctx.create_waiting().await;
    ctx.cancel(&before, Some("x")).await;
    assert!(
        history(&ctx, &before).await.is_empty(),
        "off: nothing recorded"
    );
    assert!(!ok(ctx.backend.set_history(&ctx.ns, true).await, "on"));
    assert!(ok(ctx.backend.set_history(&ctx.ns, true).await, "on again"));
    assert!(ok(
        ctx.backend.history_enabled(&ctx.ns).await,
        "history_enabled"
    ));
    assert!(
        !ok(
            ctx.backend.history_enabled(&ctx.other_namespace()).await,
            "other namespace"
        ),
        "another namespace keeps its own setting"
    );
    let during = ctx.create_waiting().await;
    ok(
        ctx.backend.replay(&before).await,
        "replay of one created before",
    );
    assert!(
        history(&ctx, &before).await.is_empty(),
        "it keeps its setting"
    );
    assert!(ok(ctx.backend.set_history(&ctx.ns, false).await, "off"));
    let after = ctx.create_waiting().await;
    ctx.cancel(&during, None).await;
    ctx.cancel(&after, None).await;
    let kinds: Vec<EventKind> = history(&ctx, &during)
        .await
        .iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(
        kinds,
        [EventKind::Created, EventKind::Cancelled],
        "it keeps its setting"
    );
    assert!(
        history(&ctx, &after).await.is_empty(),
        "created after it was turned off"
    );
}
