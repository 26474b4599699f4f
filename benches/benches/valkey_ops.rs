//! Hot operations of the Valkey backend (see `common`), on the test kit's
//! throwaway Valkey 9 server (no persistence), under a key prefix of its
//! own. Skipped with a notice when no server can be started. Run with
//! `cargo bench -p baton-benches --bench valkey_ops`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use baton_testkit::servers::{RedisServer, valkey};
use baton_valkey::ValkeyBackend;
use criterion::{Criterion, criterion_group, criterion_main};

fn ops(c: &mut Criterion) {
    let rt = common::runtime();
    let Some(server) = rt.block_on(valkey()) else {
        eprintln!("valkey_ops: no Valkey server available; skipping");
        return;
    };
    let url = format!("{}?prefix={}", server.url(), RedisServer::unique_prefix());
    let backend = rt.block_on(ValkeyBackend::connect(&url)).unwrap();
    common::hot_ops(c, &rt, "valkey", Arc::new(backend));
}

criterion_group!(benches, ops);
criterion_main!(benches);
