//! Memory beyond steps: key-value state, custom status, progress frames and
//! waiting for an execution to change — written under the lease, read by
//! anyone, bounded and trimmed with the execution.

use super::prelude::*;
use baton_core::{ChangeMark, ProgressFrame, StateKey};

fn key(name: &str) -> StateKey {
    StateKey::new(name).expect("valid state key")
}

async fn set(ctx: &Ctx, lease: &LeaseToken, k: &str, value: Option<&[u8]>) {
    ok(
        ctx.backend
            .set_state(lease, key(k), value.map(<[u8]>::to_vec))
            .await,
        "set_state",
    );
}

async fn state_of(ctx: &Ctx, id: &ExecutionId) -> Vec<(String, Vec<u8>, u32)> {
    ok(ctx.backend.state(id).await, "state")
        .into_iter()
        .map(|e| (e.key.as_str().to_owned(), e.value, e.attempt))
        .collect()
}

async fn frames(ctx: &Ctx, id: &ExecutionId, after: u64, limit: usize) -> Vec<ProgressFrame> {
    ok(ctx.backend.progress(id, after, limit).await, "progress")
}

/// Set, overwrite and clear under the lease; anyone reads it; a new
/// attempt sees what the last one left; a lost lease writes nothing;
/// values are bounded in size and keys in number; the state is trimmed
/// with its execution.
pub async fn state_is_fenced_bounded_and_trimmed(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx
        .create_id(ctx.new_exec("kv", b"").with_retry(no_backoff(3)))
        .await;
    let first = ctx.claim_one_with(DEFAULT_WORKER, 1_000).await;
    assert!(state_of(&ctx, &id).await.is_empty());
    set(&ctx, &first.lease, "b", Some(b"1")).await;
    set(&ctx, &first.lease, "a", Some(b"{\"x\":1}")).await;
    set(&ctx, &first.lease, "b", Some(b"2")).await;
    set(&ctx, &first.lease, "gone", Some(b"0")).await;
    set(&ctx, &first.lease, "gone", None).await;
    // Clearing a key not held and repeating a value change nothing.
    set(&ctx, &first.lease, "never", None).await;
    set(&ctx, &first.lease, "b", Some(b"2")).await;
    let entries = ok(ctx.backend.state(&id).await, "state");
    assert_eq!(
        entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_slice(), e.attempt, e.updated_at))
            .collect::<Vec<_>>(),
        vec![
            ("a", &b"{\"x\":1}"[..], 1, ctx.now()),
            ("b", &b"2"[..], 1, ctx.now())
        ],
        "ascending by key, with the writing attempt and time"
    );
    let too_big = vec![b'1'; ctx.limits().max_value_bytes + 1];
    assert_eq!(
        expect_invalid(
            ctx.backend
                .set_state(&first.lease, key("big"), Some(too_big))
                .await,
            "a value over the limit",
        ),
        "value"
    );
    // The lease expires: the write is fenced, the state stays.
    ctx.advance(1_000);
    expect_lease_lost(
        ctx.backend
            .set_state(&first.lease, key("late"), Some(b"1".to_vec()))
            .await,
        &id,
        "a state write after the lease expired",
    );
    assert_eq!(ctx.reclaim_all().await, 1);
    let second = ctx.claim_one().await;
    ctx.advance(5);
    set(&ctx, &second.lease, "a", None).await;
    set(&ctx, &second.lease, "c", Some(b"3")).await;
    assert_eq!(
        state_of(&ctx, &id).await,
        vec![
            ("b".into(), b"2".to_vec(), 1),
            ("c".into(), b"3".to_vec(), 2)
        ],
        "the state survives the reclaim; the new attempt writes over it"
    );
    // At most max_state_keys keys: a held key may still change at the limit.
    let max = ctx.limits().max_state_keys;
    for n in 2..max {
        set(&ctx, &second.lease, &format!("k{n:04}"), Some(b"1")).await;
    }
    assert_eq!(state_of(&ctx, &id).await.len(), max);
    expect_conflict(
        ctx.backend
            .set_state(&second.lease, key("one-more"), Some(b"1".to_vec()))
            .await,
        &id,
        "set_state",
        State::Running,
        "a new key beyond the limit",
    );
    set(&ctx, &second.lease, "b", Some(b"22")).await;
    set(&ctx, &second.lease, "c", None).await;
    set(&ctx, &second.lease, "one-more", Some(b"1")).await;
    ctx.complete(&second.lease, b"{}").await;
    expect_lease_lost(
        ctx.backend
            .set_state(&second.lease, key("after"), Some(b"1".to_vec()))
            .await,
        &id,
        "a state write after complete",
    );
    assert_eq!(state_of(&ctx, &id).await.len(), max, "read after the end");
    let unknown = ctx.unknown_id();
    expect_not_found(ctx.backend.state(&unknown).await, &unknown, "state");
    ctx.advance(1_000);
    assert_eq!(ctx.trim_all(1_000).await, 1);
    expect_not_found(ctx.backend.state(&id).await, &id, "state after the trim");
}

