//! Routing verdicts: where a session's work lives, who may claim it, how
//! long a session lock lasts, and which claims take a versioned execution.

use std::time::Duration;

use crate::id::{PartitionCount, PartitionId};
use crate::model::{SessionLock, Version, VersionRange};
use crate::names::{Namespace, SessionName, WorkerId};
use crate::time::Timestamp;

/// The partition every execution of session `session` (in `namespace`)
/// is created in, and where its lock lives: a backend whose atomic unit is
/// one partition (Valkey) checks and takes the lock in the claim's own
/// call. FNV-1a over the namespace and session, each followed by a zero
/// byte: stable across processes and releases.
///
/// ```
/// use baton_core::{Namespace, PartitionCount, SessionName};
/// use baton_core::raw::rules::session_partition;
/// let count = PartitionCount::new(16).unwrap();
/// let ns = Namespace::new("shop").unwrap();
/// let s = SessionName::new("chat-1").unwrap();
/// assert_eq!(session_partition(&ns, &s, count), session_partition(&ns, &s, count));
/// assert!(session_partition(&ns, &s, count).get() < 16);
/// ```
pub fn session_partition(
    namespace: &Namespace,
    session: &SessionName,
    count: PartitionCount,
) -> PartitionId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in namespace
        .as_str()
        .bytes()
        .chain([0u8])
        .chain(session.as_str().bytes())
        .chain([0u8])
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    PartitionId((h % u64::from(count.get())) as u16)
}

/// Whether `worker` may claim work of a session whose stored lock is
/// `lock` (`None`: no lock recorded) at `now`: when nobody holds it, when
/// the lock lapsed, or when `worker` holds it.
///
/// ```
/// use baton_core::{SessionLock, Timestamp, WorkerId};
/// use baton_core::raw::rules::session_claimable;
/// let a = WorkerId::new("a").unwrap();
/// let b = WorkerId::new("b").unwrap();
/// let lock = SessionLock { worker_id: a.clone(), expires_at: Timestamp::from_millis(100) };
/// assert!(session_claimable(Some(&lock), &a, Timestamp::from_millis(50)));
/// assert!(!session_claimable(Some(&lock), &b, Timestamp::from_millis(50)));
/// assert!(session_claimable(Some(&lock), &b, Timestamp::from_millis(100)));
/// assert!(session_claimable(None, &b, Timestamp::from_millis(50)));
/// ```
pub fn session_claimable(lock: Option<&SessionLock>, worker: &WorkerId, now: Timestamp) -> bool {
    match lock {
        None => true,
        Some(l) => l.worker_id == *worker || l.expires_at <= now,
    }
}

/// When a session lock lapses after a claim or renew at `now` of the
/// session's work under a lease until `lease_expires`, by a worker that
/// keeps idle sessions for `idle`, the lock having lapsed at `current`
/// before (`None`: a new lock, or one another worker held): the latest of
/// the three, so a lock never shrinks while its owner works and lasts
/// `idle` past the owner's last claim or renew of the session.
///
/// ```
/// use std::time::Duration;
/// use baton_core::Timestamp;
/// use baton_core::raw::rules::session_lock_until;
/// let t = Timestamp::from_millis;
/// let idle = Duration::from_secs(30);
/// assert_eq!(session_lock_until(None, t(0), t(10_000), idle), t(30_000));
/// assert_eq!(session_lock_until(None, t(0), t(60_000), idle), t(60_000));
/// assert_eq!(session_lock_until(Some(t(90_000)), t(0), t(60_000), idle), t(90_000));
/// ```
pub fn session_lock_until(
    current: Option<Timestamp>,
    now: Timestamp,
    lease_expires: Timestamp,
    idle: Duration,
) -> Timestamp {
    let until = now.saturating_add(idle).max(lease_expires);
    current.map_or(until, |c| c.max(until))
}

/// Whether a claim accepting `range` may take an execution of `version`
/// ([`VersionRange::accepts`]), for backends that compare stored
/// [sort keys](Version::sort_key): `key` is the execution's stored key
/// (`None`: no version), `min`/`max` the range's keys.
///
/// ```
/// use baton_core::{Version, VersionRange};
/// use baton_core::raw::rules::{version_bounds, version_key_accepted};
/// let v = |t: &str| t.parse::<Version>().unwrap();
/// let (min, max) = version_bounds(&VersionRange::between(Some(v("2")), None));
/// assert!(version_key_accepted(Some(&v("2.5").sort_key()), min.as_deref(), max.as_deref()));
/// assert!(!version_key_accepted(Some(&v("1.9").sort_key()), min.as_deref(), max.as_deref()));
/// assert!(version_key_accepted(None, min.as_deref(), max.as_deref()));
/// ```
pub fn version_key_accepted(key: Option<&str>, min: Option<&str>, max: Option<&str>) -> bool {
    let Some(k) = key else { return true };
    min.is_none_or(|m| k >= m) && max.is_none_or(|m| k <= m)
}

