//! Process-wide counters a backend adds to as it works and a server
//! exposes as metrics (they count what this process did).

use std::sync::atomic::{AtomicU64, Ordering};

static PASSED_BY_LIMITS: AtomicU64 = AtomicU64::new(0);

/// Counts `n` waiting executions a claim passed over because a limit had
/// no room for their key ([`rules::Admission`](crate::raw::rules::Admission)
/// answered why).
pub fn passed_by_limits(n: u64) {
    if n > 0 {
        PASSED_BY_LIMITS.fetch_add(n, Ordering::Relaxed);
    }
}

/// How many waiting executions claims in this process passed over because
/// a limit had no room for their key, since it started.
pub fn passed_by_limits_total() -> u64 {
    PASSED_BY_LIMITS.load(Ordering::Relaxed)
}
