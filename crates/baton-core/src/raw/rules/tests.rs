#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::*;
use crate::id::{PartitionCount, PartitionId};
use crate::model::{ListCursor, RetentionRule};
use crate::names::Lane;
use crate::names::{Kind, Namespace};
use crate::policy::{Backoff, RetryPolicy};
use crate::{Claim, RenewStatus, WaitingOn};

const NOW: Timestamp = Timestamp::from_millis(1_000_000);

fn id() -> ExecutionId {
    ExecutionId::generate(PartitionCount::new(4).unwrap())
}

fn running(id: &ExecutionId, attempt: u32) -> ExecutionSnapshot {
    ExecutionSnapshot {
        session: None,
        version: None,
        id: id.clone(),
        namespace: Namespace::new("n").unwrap(),
        lane: Lane::new("l").unwrap(),
        kind: Kind::new("k").unwrap(),
        state: State::Running,
        priority: 0,
        payload: Vec::new(),
        tags: BTreeMap::new(),
        attempts: attempt,
        retry: RetryPolicy {
            max_attempts: 3,
            backoff: Backoff {
                initial_ms: 1_000,
                max_ms: 60_000,
                multiplier: 2.0,
                jitter: false,
            },
        },
        idempotency_key: None,
        required_capabilities: BTreeSet::new(),
        parent: None,
        child_key: None,
        root: id.clone(),
        created_at: NOW,
        updated_at: NOW,
        run_at: None,
        deadline: None,
        finished_at: None,
        worker_id: None,
        lease_expires_at: Some(NOW.saturating_add(Duration::from_secs(30))),
        result: None,
        last_error: None,
        cancel_reason: None,
        waiting_on: None,
        suspension: None,
        pause: None,
        custom_status: None,
        status_version: 0,
        progress_seq: 0,
    }
}

#[test]
fn a_current_unexpired_lease_is_live() {
    let id = id();
    let lease = LeaseToken::new(id.clone(), 2, 77);
    let snap = running(&id, 2);
    assert_eq!(
        judge_lease(&lease, &snap, Some(77), None, NOW).unwrap(),
        LeaseVerdict::Live
    );
}

#[test]
fn a_current_lease_past_expiry_or_deadline_is_lost() {
    let id = id();
    let lease = LeaseToken::new(id.clone(), 1, 5);
    let mut snap = running(&id, 1);
    let at_expiry = snap.lease_expires_at.unwrap();
    let err = judge_current_lease(&lease, &snap, Some(5), at_expiry).unwrap();
    assert!(matches!(err, Err(EngineError::LeaseLost { .. })), "{err:?}");
    snap.deadline = Some(NOW);
    let err = judge_current_lease(&lease, &snap, Some(5), NOW).unwrap();
    assert!(
        matches!(&err, Err(EngineError::LeaseLost { reason, .. }) if reason.contains("deadline")),
        "{err:?}"
    );
}

#[test]
fn a_lease_the_execution_does_not_hold_is_judged_by_its_attempt() {
    let id = id();
    let lease = LeaseToken::new(id.clone(), 1, 5);
    let mut snap = running(&id, 2);
    assert!(judge_current_lease(&lease, &snap, Some(9), NOW).is_none());
    let never = judge_ended_lease(&lease, &snap, None).unwrap_err();
    assert!(
        matches!(never, EngineError::LeaseLost { ref reason, .. } if reason.contains("never granted"))
    );
    let forged = AttemptFacts {
        nonce: 6,
        outcome: Some(AttemptOutcome::Failed),
    };
    assert!(matches!(
        judge_ended_lease(&lease, &snap, Some(forged)),
        Err(EngineError::LeaseLost { .. })
    ));
    let ended = AttemptFacts {
        nonce: 5,
        outcome: Some(AttemptOutcome::LeaseExpired),
    };
    assert_eq!(
        judge_ended_lease(&lease, &snap, Some(ended)).unwrap(),
        LeaseVerdict::Ended(AttemptOutcome::LeaseExpired)
    );
    snap.state = State::Waiting;
    let open = AttemptFacts {
        nonce: 5,
        outcome: None,
    };
    assert!(matches!(
        judge_ended_lease(&lease, &snap, Some(open)),
        Err(EngineError::Corruption { .. })
    ));
}

#[test]
fn replays_answer_the_stored_snapshot_or_a_conflict() {
    let id = id();
    let lease = LeaseToken::new(id.clone(), 1, 5);
    let mut done = running(&id, 1);
    done.state = State::Completed;
    done.result = Some(b"r".to_vec());
    assert_eq!(
        complete_replay(&lease, AttemptOutcome::Completed, done.clone(), b"r").unwrap(),
        done
    );
    for (outcome, result) in [
        (AttemptOutcome::Completed, &b"other"[..]),
        (AttemptOutcome::Failed, &b"r"[..]),
    ] {
        assert!(matches!(
            complete_replay(&lease, outcome, done.clone(), result),
            Err(EngineError::Conflict {
                operation: "complete",
                ..
            })
        ));
    }
    assert!(matches!(
        complete_replay(&lease, AttemptOutcome::Cancelled, done.clone(), b"r"),
        Err(EngineError::LeaseLost { .. })
    ));
    assert_eq!(
        fail_replay(&lease, AttemptOutcome::Failed, done.clone()).unwrap(),
        done
    );
    assert!(matches!(
        fail_replay(&lease, AttemptOutcome::Completed, done.clone()),
        Err(EngineError::Conflict {
            operation: "fail",
            ..
        })
    ));
    assert!(matches!(
        fail_replay(&lease, AttemptOutcome::Expired, done),
        Err(EngineError::LeaseLost { .. })
    ));
}

