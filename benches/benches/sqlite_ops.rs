//! Hot operations of the SQLite backend (see `common`), on a file database
//! in WAL mode, once with `synchronous=FULL` (the default: every commit is
//! flushed, so durable commits are bounded by the disk's flush rate) and once
//! with `synchronous=NORMAL` (the throughput setting: a power loss may lose
//! the last commits, a process crash loses nothing). Run with
//! `cargo bench -p baton-benches --bench sqlite_ops`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use baton_sqlite::{SqliteBackend, SqliteConfig};
use criterion::{Criterion, criterion_group, criterion_main};

fn ops(c: &mut Criterion) {
    let rt = common::runtime();
    for synchronous in ["full", "normal"] {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?synchronous={synchronous}",
            dir.path().join("bench.db").display()
        );
        let backend = rt
            .block_on(SqliteBackend::open(SqliteConfig::from_url(&url).unwrap()))
            .unwrap();
        common::hot_ops(c, &rt, &format!("sqlite_{synchronous}"), Arc::new(backend));
    }
}

criterion_group!(benches, ops);
criterion_main!(benches);
