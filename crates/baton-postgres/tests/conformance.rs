//! The conformance suite on Postgres: one server for the whole run (started
//! by the test kit from the binaries on the machine, or named by
//! `BATON_TEST_POSTGRES_URL`), and a schema of its own for every case, which
//! the backend creates and migrates on open.
//!
//! Without a server and outside CI every case prints why and passes as
//! skipped; under CI it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use baton_core::{AdminBackend, SharedClock};
use baton_postgres::{PostgresBackend, PostgresConfig};
use baton_testkit::servers::{self, PostgresServer};

struct PostgresHarness {
    server: &'static PostgresServer,
}

impl PostgresHarness {
    async fn start() -> Option<Self> {
        Some(PostgresHarness {
            server: servers::postgres().await?,
        })
    }
}

#[async_trait::async_trait]
impl baton_testkit::Harness for PostgresHarness {
    async fn backend(&self, clock: SharedClock) -> Arc<dyn AdminBackend> {
        let url = self.server.schema_url(&PostgresServer::unique_schema());
        let config = PostgresConfig::from_url(&url)
            .unwrap()
            .with_clock(clock)
            .with_max_connections(12);
        Arc::new(PostgresBackend::open(config).await.unwrap())
    }
}

baton_testkit::conformance_suite!(match PostgresHarness::start().await {
    Some(harness) => harness,
    None => return,
});

/// A forced bulk delete of 100,000 executions, a thousand per call, in
/// bounded memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_delete_of_100k_in_bounded_memory() {
    let Some(harness) = PostgresHarness::start().await else {
        return;
    };
    baton_testkit::scale::bulk_delete_at_scale(&harness, 100_000, 32).await;
}