#[test]
fn renew_refusals_tell_cancel_from_loss() {
    let lease = LeaseToken::new(id(), 1, 5);
    let cancelled = AttemptFacts {
        nonce: 5,
        outcome: Some(AttemptOutcome::Cancelled),
    };
    assert_eq!(
        renew_refusal(Some(cancelled), &lease),
        RenewStatus::Cancelled
    );
    let other = AttemptFacts {
        nonce: 6,
        ..cancelled
    };
    assert_eq!(renew_refusal(Some(other), &lease), RenewStatus::Lost);
    assert_eq!(renew_refusal(None, &lease), RenewStatus::Lost);
}

#[test]
fn failures_settle_by_the_retry_policy() {
    let id = id();
    let limits = Limits::default();
    let snap = running(&id, 1);
    let later = settle_failure(&snap, 0, &Failure::retryable("boom"), &limits, NOW);
    let at = NOW.saturating_add(Duration::from_millis(1_000));
    assert_eq!(
        later,
        Settlement {
            state: State::Delayed,
            run_at: Some(at),
            ready_at: Some(at),
            finished_at: None,
            error: "boom".into(),
        }
    );
    let now = settle_failure(
        &snap,
        0,
        &Failure::retry_after("x", Duration::ZERO),
        &limits,
        NOW,
    );
    assert_eq!((now.state, now.ready_at), (State::Waiting, Some(NOW)));
    let last = settle_failure(&running(&id, 3), 0, &Failure::retryable("x"), &limits, NOW);
    assert_eq!((last.state, last.finished_at), (State::Failed, Some(NOW)));
    // Attempts ended by a release are not failures: attempt 3 after one
    // release is the second failure of three.
    let waited = settle_failure(&running(&id, 3), 1, &Failure::retryable("x"), &limits, NOW);
    assert_eq!(waited.state, State::Delayed);
    let fatal = settle_failure(&snap, 0, &Failure::permanent("x"), &limits, NOW);
    assert_eq!(fatal.state, State::Failed);
    let long = "e".repeat(limits.max_error_bytes + 10);
    let clipped = settle_failure(&snap, 0, &Failure::retryable(long), &limits, NOW);
    assert!(clipped.error.len() <= limits.max_error_bytes);
}

#[test]
fn cancel_acts_only_on_unfinished_executions() {
    let id = id();
    let mut snap = running(&id, 1);
    assert!(cancel_acts(&snap).unwrap());
    snap.state = State::Cancelled;
    assert!(!cancel_acts(&snap).unwrap());
    snap.state = State::Completed;
    assert!(matches!(
        cancel_acts(&snap),
        Err(EngineError::Conflict {
            operation: "cancel",
            state: State::Completed,
            ..
        })
    ));
}

#[test]
fn partition_counts_are_recorded_once_and_enforced() {
    let eight = PartitionCount::new(8).unwrap();
    let first = reconcile_partitions(None, Some(eight), "database").unwrap();
    assert_eq!((first.count, first.record), (eight, true));
    let default = reconcile_partitions(None, None, "database").unwrap();
    assert_eq!(default.count, PartitionCount::default());
    let again = reconcile_partitions(Some("8"), None, "database").unwrap();
    assert_eq!((again.count, again.record), (eight, false));
    let differs = reconcile_partitions(Some("8"), Some(PartitionCount::new(4).unwrap()), "schema");
    assert!(
        matches!(&differs, Err(EngineError::Configuration { message }) if message.contains("schema was created with 8")),
        "{differs:?}"
    );
    assert!(matches!(
        reconcile_partitions(Some("eight"), None, "database"),
        Err(EngineError::Corruption { .. })
    ));
}

#[test]
fn ownership_is_a_fair_share() {
    let sixteen = PartitionCount::new(16).unwrap();
    let p = |ns: &[u16]| ns.iter().map(|&n| PartitionId(n)).collect::<Vec<_>>();
    let alone = plan_ownership(sixteen, 1, &[]);
    assert_eq!((alone.share, alone.take), (16, 16));
    let joined = plan_ownership(sixteen, 3, &p(&(0..16).collect::<Vec<_>>()));
    assert_eq!(joined.share, 6);
    assert_eq!(joined.keep, p(&[0, 1, 2, 3, 4, 5]));
    assert_eq!(joined.release.len(), 10);
    assert_eq!(joined.take, 0);
    let short = plan_ownership(sixteen, 2, &p(&[9, 3, 3, 40]));
    assert_eq!(short.keep, p(&[3, 9]));
    assert_eq!((short.take, short.release.len()), (6, 0));
    assert_eq!(
        plan_ownership(sixteen, 0, &[]).share,
        16,
        "at least one node"
    );
}

