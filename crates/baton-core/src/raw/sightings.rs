//! How often a backend writes the worker registry: every claim and renew
//! sees a worker, but only some sightings are written, so the registry
//! costs the hot path almost nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::time::Timestamp;

/// The sightings this process wrote, per worker key.
#[derive(Debug, Default)]
pub struct Sightings {
    written: Mutex<HashMap<String, (Timestamp, u64)>>,
}

/// Most keys remembered before old ones are forgotten.
const MAX_KEYS: usize = 10_000;

impl Sightings {
    /// Whether a sighting of `key` (a worker, with its namespace for a
    /// claim) whose recorded facts hash to `facts`, at `now`, should be
    /// written: the first one, one whose facts changed, or one at least
    /// `every` after the last written. Answering true counts as written.
    ///
    /// ```
    /// use std::time::Duration;
    /// use baton_core::Timestamp;
    /// let s = baton_core::raw::Sightings::default();
    /// let t = Timestamp::from_millis(1_000_000);
    /// let every = Duration::from_secs(10);
    /// assert!(s.due("ns/w1", 7, t, every));
    /// assert!(!s.due("ns/w1", 7, t.saturating_add(Duration::from_secs(5)), every));
    /// assert!(s.due("ns/w1", 8, t.saturating_add(Duration::from_secs(5)), every), "changed");
    /// assert!(s.due("ns/w1", 8, t.saturating_add(Duration::from_secs(16)), every));
    /// ```
    pub fn due(&self, key: &str, facts: u64, now: Timestamp, every: Duration) -> bool {
        let Ok(mut map) = self.written.lock() else {
            return true;
        };
        let due = match map.get(key) {
            Some(&(at, seen)) => seen != facts || at.saturating_add(every) <= now || now < at,
            None => true,
        };
        if due {
            if map.len() >= MAX_KEYS {
                map.retain(|_, (at, _)| at.saturating_add(every) > now);
                if map.len() >= MAX_KEYS {
                    map.clear();
                }
            }
            map.insert(key.to_owned(), (now, facts));
        }
        due
    }
}

impl Sightings {
    /// [`due`](Self::due) for the worker of a claim: recorded by namespace
    /// and worker, with its lanes, capabilities and version range, every
    /// sixth of `ttl` (at once when one of those changed).
    pub fn claim_due(&self, request: &crate::ClaimRequest, now: Timestamp, ttl: Duration) -> bool {
        let key = format!("{}/{}", request.namespace, request.worker_id);
        let mut lanes: Vec<&str> = request.lanes.iter().map(|l| l.as_str()).collect();
        lanes.sort_unstable();
        let facts = hash_of(&(lanes, &request.capabilities, request.versions.to_stored()));
        self.due(&key, facts, now, ttl / 6)
    }

    /// [`due`](Self::due) for the worker of a renew: recorded by worker,
    /// with how many leases it presented, every sixth of `ttl`.
    pub fn renew_due(&self, request: &crate::RenewRequest, now: Timestamp, ttl: Duration) -> bool {
        let key = format!(" renew/{}", request.worker_id);
        self.due(&key, hash_of(&request.leases.len()), now, ttl / 6)
    }
}

fn hash_of<T: std::hash::Hash>(value: &T) -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}
