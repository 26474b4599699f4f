//! Where a backend puts the executions of one create call: the partitions
//! in turn, one call each.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::id::{LeaseToken, PartitionCount, PartitionId};

/// A backend instance's rotation over the partitions. Each instance starts
/// at a different point (drawn from a fresh random number), so several
/// submitting processes do not fill the same partition.
#[derive(Debug)]
pub struct Placement {
    next: AtomicU32,
}

impl Default for Placement {
    fn default() -> Self {
        Placement {
            next: AtomicU32::new((LeaseToken::random_nonce() & 0xffff_ffff) as u32),
        }
    }
}

impl Placement {
    /// The partition the next create call places its executions in.
    ///
    /// ```
    /// use baton_core::PartitionCount;
    /// let count = PartitionCount::new(16).unwrap();
    /// let placement = baton_core::raw::Placement::default();
    /// let first = placement.next(count).get();
    /// assert!(first < 16);
    /// assert_eq!(placement.next(count).get(), (first + 1) % 16);
    /// ```
    pub fn next(&self, count: PartitionCount) -> PartitionId {
        let n = u32::from(count.get());
        PartitionId((self.next.fetch_add(1, Ordering::Relaxed) % n) as u16)
    }
}