/// The custom status is set under the lease, versioned (a repeat keeps the
/// version), carried by snapshots after the end, and fenced.
pub async fn custom_status_is_versioned_and_in_snapshots(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx
        .create_id(ctx.new_exec("status", b"").with_retry(no_backoff(3)))
        .await;
    let snap = ctx.describe(&id).await;
    assert_eq!(
        (snap.custom_status, snap.status_version, snap.progress_seq),
        (None, 0, 0)
    );
    let first = ctx.claim_one_with(DEFAULT_WORKER, 1_000).await;
    let set = |lease: LeaseToken, status: &'static [u8]| {
        let backend = ctx.backend.clone();
        async move { backend.set_status(&lease, status.to_vec()).await }
    };
    assert_eq!(
        ok(
            set(first.lease.clone(), b"{\"stage\":1}").await,
            "set_status"
        ),
        1
    );
    assert_eq!(
        ok(
            set(first.lease.clone(), b"{\"stage\":1}").await,
            "set_status"
        ),
        1,
        "the same status keeps its version"
    );
    assert_eq!(
        ok(
            set(first.lease.clone(), b"{\"stage\":2}").await,
            "set_status"
        ),
        2
    );
    let snap = ctx.describe(&id).await;
    assert_eq!(snap.custom_status.as_deref(), Some(&b"{\"stage\":2}"[..]));
    assert_eq!(snap.status_version, 2);
    let too_big = vec![b'1'; ctx.limits().max_value_bytes + 1];
    assert_eq!(
        expect_invalid(
            ctx.backend.set_status(&first.lease, too_big).await,
            "a status over the limit",
        ),
        "status"
    );
    ctx.advance(1_000);
    expect_lease_lost(
        set(first.lease.clone(), b"\"late\"").await,
        &id,
        "a status after the lease expired",
    );
    assert_eq!(ctx.reclaim_all().await, 1);
    let second = ctx.claim_one().await;
    assert_eq!(
        ok(
            set(second.lease.clone(), b"\"retrying\"").await,
            "set_status"
        ),
        3,
        "versions count across attempts"
    );
    let done = ctx.complete(&second.lease, b"{}").await;
    assert_eq!(done.custom_status.as_deref(), Some(&b"\"retrying\""[..]));
    assert_eq!(done.status_version, 3);
    expect_lease_lost(
        set(second.lease.clone(), b"\"after\"").await,
        &id,
        "a status after complete",
    );
    assert_eq!(ctx.describe(&id).await.status_version, 3);
}

