//! Hot operations of the Postgres backend (see `common`), on the test kit's
//! throwaway server (default settings: `fsync` and `synchronous_commit` on,
//! so every commit waits for a WAL flush), in a schema of its own. Skipped
//! with a notice when no server can be started. Run with
//! `cargo bench -p baton-benches --bench postgres_ops`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use baton_postgres::PostgresBackend;
use baton_testkit::servers::{PostgresServer, postgres};
use criterion::{Criterion, criterion_group, criterion_main};

fn ops(c: &mut Criterion) {
    let rt = common::runtime();
    let Some(server) = rt.block_on(postgres()) else {
        eprintln!("postgres_ops: no Postgres server available; skipping");
        return;
    };
    let url = server.schema_url(&PostgresServer::unique_schema());
    let backend = rt.block_on(PostgresBackend::connect(&url)).unwrap();
    common::hot_ops(c, &rt, "postgres", Arc::new(backend));
}

criterion_group!(benches, ops);
criterion_main!(benches);
