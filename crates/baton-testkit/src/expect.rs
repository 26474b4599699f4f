//! Small constructors and the assertions every case uses: unwrap a call
//! with a message, or check that it failed the way the contract says.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::time::Duration;

use baton_core::*;

/// A retry policy of `max_attempts` without backoff: a retried execution
/// is claimable again at once.
pub fn no_backoff(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        backoff: Backoff::NONE,
    }
}

/// A [`Duration`] of `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A lane that must be valid.
pub fn lane(name: &str) -> Lane {
    Lane::new(name).expect("valid lane")
}

/// A kind that must be valid.
pub fn kind(name: &str) -> Kind {
    Kind::new(name).expect("valid kind")
}

/// A worker id that must be valid.
pub fn worker(name: &str) -> WorkerId {
    WorkerId::new(name).expect("valid worker id")
}

/// A tag key that must be valid.
pub fn tag(name: &str) -> TagKey {
    TagKey::new(name).expect("valid tag key")
}

/// A capability that must be valid.
pub fn cap(name: &str) -> CapabilityName {
    CapabilityName::new(name).expect("valid capability")
}

/// An idempotency key that must be valid.
pub fn ikey(name: &str) -> IdempotencyKey {
    IdempotencyKey::new(name).expect("valid idempotency key")
}

/// A step name that must be valid.
pub fn step_name(name: &str) -> StepName {
    StepName::new(name).expect("valid step name")
}

/// A signal (waitpoint) name that must be valid.
pub fn signal_name(name: &str) -> SignalName {
    SignalName::new(name).expect("valid signal name")
}

/// A set of capabilities.
pub fn caps(names: &[&str]) -> BTreeSet<CapabilityName> {
    names.iter().map(|n| cap(n)).collect()
}

/// Unwraps a backend answer, naming the operation when it failed.
#[track_caller]
pub fn ok<T>(result: Result<T>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("{what} failed: {err} ({err:?})"),
    }
}

/// Unwraps a backend error, naming the operation when it succeeded.
#[track_caller]
pub fn expect_err<T: Debug>(result: Result<T>, what: &str) -> EngineError {
    match result {
        Ok(value) => panic!("{what}: expected an error, got Ok({value:?})"),
        Err(err) => err,
    }
}

/// Asserts an [`EngineError::InvalidInput`] and answers the field it names.
#[track_caller]
pub fn expect_invalid<T: Debug>(result: Result<T>, what: &str) -> &'static str {
    let err = expect_err(result, what);
    assert!(
        matches!(err, EngineError::InvalidInput { .. }),
        "{what}: expected InvalidInput, got {err:?}"
    );
    match err {
        EngineError::InvalidInput { field, .. } => field,
        _ => unreachable!(),
    }
}

/// Asserts an [`EngineError::NotFound`] naming `id`.
#[track_caller]
pub fn expect_not_found<T: Debug>(result: Result<T>, id: &ExecutionId, what: &str) {
    let err = expect_err(result, what);
    assert!(
        matches!(&err, EngineError::NotFound { id: got } if got == id),
        "{what}: expected NotFound for {id}, got {err:?}"
    );
}

/// Asserts an [`EngineError::LeaseLost`] naming `id`.
#[track_caller]
pub fn expect_lease_lost<T: Debug>(result: Result<T>, id: &ExecutionId, what: &str) {
    let err = expect_err(result, what);
    assert!(
        matches!(&err, EngineError::LeaseLost { id: got, .. } if got == id),
        "{what}: expected LeaseLost for {id}, got {err:?}"
    );
}

/// Asserts an [`EngineError::Conflict`] naming `id`, the refused `operation`
/// and the execution's current `state`.
#[track_caller]
pub fn expect_conflict<T: Debug>(
    result: Result<T>,
    id: &ExecutionId,
    operation: &str,
    state: State,
    what: &str,
) {
    let err = expect_err(result, what);
    assert!(
        matches!(
            &err,
            EngineError::Conflict { id: got, operation: op, state: st, .. }
                if got == id && *op == operation && *st == state
        ),
        "{what}: expected Conflict {{ {id}, {operation}, {state} }}, got {err:?}"
    );
}