/// Frames are numbered in order, read with a cursor, bounded (the oldest
/// dropped, numbers never reused), fenced and trimmed with the execution.
pub async fn progress_frames_are_ordered_bounded_and_trimmed(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_id(ctx.new_exec("progress", b"")).await;
    let claim = ctx.claim_one_with(DEFAULT_WORKER, 60_000).await;
    let append = |frame: Vec<u8>| {
        let backend = ctx.backend.clone();
        let lease = claim.lease.clone();
        async move { backend.append_progress(&lease, frame).await }
    };
    assert!(frames(&ctx, &id, 0, 10).await.is_empty());
    assert_eq!(
        ok(append(b"{\"done\":1}".to_vec()).await, "append_progress"),
        1
    );
    ctx.advance(3);
    assert_eq!(
        ok(append(b"{\"done\":2}".to_vec()).await, "append_progress"),
        2
    );
    let read = frames(&ctx, &id, 0, 10).await;
    assert_eq!(
        read,
        vec![
            ProgressFrame {
                seq: 1,
                at: ctx.now().saturating_sub(Duration::from_millis(3)),
                attempt: 1,
                frame: b"{\"done\":1}".to_vec(),
            },
            ProgressFrame {
                seq: 2,
                at: ctx.now(),
                attempt: 1,
                frame: b"{\"done\":2}".to_vec(),
            },
        ]
    );
    assert_eq!(frames(&ctx, &id, 1, 10).await, read[1..].to_vec());
    assert!(frames(&ctx, &id, 2, 10).await.is_empty());
    assert_eq!(ctx.describe(&id).await.progress_seq, 2);
    let too_big = vec![b'1'; ctx.limits().max_value_bytes + 1];
    assert_eq!(
        expect_invalid(append(too_big).await, "a frame over the limit"),
        "frame"
    );
    for bad in [0, 1001] {
        expect_invalid(
            ctx.backend.progress(&id, 0, bad).await,
            "a progress page outside 1..=1000",
        );
    }
    // Past the bound the oldest frames go; numbers keep counting.
    let max = ctx.limits().max_progress_frames as u64;
    for n in 3..=max + 2 {
        ok(append(n.to_string().into_bytes()).await, "append_progress");
    }
    let first = frames(&ctx, &id, 0, 5).await;
    assert_eq!(
        first.iter().map(|f| f.seq).collect::<Vec<_>>(),
        vec![3, 4, 5, 6, 7],
        "frames 1 and 2 were dropped for the bound"
    );
    assert_eq!(first[0].frame, b"3".to_vec());
    let mut kept = 0;
    let mut after = 0;
    loop {
        let page = frames(&ctx, &id, after, 1000).await;
        let Some(last) = page.last() else { break };
        assert!(page.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
        after = last.seq;
        kept += page.len() as u64;
    }
    assert_eq!((kept, after), (max, max + 2));
    assert_eq!(ctx.describe(&id).await.progress_seq, max + 2);
    ctx.complete(&claim.lease, b"{}").await;
    expect_lease_lost(append(b"1".to_vec()).await, &id, "a frame after complete");
    let unknown = ctx.unknown_id();
    expect_not_found(
        ctx.backend.progress(&unknown, 0, 10).await,
        &unknown,
        "progress",
    );
    ctx.advance(1_000);
    assert_eq!(ctx.trim_all(1_000).await, 1);
    expect_not_found(
        ctx.backend.progress(&id, 0, 10).await,
        &id,
        "progress after the trim",
    );
}

/// A reader waiting for a change answers at once when the execution already
/// differs from what it saw, is woken by a status change, a progress frame
/// and the terminal transition, and after its timeout answers the
/// snapshot unchanged.
pub async fn wait_for_change_is_woken_by_changes_and_times_out_unchanged(h: &dyn Harness) {
    let ctx = Ctx::new(h).await;
    let id = ctx.create_id(ctx.new_exec("watched", b"")).await;
    let seen = ChangeMark::of(&ctx.describe(&id).await);
    // Nothing changes: the timeout answers the snapshot as it was.
    let quiet = ok(
        ctx.backend.wait_for_change(&id, seen, ms(50)).await,
        "wait_for_change",
    );
    assert_eq!(ChangeMark::of(&quiet), seen);
    assert_eq!(quiet.state, State::Waiting);
    // Already different from what the reader saw: at once.
    let stale = ChangeMark {
        status_version: 7,
        ..seen
    };
    let at_once = ok(
        ctx.backend
            .wait_for_change(&id, stale, Duration::from_secs(30))
            .await,
        "wait_for_change",
    );
    assert_eq!(ChangeMark::of(&at_once), seen);

    let claim = ctx.claim_one_with(DEFAULT_WORKER, 60_000).await;
    let seen = ChangeMark::of(&ctx.describe(&id).await);
    let waiter = |seen: ChangeMark| {
        let backend = ctx.backend.clone();
        let id = id.clone();
        tokio::spawn(async move {
            backend
                .wait_for_change(&id, seen, Duration::from_secs(30))
                .await
        })
    };
    // Each change wakes a parked reader well before its 30 s timeout.
    let parked = waiter(seen);
    tokio::time::sleep(ms(100)).await;
    ok(
        ctx.backend
            .set_status(&claim.lease, b"\"half\"".to_vec())
            .await,
        "set_status",
    );
    let woke = ok(
        tokio::time::timeout(Duration::from_secs(10), parked)
            .await
            .expect("a status change wakes the reader")
            .expect("reader task"),
        "wait_for_change",
    );
    assert_eq!(woke.status_version, 1);
    let seen = ChangeMark::of(&woke);
    let parked = waiter(seen);
    tokio::time::sleep(ms(100)).await;
    ok(
        ctx.backend
            .append_progress(&claim.lease, b"{\"n\":1}".to_vec())
            .await,
        "append_progress",
    );
    let woke = ok(
        tokio::time::timeout(Duration::from_secs(10), parked)
            .await
            .expect("a progress frame wakes the reader")
            .expect("reader task"),
        "wait_for_change",
    );
    assert_eq!(woke.progress_seq, 1);
    let seen = ChangeMark::of(&woke);
    let parked = waiter(seen);
    tokio::time::sleep(ms(100)).await;
    ctx.complete(&claim.lease, b"{\"ok\":true}").await;
    let woke = ok(
        tokio::time::timeout(Duration::from_secs(10), parked)
            .await
            .expect("completion wakes the reader")
            .expect("reader task"),
        "wait_for_change",
    );
    assert_eq!(woke.state, State::Completed);
    assert_eq!(woke.result.as_deref(), Some(&b"{\"ok\":true}"[..]));

    // A cancel is a terminal transition too.
    let other = ctx.create_id(ctx.new_exec("watched", b"")).await;
    let seen = ChangeMark::of(&ctx.describe(&other).await);
    let parked = {
        let backend = ctx.backend.clone();
        let other = other.clone();
        tokio::spawn(async move {
            backend
                .wait_for_change(&other, seen, Duration::from_secs(30))
                .await
        })
    };
    tokio::time::sleep(ms(100)).await;
    ctx.cancel(&other, Some("stop")).await;
    let woke = ok(
        tokio::time::timeout(Duration::from_secs(10), parked)
            .await
            .expect("a cancel wakes the reader")
            .expect("reader task"),
        "wait_for_change",
    );
    assert_eq!(woke.state, State::Cancelled);
    let unknown = ctx.unknown_id();
    expect_not_found(
        ctx.backend.wait_for_change(&unknown, seen, ms(10)).await,
        &unknown,
        "wait_for_change",
    );
}