/// The sort keys of `range`'s ends, as a claim passes them to a backend's
/// filter (`None`: open).
pub fn version_bounds(range: &VersionRange) -> (Option<String>, Option<String>) {
    (
        range.min.as_ref().map(Version::sort_key),
        range.max.as_ref().map(Version::sort_key),
    )
}

/// A stored version (its text as given) read back strictly.
pub fn stored_version(
    ctx: &str,
    text: Option<&str>,
) -> Result<Option<Version>, crate::error::EngineError> {
    text.map(|t| {
        Version::new(t)
            .map_err(|_| crate::error::EngineError::corruption(format!("{ctx}: version {t:?}")))
    })
    .transpose()
}

/// A stored session name read back strictly.
pub fn stored_session(
    ctx: &str,
    text: Option<&str>,
) -> Result<Option<SessionName>, crate::error::EngineError> {
    text.map(|t| crate::raw::stored::parse("session", ctx, t))
        .transpose()
}

/// The sentence `explain` says about waiting work of a session another
/// worker holds.
pub fn session_detail(session: &SessionName, lock: &SessionLock) -> String {
    format!(
        "eligible, but session {session} is owned by worker {} until {} (longer while it \
         claims or renews the session's work); only its claims take the session's work until \
         then",
        lock.worker_id, lock.expires_at
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lock_never_shrinks_and_lapses_at_its_instant() {
        let t = Timestamp::from_millis;
        let idle = Duration::from_secs(5);
        let until = session_lock_until(None, t(1_000), t(3_000), idle);
        assert_eq!(until, t(6_000), "idle past the claim beats a short lease");
        assert_eq!(
            session_lock_until(Some(until), t(2_000), t(4_000), idle),
            t(7_000)
        );
        assert_eq!(
            session_lock_until(Some(t(50_000)), t(2_000), t(4_000), idle),
            t(50_000)
        );
        let a = WorkerId::new("a").unwrap();
        let b = WorkerId::new("b").unwrap();
        let lock = SessionLock {
            worker_id: a.clone(),
            expires_at: t(6_000),
        };
        assert!(!session_claimable(Some(&lock), &b, t(5_999)));
        assert!(session_claimable(Some(&lock), &b, t(6_000)));
        assert!(session_claimable(Some(&lock), &a, t(9_000)));
    }

    #[test]
    fn sessions_spread_over_partitions_and_stay_put() {
        let count = PartitionCount::new(16).unwrap();
        let ns = Namespace::new("shop").unwrap();
        let mut used = std::collections::BTreeSet::new();
        for i in 0..200 {
            let s = SessionName::new(format!("user-{i}")).unwrap();
            let p = session_partition(&ns, &s, count);
            assert_eq!(p, session_partition(&ns, &s, count));
            used.insert(p.get());
        }
        assert_eq!(used.len(), 16, "200 sessions reach every partition");
        // The namespace is part of the key: the same session name in two
        // namespaces is two sessions.
        let other = Namespace::new("shop2").unwrap();
        let differ = (0..50).any(|i| {
            let s = SessionName::new(format!("user-{i}")).unwrap();
            session_partition(&ns, &s, count) != session_partition(&other, &s, count)
        });
        assert!(differ);
    }

    #[test]
    fn version_keys_filter_like_ranges() {
        let v = |t: &str| t.parse::<Version>().unwrap();
        let ranges = [
            VersionRange::any(),
            VersionRange::between(Some(v("2")), None),
            VersionRange::between(None, Some(v("2.5"))),
            VersionRange::between(Some(v("1.1")), Some(v("1.1"))),
        ];
        for range in &ranges {
            let (min, max) = version_bounds(range);
            for t in ["1", "1.1", "1.1.0.0", "2", "2.5", "2.5.1", "10"] {
                let version = v(t);
                assert_eq!(
                    version_key_accepted(Some(&version.sort_key()), min.as_deref(), max.as_deref()),
                    range.accepts(Some(&version)),
                    "{t} in {range}"
                );
            }
            assert!(version_key_accepted(None, min.as_deref(), max.as_deref()));
        }
    }
}
