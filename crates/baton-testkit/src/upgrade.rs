//! The halves of an upgrade test that every SQL backend shares: attempts
//! written by a build, then read and worked on by the build after a
//! migration. Each backend's test sits between them: it takes its database
//! back to the version before by SQL, reopens it (running the migration)
//! and checks its own tables.

use baton_core::{
    AdminBackend, AttemptOutcome, AttemptRecord, Claim, ClaimRequest, Failure, Kind, Lane,
    Namespace, NewExecution, WorkerId,
};

/// What [`attempts_before_an_upgrade`] left: an execution that failed for
/// good, one running under its lease, and the attempt list of each (in
/// that order).
#[derive(Debug)]
pub struct AttemptsBefore {
    /// The execution whose only attempt failed.
    pub failed: Claim,
    /// The execution whose attempt is in flight.
    pub running: Claim,
    /// The attempts of `failed`, then of `running`, as read before.
    pub history: [Vec<AttemptRecord>; 2],
}

fn claim_request(ns: &Namespace) -> ClaimRequest {
    ClaimRequest::new(
        ns.clone(),
        Lane::new("main").unwrap(),
        WorkerId::new("w").unwrap(),
        1,
    )
}

async fn claim_one(b: &dyn AdminBackend, ns: &Namespace) -> Claim {
    let mut claims = b.claim(claim_request(ns)).await.unwrap();
    assert_eq!(claims.len(), 1, "one execution to claim in {ns}");
    claims.remove(0)
}

/// Creates two executions in namespace `ns` (lane `main`), fails the
/// first for good and leaves the second running.
pub async fn attempts_before_an_upgrade(b: &dyn AdminBackend, ns: &str) -> AttemptsBefore {
    let namespace = Namespace::new(ns).unwrap();
    let exec = || {
        NewExecution::new(
            namespace.clone(),
            Lane::new("main").unwrap(),
            Kind::new("job").unwrap(),
            b"{}".to_vec(),
        )
    };
    b.create(vec![exec(), exec()]).await.unwrap();
    let failed = claim_one(b, &namespace).await;
    b.fail(&failed.lease, Failure::permanent("boom"))
        .await
        .unwrap();
    let running = claim_one(b, &namespace).await;
    let history = [
        b.attempts(&failed.id).await.unwrap(),
        b.attempts(&running.id).await.unwrap(),
    ];
    AttemptsBefore {
        failed,
        running,
        history,
    }
}

/// On the upgraded backend: every attempt reads as before; the run in
/// flight completes through its lease and its attempt reads completed; the
/// failed execution, replayed and claimed again, keeps its first attempt
/// unchanged and has a second, completed one.
pub async fn attempts_after_an_upgrade(b: &dyn AdminBackend, before: &AttemptsBefore) {
    let ids = [&before.failed.id, &before.running.id];
    for (id, was) in ids.iter().zip(&before.history) {
        assert_eq!(&b.attempts(id).await.unwrap(), was, "{id} reads as before");
    }

    b.complete(&before.running.lease, b"2".to_vec())
        .await
        .unwrap();
    let ran = b.attempts(&before.running.id).await.unwrap();
    assert_eq!(ran.len(), 1);
    assert_eq!(ran[0].outcome, Some(AttemptOutcome::Completed));

    b.replay(&before.failed.id).await.unwrap();
    let again = claim_one(b, &before.failed.namespace).await;
    assert_eq!(again.id, before.failed.id);
    b.complete(&again.lease, b"3".to_vec()).await.unwrap();
    let replayed = b.attempts(&before.failed.id).await.unwrap();
    assert_eq!(
        replayed
            .iter()
            .map(|a| (a.number, a.outcome))
            .collect::<Vec<_>>(),
        vec![
            (1, Some(AttemptOutcome::Failed)),
            (2, Some(AttemptOutcome::Completed)),
        ]
    );
    assert_eq!(
        replayed[0], before.history[0][0],
        "the first attempt is unchanged"
    );
}