#[test]
fn pages_end_where_the_overfetch_says() {
    let ids: Vec<ExecutionId> = (0..3).map(|_| id()).collect();
    let (items, next) = page_from_overfetch(ids.clone(), 2, |i| i);
    assert_eq!(items, ids[..2]);
    assert_eq!(next, Some(ListCursor::after(&ids[1])));
    let (items, next) = page_from_overfetch(ids.clone(), 3, |i| i);
    assert_eq!((items.len(), next), (3, None));
}

#[test]
fn claims_go_out_by_priority_then_readiness_then_id() {
    let claim = |id: &ExecutionId| Claim {
        session: None,
        version: None,
        id: id.clone(),
        namespace: Namespace::new("n").unwrap(),
        lane: Lane::new("l").unwrap(),
        kind: Kind::new("k").unwrap(),
        payload: Vec::new(),
        attempt: 1,
        lease: LeaseToken::new(id.clone(), 1, 1),
        lease_expires_at: NOW,
        deadline: None,
        tags: BTreeMap::new(),
        upstream: BTreeMap::new(),
        waits: Vec::new(),
        signals: Vec::new(),
        steps: BTreeMap::new(),
    };
    let mut ids: Vec<ExecutionId> = (0..4).map(|_| id()).collect();
    ids.sort_by_key(|i| i.uuid());
    let order = order_claims(vec![
        (0, 5, claim(&ids[0])),
        (1, 9, claim(&ids[1])),
        (0, 5, claim(&ids[3])),
        (0, 1, claim(&ids[2])),
    ]);
    let got: Vec<_> = order.into_iter().map(|c| c.id).collect();
    assert_eq!(
        got,
        vec![
            ids[1].clone(),
            ids[2].clone(),
            ids[0].clone(),
            ids[3].clone()
        ]
    );
}

#[test]
fn renew_outcomes_keep_request_order_and_expire_only_the_renewed() {
    let (a, b) = (LeaseToken::new(id(), 1, 1), LeaseToken::new(id(), 1, 2));
    let out = renew_outcomes(
        vec![a.clone(), b.clone()],
        [RenewStatus::Renewed, RenewStatus::Lost],
        NOW,
    );
    assert_eq!((out[0].lease.clone(), out[0].expires_at), (a, Some(NOW)));
    assert_eq!((out[1].lease.clone(), out[1].expires_at), (b, None));
    assert_eq!(out[1].status, RenewStatus::Lost);
}

#[test]
fn cancel_reasons_are_clipped_and_refused_with_nul() {
    let limits = Limits::default();
    assert_eq!(cancel_reason(&limits, None).unwrap(), None);
    let long = "r".repeat(limits.max_error_bytes + 5);
    let clipped = cancel_reason(&limits, Some(long)).unwrap().unwrap();
    assert_eq!(clipped.len(), limits.max_error_bytes);
    assert!(matches!(
        cancel_reason(&limits, Some("a\0b".into())),
        Err(EngineError::InvalidInput {
            field: "reason",
            ..
        })
    ));
}

#[test]
fn parents_are_checked_and_give_their_children_a_root() {
    use crate::raw::PreparedExecution;
    let count = PartitionCount::new(4).unwrap();
    let ns = Namespace::new("n").unwrap();
    let (root_parent, child_parent, missing) = (id(), id(), id());
    let deep_root = id();
    let new = |parent: &ExecutionId| {
        crate::NewExecution::new(
            ns.clone(),
            Lane::new("l").unwrap(),
            Kind::new("k").unwrap(),
            vec![],
        )
        .with_parent(parent.clone())
    };
    let rows = PreparedExecution::prepare_batch(
        vec![new(&root_parent), new(&child_parent), new(&root_parent)],
        &Limits::default(),
        NOW,
        count,
    )
    .unwrap();
    assert_eq!(parents_named(&rows).len(), 2, "distinct parents");
    let mut found = std::collections::HashMap::new();
    found.insert(
        root_parent.clone(),
        ParentFacts {
            namespace: ns.clone(),
            root: None,
        },
    );
    found.insert(
        child_parent.clone(),
        ParentFacts {
            namespace: ns.clone(),
            root: Some(deep_root.clone()),
        },
    );
    let roots = check_parents(&rows, &found).unwrap();
    assert_eq!(
        roots[&root_parent], root_parent,
        "a root parent is its children's root"
    );
    assert_eq!(roots[&child_parent], deep_root, "else the parent's root");
    let rows =
        PreparedExecution::prepare_batch(vec![new(&missing)], &Limits::default(), NOW, count)
            .unwrap();
    assert!(matches!(
        check_parents(&rows, &found),
        Err(EngineError::InvalidInput {
            field: "parent",
            ..
        })
    ));
    found.insert(
        missing.clone(),
        ParentFacts {
            namespace: Namespace::new("other").unwrap(),
            root: None,
        },
    );
    assert!(matches!(
        check_parents(&rows, &found),
        Err(EngineError::InvalidInput {
            field: "parent",
            ..
        })
    ));
}

