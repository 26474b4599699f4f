//! Hot operations of the SQLite backend: create batch, a create + claim +
//! complete cycle, renew batch. Run with `cargo bench -p baton-benches`.
//!
//! Each iteration does one batch against a file database in WAL mode with
//! `synchronous=NORMAL` (the throughput setting; FULL adds one fsync per
//! commit, bounded by the disk's flush rate).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use baton_core::{
    ClaimRequest, EngineBackend, Kind, Lane, Namespace, NewExecution, RenewRequest, WorkerId,
};
use baton_sqlite::{SqliteBackend, SqliteConfig};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const BATCH: usize = 100;

fn new_batch(lane: &str, n: usize) -> Vec<NewExecution> {
    (0..n)
        .map(|_| {
            NewExecution::new(
                Namespace::new("bench").unwrap(),
                Lane::new(lane).unwrap(),
                Kind::new("noop").unwrap(),
                vec![b'x'; 1024],
            )
        })
        .collect()
}

fn ops(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?synchronous=normal",
        dir.path().join("bench.db").display()
    );
    let backend = rt
        .block_on(SqliteBackend::open(SqliteConfig::from_url(&url).unwrap()))
        .unwrap();
    let claim = ClaimRequest::new(
        Namespace::new("bench").unwrap(),
        Lane::new("cycle").unwrap(),
        WorkerId::new("bench-worker").unwrap(),
        BATCH,
    );

    let mut g = c.benchmark_group("sqlite");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.measurement_time(Duration::from_secs(5));

    g.bench_function("create_batch_100", |b| {
        b.to_async(&rt).iter_batched(
            || new_batch("created", BATCH),
            |batch| async { backend.create(batch).await.unwrap() },
            BatchSize::SmallInput,
        )
    });

    // The whole life of 100 executions: create, claim in one batch, complete.
    g.bench_function("create_claim_complete_100", |b| {
        b.to_async(&rt).iter_batched(
            || new_batch("cycle", BATCH),
            |batch| async {
                backend.create(batch).await.unwrap();
                let claims = backend.claim(claim.clone()).await.unwrap();
                for c in &claims {
                    backend.complete(&c.lease, b"null".to_vec()).await.unwrap();
                }
                assert_eq!(claims.len(), BATCH);
            },
            BatchSize::SmallInput,
        )
    });

    rt.block_on(backend.create(new_batch("cycle", BATCH)))
        .unwrap();
    let held = rt.block_on(backend.claim(claim.clone())).unwrap();
    let renew = RenewRequest {
        worker_id: WorkerId::new("bench-worker").unwrap(),
        lease_ttl: Duration::from_secs(30),
        leases: held.iter().map(|c| c.lease.clone()).collect(),
    };
    g.bench_function("renew_batch_100", |b| {
        b.to_async(&rt)
            .iter(|| async { backend.renew(renew.clone()).await.unwrap() })
    });
    g.finish();
}

criterion_group!(benches, ops);
criterion_main!(benches);
