//! The conformance suite on SQLite: every case gets its own database file in
//! a temporary directory (WAL, the separate reader pool and the single writer
//! all in play, as in production).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use baton_core::{AdminBackend, SharedClock};
use baton_sqlite::{Location, SqliteBackend, SqliteConfig};

struct SqliteHarness {
    dir: tempfile::TempDir,
    next: AtomicU32,
}

impl SqliteHarness {
    fn new() -> Self {
        SqliteHarness {
            dir: tempfile::tempdir().unwrap(),
            next: AtomicU32::new(0),
        }
    }
}

#[async_trait::async_trait]
impl baton_testkit::Harness for SqliteHarness {
    async fn backend(&self, clock: SharedClock) -> Arc<dyn AdminBackend> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("conformance-{n}.db"));
        let config = SqliteConfig::new(Location::File(path)).with_clock(clock);
        Arc::new(SqliteBackend::open(config).await.unwrap())
    }
}

baton_testkit::conformance_suite!(SqliteHarness::new());

/// A forced bulk delete of 100,000 executions, a thousand per call, in
/// bounded memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_delete_of_100k_in_bounded_memory() {
    baton_testkit::scale::bulk_delete_at_scale(&SqliteHarness::new(), 100_000, 32).await;
}