#[test]
fn a_cascade_step_cancels_live_children_and_keeps_its_place() {
    let node = id();
    let kids: Vec<ExecutionId> = (0..3).map(|_| id()).collect();
    let facts = |states: [State; 3], parents: [bool; 3]| -> Vec<ChildFacts> {
        kids.iter()
            .zip(states.iter().zip(parents))
            .map(|(k, (s, p))| ChildFacts {
                id: k.clone(),
                state: *s,
                attempts: 1,
                has_children: p,
                has_dependents: false,
            })
            .collect()
    };
    let item = crate::raw::cascade::CascadeItem::below(node.clone());
    let page = facts(
        [State::Running, State::Completed, State::Delayed],
        [false, true, false],
    );
    // A full page keeps the node's place after its last child, then walks
    // below the child that has children.
    let step = cascade_page(&item, &page, 3);
    assert_eq!(step.cancel, vec![0, 2]);
    assert_eq!(
        step.push,
        vec![
            crate::raw::cascade::CascadeItem {
                node: node.clone(),
                after: Some(kids[2].clone()),
            },
            crate::raw::cascade::CascadeItem::below(kids[1].clone()),
        ]
    );
    // A short page ends the node.
    let step = cascade_page(&item, &page, 4);
    assert_eq!(step.push.len(), 1);
    assert_eq!(step.push[0].after, None);
    assert_eq!(cascade_page(&item, &[], 5), CascadeStep::default());
}

#[test]
fn a_cascade_reason_names_the_ancestor_and_is_clipped() {
    let a = id();
    let limits = Limits::default();
    assert_eq!(
        cascade_reason(&limits, &a, None),
        format!("cancelled with its ancestor {a}")
    );
    assert_eq!(
        cascade_reason(&limits, &a, Some("stop")),
        format!("cancelled with its ancestor {a}: stop")
    );
    let long = "x".repeat(limits.max_error_bytes * 2);
    assert_eq!(
        cascade_reason(&limits, &a, Some(&long)).len(),
        limits.max_error_bytes
    );
}

#[test]
fn children_finishing_count_down_and_release_a_blocked_parent_at_zero() {
    assert_eq!(children_finished(State::Blocked, 3, 1, None), (2, false));
    assert_eq!(children_finished(State::Blocked, 3, 3, None), (0, true));
    assert_eq!(
        children_finished(State::Running, 1, 1, None),
        (0, false),
        "not waiting"
    );
    assert_eq!(children_finished(State::Cancelled, 1, 1, None), (0, false));
    assert_eq!(
        children_finished(State::Blocked, 0, 2, None),
        (0, true),
        "never below zero"
    );
    let p = crate::DependencyPolicy::default();
    assert_eq!(
        children_finished(State::Blocked, 1, 1, Some((p, 2, 1, 0))),
        (0, false),
        "still waiting on its dependencies"
    );
    assert_eq!(
        children_finished(State::Blocked, 1, 1, Some((p, 2, 2, 0))),
        (0, true),
        "its dependencies were met: blocked on its children"
    );
    assert!(wait_children_blocks(1));
    assert!(!wait_children_blocks(0));
}

#[test]
fn a_replayed_wait_answers_after_a_release_only() {
    let id = id();
    let lease = LeaseToken::new(id.clone(), 1, 7);
    let snap = running(&id, 1);
    assert_eq!(
        wait_children_replay(&lease, AttemptOutcome::Released, snap.clone()).unwrap(),
        snap
    );
    assert!(matches!(
        wait_children_replay(&lease, AttemptOutcome::Completed, snap.clone()),
        Err(EngineError::Conflict { .. })
    ));
    assert!(matches!(
        wait_children_replay(&lease, AttemptOutcome::Cancelled, snap.clone()),
        Err(EngineError::LeaseLost { .. })
    ));
    // Claimed again since: the released lease is lost, not live.
    let mut later = snap;
    later.attempts = 2;
    assert!(matches!(
        wait_children_replay(&lease, AttemptOutcome::Released, later),
        Err(EngineError::LeaseLost { .. })
    ));
}

/// The policy table of the RFC, counter by counter: when each mode is met,
/// when it can no longer be, and what each `on_upstream_failure` does then.
#[test]
fn dependency_verdicts_follow_the_policy_table() {
    use crate::{DependencyMode as M, DependencyPolicy as P, UpstreamFailure as F};
    use DependencyVerdict::*;
    let all = P::new(M::AllOf, F::Skip);
    assert_eq!(judge_dependencies(all, 3, 2, 0), Pending);
    assert_eq!(judge_dependencies(all, 3, 3, 0), Release);
    assert_eq!(judge_dependencies(all, 3, 2, 1), Skip);
    assert_eq!(
        judge_dependencies(all, 3, 0, 1),
        Skip,
        "one failure is enough"
    );
    let any = P::new(M::AnyOf, F::Run);
    assert_eq!(judge_dependencies(any, 3, 0, 2), Pending);
    assert_eq!(judge_dependencies(any, 3, 1, 0), Release);
    assert_eq!(judge_dependencies(any, 3, 0, 3), Run);
    let q = P::new(M::Quorum(2), F::Fail);
    assert_eq!(judge_dependencies(q, 4, 1, 2), Pending);
    assert_eq!(judge_dependencies(q, 4, 2, 2), Release);
    assert_eq!(judge_dependencies(q, 4, 1, 3), Fail);
    assert_eq!(Skip.state(), Some(State::Skipped));
    assert_eq!(Fail.state(), Some(State::Failed));
    assert_eq!(Run.state(), Some(State::Waiting));
    assert!(Skip.finishes() && Fail.finishes() && !Run.finishes() && !Release.finishes());
}

