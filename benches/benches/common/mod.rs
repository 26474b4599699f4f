//! The hot operations every backend is measured on, written once: create a
//! batch, claim a batch, complete (one call per execution), renew a batch,
//! and the whole create + claim + complete cycle.
//!
//! Each figure is per batch of [`BATCH`] executions (criterion reports
//! elements per second). Work an operation needs first (creating what a
//! claim takes, claiming what a complete finishes) is done outside the timed
//! part, so every figure is one operation alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_core::{
    ClaimRequest, EngineBackend, Kind, Lane, Namespace, NewExecution, RenewRequest, WorkerId,
};
use criterion::{BatchSize, Criterion, Throughput};
use tokio::runtime::Runtime;

/// Executions per batch.
pub const BATCH: usize = 100;

/// A runtime like a small server's: two worker threads.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

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

fn claim_request(lane: &str) -> ClaimRequest {
    ClaimRequest::new(
        Namespace::new("bench").unwrap(),
        Lane::new(lane).unwrap(),
        WorkerId::new("bench-worker").unwrap(),
        BATCH,
    )
}

/// Measures every hot operation of `backend` under the group `name`.
pub fn hot_ops(c: &mut Criterion, rt: &Runtime, name: &str, backend: Arc<dyn EngineBackend>) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));

    let b = backend.clone();
    g.bench_function("create_batch_100", |bench| {
        bench.to_async(rt).iter_batched(
            || new_batch("created", BATCH),
            |batch| {
                let b = b.clone();
                async move { b.create(batch).await.unwrap() }
            },
            BatchSize::SmallInput,
        )
    });

    let b = backend.clone();
    g.bench_function("claim_batch_100", |bench| {
        bench.to_async(rt).iter_custom(|iters| {
            let b = b.clone();
            async move {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    b.create(new_batch("claimed", BATCH)).await.unwrap();
                    let began = Instant::now();
                    let claims = b.claim(claim_request("claimed")).await.unwrap();
                    timed += began.elapsed();
                    assert_eq!(claims.len(), BATCH);
                }
                timed
            }
        })
    });

    let b = backend.clone();
    g.bench_function("complete_100", |bench| {
        bench.to_async(rt).iter_custom(|iters| {
            let b = b.clone();
            async move {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    b.create(new_batch("completed", BATCH)).await.unwrap();
                    let claims = b.claim(claim_request("completed")).await.unwrap();
                    let began = Instant::now();
                    for c in &claims {
                        b.complete(&c.lease, b"null".to_vec()).await.unwrap();
                    }
                    timed += began.elapsed();
                }
                timed
            }
        })
    });

    let b = backend.clone();
    g.bench_function("record_step_100", |bench| {
        bench.to_async(rt).iter_custom(|iters| {
            let b = b.clone();
            async move {
                let step = baton_core::StepName::new("charge").unwrap();
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    b.create(new_batch("stepped", BATCH)).await.unwrap();
                    let claims = b.claim(claim_request("stepped")).await.unwrap();
                    let began = Instant::now();
                    for c in &claims {
                        let done = baton_core::StepOutcome::Done(br#"{"id":"ch_1"}"#.to_vec());
                        b.record_step(&c.lease, step.clone(), done).await.unwrap();
                    }
                    timed += began.elapsed();
                    for c in &claims {
                        b.complete(&c.lease, b"null".to_vec()).await.unwrap();
                    }
                }
                timed
            }
        })
    });

    let b = backend.clone();
    g.bench_function("create_claim_complete_100", |bench| {
        bench.to_async(rt).iter_batched(
            || new_batch("cycle", BATCH),
            |batch| {
                let b = b.clone();
                async move {
                    b.create(batch).await.unwrap();
                    let claims = b.claim(claim_request("cycle")).await.unwrap();
                    for c in &claims {
                        b.complete(&c.lease, b"null".to_vec()).await.unwrap();
                    }
                    assert_eq!(claims.len(), BATCH);
                }
            },
            BatchSize::SmallInput,
        )
    });

    rt.block_on(backend.create(new_batch("renewed", BATCH)))
        .unwrap();
    let held = rt
        .block_on(backend.claim(claim_request("renewed")))
        .unwrap();
    let renew = RenewRequest {
        worker_id: WorkerId::new("bench-worker").unwrap(),
        lease_ttl: Duration::from_secs(30),
        leases: held.iter().map(|c| c.lease.clone()).collect(),
    };
    let b = backend.clone();
    g.bench_function("renew_batch_100", |bench| {
        bench.to_async(rt).iter(|| {
            let b = b.clone();
            let renew = renew.clone();
            async move { b.renew(renew).await.unwrap() }
        })
    });
    g.finish();
}