/// Every counter combination that adds up: a pending verdict always has
/// an upstream left to finish, so one more finish always moves it, and
/// released ones never change again.
#[test]
fn a_pending_dependent_always_has_an_upstream_left() {
    use crate::{DependencyMode as M, DependencyPolicy as P, UpstreamFailure as F};
    for total in 1..=6u32 {
        let mut modes = vec![M::AllOf, M::AnyOf];
        modes.extend((1..=total).map(M::Quorum));
        for mode in modes {
            let p = P::new(mode, F::Skip);
            for done in 0..=total {
                for bad in 0..=(total - done) {
                    if judge_dependencies(p, total, done, bad) == DependencyVerdict::Pending {
                        assert!(done + bad < total, "{p} {total} {done} {bad}");
                    }
                }
            }
        }
    }
}

/// `dependency_finished` counts a finished upstream only for a dependent
/// still waiting on its dependencies.
#[test]
fn only_waiting_dependents_count_a_finished_upstream() {
    let facts = DependentFacts {
        id: id(),
        parent: Some(id()),
        state: State::Blocked,
        paused_from: None,
        policy: crate::DependencyPolicy::default(),
        total: 2,
        done: 0,
        bad: 0,
        has_dependents: false,
    };
    let change = dependency_finished(&facts, true).unwrap();
    assert_eq!(
        (change.done, change.bad, change.verdict),
        (1, 0, DependencyVerdict::Pending)
    );
    let change = dependency_finished(&facts, false).unwrap();
    assert_eq!(change.verdict, DependencyVerdict::Skip);
    let released = DependentFacts {
        state: State::Waiting,
        ..facts.clone()
    };
    assert_eq!(dependency_finished(&released, true), None);
    // Blocked again, on its children, after its dependencies were met.
    let on_children = DependentFacts {
        done: 2,
        ..facts.clone()
    };
    assert_eq!(dependency_finished(&on_children, true), None);
    // Paused from waiting on its dependencies: it counts, and only a
    // verdict that finishes it changes its state.
    let paused = DependentFacts {
        state: State::Paused,
        paused_from: Some(State::Blocked),
        ..facts.clone()
    };
    let change = dependency_finished(&paused, true).unwrap();
    assert_eq!(change.done, 1);
    assert_eq!(dependency_settles(&paused, &change), None);
    let change = dependency_finished(
        &DependentFacts {
            done: 1,
            ..paused.clone()
        },
        true,
    )
    .unwrap();
    assert_eq!(change.verdict, DependencyVerdict::Release);
    assert_eq!(dependency_settles(&paused, &change), None);
    let change = dependency_finished(&paused, false).unwrap();
    assert_eq!(dependency_settles(&paused, &change), Some(State::Skipped));
    assert_eq!(dependency_settles(&facts, &change), Some(State::Skipped));
    let paused_waiting = DependentFacts {
        paused_from: Some(State::Waiting),
        ..paused
    };
    assert_eq!(dependency_finished(&paused_waiting, true), None);
}

/// Pause, resume and replay accept the states they name and refuse the rest.
#[test]
fn pause_resume_and_replay_judge_the_state() {
    let x = id();
    for s in State::ALL {
        match check_pause(&x, s) {
            Ok(from) if s == State::Paused => assert_eq!(from, None),
            Ok(from) if s == State::Running => assert_eq!(from, Some(State::Waiting)),
            Ok(from) => assert_eq!(from, Some(s)),
            Err(_) => assert!(s.is_terminal()),
        }
        match check_resume(&x, s) {
            Ok(acts) => assert_eq!(acts, s == State::Paused),
            Err(_) => assert!(s.is_terminal()),
        }
        let replayable = matches!(
            s,
            State::Failed | State::Cancelled | State::Expired | State::Skipped
        );
        assert_eq!(check_replay(&x, s).is_ok(), replayable, "{s}");
    }
    let later = NOW.saturating_add(Duration::from_secs(1));
    assert_eq!(replay_deadline(Some(NOW), NOW), None);
    assert_eq!(replay_deadline(Some(later), NOW), Some(later));
}

/// Resume judges what happened while paused.
#[test]
fn resume_judges_the_waits_kept() {
    let p = crate::DependencyPolicy::default();
    let facts = |from, open_children, deps, signalled| ResumeFacts {
        from,
        run_at: None,
        open_children,
        deps,
        signalled,
    };
    assert_eq!(
        resume_target(&facts(State::Blocked, 2, None, false), NOW),
        State::Blocked
    );
    assert_eq!(
        resume_target(&facts(State::Blocked, 0, None, false), NOW),
        State::Waiting
    );
    let pending = Some((p, 2, 1, 0));
    let met = Some((p, 2, 2, 0));
    assert_eq!(
        resume_target(&facts(State::Blocked, 0, pending, false), NOW),
        State::Blocked
    );
    assert_eq!(
        resume_target(&facts(State::Blocked, 0, met, false), NOW),
        State::Waiting
    );
    assert_eq!(
        resume_target(&facts(State::Blocked, 1, met, false), NOW),
        State::Blocked
    );
    assert_eq!(
        resume_target(&facts(State::Suspended, 0, None, true), NOW),
        State::Waiting
    );
    assert_eq!(
        resume_target(&facts(State::Suspended, 0, None, false), NOW),
        State::Suspended
    );
    assert_eq!(
        resume_target(&facts(State::Waiting, 0, None, false), NOW),
        State::Waiting
    );
}

/// A renew refused because a pause ended the attempt answers `paused`.
#[test]
fn renew_says_paused_for_a_paused_attempt() {
    let lease = LeaseToken::new(id(), 2, 9);
    let ended = |outcome| {
        Some(AttemptFacts {
            nonce: 9,
            outcome: Some(outcome),
        })
    };
    assert_eq!(
        renew_refusal(ended(AttemptOutcome::Paused), &lease),
        crate::RenewStatus::Paused
    );
    assert_eq!(
        renew_refusal(ended(AttemptOutcome::Cancelled), &lease),
        crate::RenewStatus::Cancelled
    );
    assert_eq!(
        renew_refusal(ended(AttemptOutcome::Released), &lease),
        crate::RenewStatus::Lost
    );
}

/// `blocked_on` names dependencies while the policy is pending, children after.
#[test]
fn blocked_executions_say_what_they_wait_for() {
    let p = crate::DependencyPolicy::default();
    assert_eq!(
        blocked_on(State::Blocked, 0, Some((p, 3, 1, 0))),
        Some(WaitingOn::Dependencies(2))
    );
    assert_eq!(
        blocked_on(State::Blocked, 4, Some((p, 3, 3, 0))),
        Some(WaitingOn::Children(4))
    );
    assert_eq!(
        blocked_on(State::Blocked, 4, None),
        Some(WaitingOn::Children(4))
    );
    assert_eq!(blocked_on(State::Waiting, 4, Some((p, 3, 1, 0))), None);
}

/// Per waitpoint the earliest buffered signal; `all` needs every waitpoint,
/// `any` one; a sleep is never satisfied by signals.
#[test]
fn buffered_signals_satisfy_waits_one_per_waitpoint() {
    use crate::WaitCondition::{All, Any};
    let held = [(1, "b"), (2, "a"), (3, "a"), (4, "c")];
    assert_eq!(satisfying(&["a", "b"], All, &held), Some(vec![1, 2]));
    assert_eq!(satisfying(&["a", "z"], All, &held), None);
    assert_eq!(satisfying(&["a", "z"], Any, &held), Some(vec![2]));
    assert_eq!(satisfying(&["z", "y"], Any, &held), None);
    assert_eq!(
        satisfying(&["c", "a", "b"], Any, &held),
        Some(vec![1, 2, 4])
    );
    assert_eq!(satisfying(&[], All, &held), None);
    assert_eq!(timed_out_consumes(&["a", "z"], &held), vec![2]);
    assert_eq!(timed_out_consumes(&["z"], &held), Vec::<u32>::new());
}

/// A repeated key is a duplicate even when terminal; terminal is ignored;
/// beyond the limit is a conflict.
#[test]
fn signals_are_admitted_in_order_key_terminal_limit() {
    let e = id();
    let limits = Limits::default();
    let admit = |state, seen, held| signal_admission(&e, state, seen, held, &limits);
    assert_eq!(
        admit(State::Completed, true, 0).unwrap(),
        SignalAdmission::Duplicate
    );
    assert_eq!(
        admit(State::Completed, false, 0).unwrap(),
        SignalAdmission::Ignored
    );
    assert_eq!(
        admit(State::Running, false, 99).unwrap(),
        SignalAdmission::Store
    );
    assert!(matches!(
        admit(State::Suspended, false, 100),
        Err(EngineError::Conflict {
            operation: "signal",
            ..
        })
    ));
    assert!(check_wait_room(&e, 999, &limits).is_ok());
    assert!(check_wait_room(&e, 1000, &limits).is_err());
}

/// Timeouts: resume, or fail / cancel with a text naming the waitpoints.
#[test]
fn timeouts_do_what_the_suspension_says() {
    use crate::{OnTimeout, SignalName, Suspension, WaitCondition};
    let mut s = Suspension {
        waitpoints: vec![SignalName::new("approval").unwrap()],
        condition: WaitCondition::All,
        timeout_at: Some(NOW),
        on_timeout: OnTimeout::Resume,
    };
    assert_eq!(timeout_verdict(&s), TimeoutVerdict::Resume);
    s.on_timeout = OnTimeout::Fail;
    assert_eq!(
        timeout_verdict(&s),
        TimeoutVerdict::Fail("its wait for signal approval timed out".into())
    );
    s.on_timeout = OnTimeout::Cancel;
    s.waitpoints.push(SignalName::new("payment").unwrap());
    assert_eq!(
        timeout_verdict(&s),
        TimeoutVerdict::Cancel(
            "its wait for signals approval, payment (all of them) timed out".into()
        )
    );
}

/// The stored forms round-trip; a stray letter or a suspended row without
/// its wait is corruption.
#[test]
fn stored_waits_round_trip_strictly() {
    use crate::{SignalName, WaitEnded};
    let names = vec![
        SignalName::new("a").unwrap(),
        SignalName::new("b:c").unwrap(),
    ];
    let text = format_waitpoints(&names);
    assert_eq!(text, "a,b:c");
    let s = stored_suspension(
        "x",
        State::Suspended,
        Some(&text),
        Some("any"),
        Some(5),
        Some("fail"),
    )
    .unwrap()
    .unwrap();
    assert_eq!(s.waitpoints, names);
    assert_eq!(s.condition, crate::WaitCondition::Any);
    assert_eq!(s.timeout_at, Some(Timestamp::from_millis(5)));
    assert_eq!(
        stored_suspension(
            "x",
            State::Waiting,
            Some(&text),
            Some("any"),
            None,
            Some("fail")
        )
        .unwrap(),
        None
    );
    let sleep = stored_suspension(
        "x",
        State::Suspended,
        Some(""),
        Some("all"),
        Some(5),
        Some("resume"),
    )
    .unwrap()
    .unwrap();
    assert!(sleep.waitpoints.is_empty());
    assert!(stored_suspension("x", State::Suspended, None, None, None, None).is_err());
    assert!(
        stored_suspension(
            "x",
            State::Suspended,
            Some("a"),
            Some("most"),
            None,
            Some("fail")
        )
        .is_err()
    );
    let log: String = [WaitEnded::Signalled, WaitEnded::TimedOut]
        .into_iter()
        .map(wait_log_letter)
        .collect();
    assert_eq!(
        parse_wait_log("x", &log).unwrap(),
        vec![WaitEnded::Signalled, WaitEnded::TimedOut]
    );
    assert!(parse_wait_log("x", "sx").is_err());
}

/// Timeouts are whole milliseconds from 1 ms; a sleep needs one.
#[test]
fn suspend_requests_are_checked() {
    use crate::SuspendRequest;
    assert!(
        SuspendRequest::sleep(Duration::from_millis(1))
            .validate()
            .is_ok()
    );
    assert!(
        SuspendRequest::sleep(Duration::from_micros(999))
            .validate()
            .is_err()
    );
    assert!(SuspendRequest::sleep(Duration::ZERO).validate().is_err());
    assert!(
        SuspendRequest::sleep(SuspendRequest::MAX_TIMEOUT)
            .validate()
            .is_ok()
    );
    let too_long = SuspendRequest::MAX_TIMEOUT + Duration::from_millis(1);
    assert!(SuspendRequest::sleep(too_long).validate().is_err());
}

/// A done step is final (the same output is a no-op); a failed or new one
/// takes the record, counting failures; new steps stop at the limit.
#[test]
fn step_records_follow_the_rules() {
    use crate::{StepName, StepOutcome, StepStatus};
    let e = id();
    let name = StepName::new("charge").unwrap();
    let limits = Limits::default();
    let judge = |existing, outcome: &StepOutcome, held| {
        judge_step(&e, State::Running, &name, existing, outcome, held, &limits)
    };
    let done = StepOutcome::Done(b"1".to_vec());
    let failed = StepOutcome::Failed("boom".into());
    assert_eq!(
        judge(None, &done, 0).unwrap(),
        StepWrite::Write {
            status: StepStatus::Done,
            failures: 0
        }
    );
    assert_eq!(
        judge(None, &failed, 999).unwrap(),
        StepWrite::Write {
            status: StepStatus::Failed,
            failures: 1
        }
    );
    assert!(matches!(
        judge(None, &done, 1000),
        Err(EngineError::Conflict {
            operation: "record_step",
            ..
        })
    ));
    let stored_done = StepFacts {
        status: StepStatus::Done,
        output: Some(b"1"),
        failures: 2,
    };
    assert_eq!(
        judge(Some(stored_done), &done, 1000).unwrap(),
        StepWrite::Unchanged
    );
    assert!(judge(Some(stored_done), &StepOutcome::Done(b"2".to_vec()), 1).is_err());
    assert!(judge(Some(stored_done), &failed, 1).is_err());
    let stored_failed = StepFacts {
        status: StepStatus::Failed,
        output: None,
        failures: 2,
    };
    assert_eq!(
        judge(Some(stored_failed), &failed, 1000).unwrap(),
        StepWrite::Write {
            status: StepStatus::Failed,
            failures: 3
        }
    );
    assert_eq!(
        judge(Some(stored_failed), &done, 1000).unwrap(),
        StepWrite::Write {
            status: StepStatus::Done,
            failures: 2
        }
    );
}

#[test]
fn state_writes_are_judged_by_the_value_held_and_the_key_limit() {
    let e = id();
    let key = crate::StateKey::new("k").unwrap();
    let limits = Limits {
        max_state_keys: 2,
        ..Limits::default()
    };
    let judge = |existing: Option<&[u8]>, value: Option<&[u8]>, held| {
        judge_state(&e, State::Running, &key, existing, value, held, &limits)
    };
    assert_eq!(judge(None, None, 0).unwrap(), StateWrite::Unchanged);
    assert_eq!(judge(Some(b"1"), None, 1).unwrap(), StateWrite::Clear);
    assert_eq!(
        judge(Some(b"1"), Some(b"1"), 1).unwrap(),
        StateWrite::Unchanged
    );
    assert_eq!(judge(Some(b"1"), Some(b"2"), 2).unwrap(), StateWrite::Set);
    assert_eq!(judge(None, Some(b"2"), 1).unwrap(), StateWrite::Set);
    let err = judge(None, Some(b"2"), 2).unwrap_err();
    assert!(
        matches!(
            &err,
            EngineError::Conflict {
                operation: "set_state",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("2 state keys"), "{err}");
}

#[test]
fn a_status_change_takes_the_next_version_and_a_repeat_keeps_it() {
    assert_eq!(status_version(None, 0, b"{}"), (true, 1));
    assert_eq!(status_version(Some(b"{}"), 1, b"{}"), (false, 1));
    assert_eq!(status_version(Some(b"{}"), 1, b"[]"), (true, 2));
}

#[test]
fn progress_keeps_the_newest_frames_up_to_the_limit() {
    let limits = Limits {
        max_progress_frames: 3,
        ..Limits::default()
    };
    assert_eq!(first_kept_frame(1, &limits), 1);
    assert_eq!(first_kept_frame(3, &limits), 1);
    assert_eq!(first_kept_frame(4, &limits), 2);
    assert_eq!(first_kept_frame(10, &limits), 8);
}

#[test]
fn keep_for_prefers_the_lane_then_the_namespace() {
    let rules = [
        ("shop", ALL_LANES, 10_000u64),
        ("shop", "mail", 99_000),
        ("other", "mail", 5_000),
    ];
    assert_eq!(keep_for(rules, "shop", "mail"), Some(99_000));
    assert_eq!(keep_for(rules, "shop", "pay"), Some(10_000));
    assert_eq!(keep_for(rules, "other", "mail"), Some(5_000));
    assert_eq!(keep_for(rules, "other", "pay"), None);
    assert_eq!(keep_for(rules, "none", "mail"), None);
    // The lane rule wins whichever order the rules come in.
    let reversed = [("shop", "mail", 99_000u64), ("shop", ALL_LANES, 10_000)];
    assert_eq!(keep_for(reversed, "shop", "mail"), Some(99_000));
}

#[test]
fn trim_verdict_trims_only_what_the_rule_in_force_says_is_due() {
    // Due under the default.
    assert_eq!(trim_verdict(None, 100, 1_000, 1_100), TrimVerdict::Trim);
    // A longer rule since its stamp: stamped with it, not trimmed.
    assert_eq!(
        trim_verdict(Some(500), 100, 1_000, 1_100),
        TrimVerdict::Later {
            keep: Some(500),
            since: 1_000
        }
    );
    // The rule it was stamped with was removed and the default is longer.
    assert_eq!(
        trim_verdict(None, 100, 1_000, 1_050),
        TrimVerdict::Later {
            keep: None,
            since: 1_000
        }
    );
    assert_eq!(trim_verdict(Some(50), 100, 1_000, 1_050), TrimVerdict::Trim);
    // A keep beyond i64 saturates: never due.
    assert_eq!(
        trim_verdict(Some(u64::MAX), 1, 5, i64::MAX - 1),
        TrimVerdict::Later {
            keep: Some(u64::MAX),
            since: 5
        }
    );
    assert_eq!(
        trim_relook(Some(7), 2_000),
        TrimVerdict::Later {
            keep: Some(7),
            since: 2_000
        }
    );
}

#[test]
fn retention_keeps_are_checked_and_stored_rules_read_back() {
    assert_eq!(check_keep(Duration::from_secs(1)).unwrap(), 1_000);
    assert!(check_keep(Duration::from_millis(999)).is_err());
    assert!(check_keep(RetentionRule::MAX_KEEP + Duration::from_secs(1)).is_err());
    assert!(check_keep(Duration::from_nanos(1_500_000_100)).is_err());
    let rule = stored_retention_rule("shop", ALL_LANES, 60_000).unwrap();
    assert_eq!(rule.lane, None);
    assert_eq!(rule.keep, Duration::from_secs(60));
    let rule = stored_retention_rule("shop", "mail", 60_000).unwrap();
    assert_eq!(rule.lane.unwrap().as_str(), "mail");
    for (ns, lane, keep) in [("", "", 60_000), ("shop", "a b", 60_000), ("shop", "", 5)] {
        let err = stored_retention_rule(ns, lane, keep).unwrap_err();
        assert!(matches!(err, EngineError::Corruption { .. }), "{err:?}");
    }
    let mut rules = vec![
        stored_retention_rule("b", ALL_LANES, 1_000).unwrap(),
        stored_retention_rule("a", "z", 1_000).unwrap(),
        stored_retention_rule("a", ALL_LANES, 1_000).unwrap(),
        stored_retention_rule("a", "m", 1_000).unwrap(),
    ];
    sort_retention_rules(&mut rules);
    let order: Vec<(String, Option<String>)> = rules
        .iter()
        .map(|r| {
            (
                r.namespace.to_string(),
                r.lane.as_ref().map(Lane::to_string),
            )
        })
        .collect();
    assert_eq!(
        order,
        vec![
            ("a".into(), None),
            ("a".into(), Some("m".into())),
            ("a".into(), Some("z".into())),
            ("b".into(), None)
        ]
    );
}
