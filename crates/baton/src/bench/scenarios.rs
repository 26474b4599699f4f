//! The scenarios and the workers and submitters they run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use baton_core::{ClaimRequest, EngineError, LeaseToken, NewExecution, WorkerId};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::CliResult;

use super::*;
/// Starts `n` workers.
pub(super) fn spawn_workers(
    shared: &Arc<Shared>,
    args: &BenchArgs,
) -> CliResult<JoinSet<CliResult<Samples>>> {
    let mut set = JoinSet::new();
    for i in 0..args.workers {
        let request = ClaimRequest::new(
            shared.namespace.clone(),
            shared.lane.clone(),
            WorkerId::new(format!("bench-worker-{i}"))?,
            usize::try_from(args.claim_batch).map_err(internal)?,
        );
        set.spawn(work(shared.clone(), request));
    }
    Ok(set)
}

/// Claims in batches and completes every claim, until told to stop.
pub(super) async fn work(shared: Arc<Shared>, request: ClaimRequest) -> CliResult<Samples> {
    let mut samples = Samples::new()?;
    let lanes = std::slice::from_ref(&shared.lane);
    let mut completing: JoinSet<Result<(u64, u64), EngineError>> = JoinSet::new();
    while !shared.stop_working.load(Ordering::Relaxed) {
        let asked = shared.now_us();
        let claims = shared
            .retrying(|| shared.backend.claim(request.clone()))
            .await?;
        if claims.is_empty() {
            shared
                .backend
                .wait_for_work(&shared.namespace, lanes, IDLE_WAIT)
                .await?;
            continue;
        }
        let started = shared.now_us();
        samples
            .claim_call
            .saturating_record(started.saturating_sub(asked));
        if let Some(order) = &shared.claimed_tenants {
            let tenants = claims.iter().map(|c| {
                c.tags
                    .iter()
                    .find(|(k, _)| k.as_str() == "tenant")
                    .and_then(|(_, t)| t.strip_prefix('t'))
                    .and_then(|t| t.parse::<u32>().ok())
                    .unwrap_or(u32::MAX)
            });
            order.lock().map_err(internal)?.extend(tenants);
        }
        for claim in claims {
            let submitted = stamp(&claim.payload);
            samples
                .start
                .saturating_record(started.saturating_sub(submitted));
            completing.spawn(complete(shared.clone(), claim.lease, submitted));
        }
        while let Some(done) = completing.join_next().await {
            let (finished_after, call) = done.map_err(internal)??;
            samples.complete.saturating_record(finished_after);
            samples.complete_call.saturating_record(call);
            shared.note_completed();
        }
    }
    Ok(samples)
}

/// Completes one claim; answers the microseconds from submit to
/// completion, and those the `complete` call took.
pub(super) async fn complete(
    shared: Arc<Shared>,
    lease: LeaseToken,
    submitted: u64,
) -> Result<(u64, u64), EngineError> {
    let began = shared.now_us();
    shared
        .retrying(|| shared.backend.complete(&lease, b"null".to_vec()))
        .await?;
    let ended = shared.now_us();
    Ok((ended.saturating_sub(submitted), ended.saturating_sub(began)))
}

/// Stops the workers and merges their samples.
pub(super) async fn stop_workers(
    shared: &Shared,
    mut workers: JoinSet<CliResult<Samples>>,
) -> CliResult<Samples> {
    shared.stop_working.store(true, Ordering::Relaxed);
    let mut all = Samples::new()?;
    while let Some(joined) = workers.join_next().await {
        all.merge(&joined.map_err(internal)??)?;
    }
    Ok(all)
}

/// Waits for spawned submitters, ending the run at the first error.
pub(super) async fn join_submitters(mut set: JoinSet<Result<(), EngineError>>) -> CliResult<()> {
    while let Some(joined) = set.join_next().await {
        joined.map_err(internal)??;
    }
    Ok(())
}

/// Drains the `total` executions submitted with the workers; answers the
/// seconds it took and the workers' samples.
async fn drain_backlog(
    shared: &Arc<Shared>,
    args: &BenchArgs,
    total: u64,
) -> CliResult<(f64, Samples)> {
    shared.target.store(total, Ordering::Relaxed);
    let began = Instant::now();
    let workers = spawn_workers(shared, args)?;
    shared.wait_done().await;
    let seconds = began.elapsed().as_secs_f64();
    Ok((seconds, stop_workers(shared, workers).await?))
}

pub(super) async fn drain(shared: &Arc<Shared>, args: &BenchArgs) -> CliResult<Report> {
    let total = args.executions;
    let batch = args.submit_batch;
    // Submitters take batches from one counter, so together they submit
    // exactly `total`.
    let next = Arc::new(AtomicU64::new(0));
    let began = Instant::now();
    let mut submitters = JoinSet::new();
    for _ in 0..args.submitters {
        let shared = shared.clone();
        let next = next.clone();
        submitters.spawn(async move {
            loop {
                let from = next.fetch_add(batch, Ordering::Relaxed);
                if from >= total {
                    return Ok(());
                }
                let n = batch.min(total - from);
                let stamp_us = shared.now_us();
                let items = (0..n).map(|_| shared.execution(stamp_us)).collect();
                shared.create(items).await?;
            }
        });
    }
    join_submitters(submitters).await?;
    let submit_secs = began.elapsed().as_secs_f64();

    let (drain_secs, samples) = drain_backlog(shared, args, total).await?;
    Ok(Report {
        counted: total,
        seconds: submit_secs + drain_secs,
        submit_per_sec: per_sec(total, submit_secs),
        drain_per_sec: Some(per_sec(total, drain_secs)),
        samples,
        fairness: None,
    })
}

pub(super) async fn steady(shared: &Arc<Shared>, args: &BenchArgs) -> CliResult<Report> {
    let batch = args.submit_batch;
    // Enough queued work that no worker ever finds the lane empty, little
    // enough that the queue does not grow for the whole run.
    let max_backlog = (args.workers * args.claim_batch * 2).max(args.submitters * batch * 2);
    let workers = spawn_workers(shared, args)?;
    let mut submitters = JoinSet::new();
    for _ in 0..args.submitters {
        let shared = shared.clone();
        submitters.spawn(async move {
            while !shared.stop_submitting.load(Ordering::Relaxed) {
                let backlog = shared
                    .submitted
                    .load(Ordering::Relaxed)
                    .saturating_sub(shared.completed.load(Ordering::Relaxed));
                if backlog >= max_backlog {
                    tokio::time::sleep(TICK).await;
                    continue;
                }
                let stamp_us = shared.now_us();
                let items = (0..batch).map(|_| shared.execution(stamp_us)).collect();
                shared.create(items).await?;
            }
            Ok(())
        });
    }
    let duration = Duration::from_secs_f64(args.duration);
    let warm_up = duration / 10;
    let began = Instant::now();
    tokio::time::sleep(warm_up).await;
    let warm_completed = shared.completed.load(Ordering::Relaxed);
    let warm_submitted = shared.submitted.load(Ordering::Relaxed);
    let window_began = Instant::now();
    tokio::time::sleep(duration.saturating_sub(began.elapsed())).await;
    let window = window_began.elapsed().as_secs_f64();
    let counted = shared.completed.load(Ordering::Relaxed) - warm_completed;
    let submitted = shared.submitted.load(Ordering::Relaxed) - warm_submitted;
    shared.stop_submitting.store(true, Ordering::Relaxed);
    join_submitters(submitters).await?;
    let samples = stop_workers(shared, workers).await?;
    Ok(Report {
        counted,
        seconds: window,
        submit_per_sec: per_sec(submitted, window),
        drain_per_sec: None,
        samples,
        fairness: None,
    })
}

pub(super) async fn latency(shared: &Arc<Shared>, args: &BenchArgs) -> CliResult<Report> {
    let duration = Duration::from_secs_f64(args.duration);
    let rate = args.rate;
    let workers = spawn_workers(shared, args)?;
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT_CREATES));
    let mut creates: JoinSet<Result<u64, EngineError>> = JoinSet::new();
    let mut create_calls = histogram()?;
    let began = Instant::now();
    let began_us = shared.now_us();
    let mut offered: u64 = 0;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let elapsed = began.elapsed().min(duration);
        let due = (elapsed.as_secs_f64() * rate as f64) as u64;
        while offered < due {
            let n = (due - offered).min(1000);
            // Each execution carries the instant it was due: the i-th
            // (from 1) at i / rate seconds.
            let items: Vec<NewExecution> = (offered + 1..=offered + n)
                .map(|i| shared.execution(began_us + i * 1_000_000 / rate))
                .collect();
            offered += n;
            let permit = in_flight.clone().acquire_owned().await.map_err(internal)?;
            let shared = shared.clone();
            creates.spawn(async move {
                let sent = shared.now_us();
                let out = shared.create(items).await;
                drop(permit);
                out.map(|()| shared.now_us().saturating_sub(sent))
            });
        }
        while let Some(joined) = creates.try_join_next() {
            create_calls.saturating_record(joined.map_err(internal)??);
        }
        if elapsed >= duration {
            break;
        }
    }
    while let Some(joined) = creates.join_next().await {
        create_calls.saturating_record(joined.map_err(internal)??);
    }
    let submit_secs = began.elapsed().as_secs_f64();
    // Every offered execution is measured: wait for the tail to complete.
    shared.target.store(offered, Ordering::Relaxed);
    shared.done.notify_one();
    shared.wait_done().await;
    let seconds = began.elapsed().as_secs_f64();
    let mut samples = stop_workers(shared, workers).await?;
    samples.create_call = create_calls;
    Ok(Report {
        counted: offered,
        seconds,
        submit_per_sec: per_sec(offered, submit_secs),
        drain_per_sec: None,
        samples,
        fairness: None,
    })
}

/// The fair scenario: tenant 0 submits `heavy_factor` times as many
/// executions as each other tenant, all before them; then the workers
/// drain the backlog, noting the tenant of every claim.
pub(super) async fn fair(shared: &Arc<Shared>, args: &BenchArgs) -> CliResult<Report> {
    let tenants = args.tenants.max(2);
    let light = (args.executions / (args.heavy_factor + tenants - 1)).max(1);
    let key = baton_core::TagKey::new("tenant")?;
    let began = Instant::now();
    for t in 0..tenants {
        let mut left = if t == 0 {
            light * args.heavy_factor
        } else {
            light
        };
        while left > 0 {
            let n = left.min(args.submit_batch);
            let stamp_us = shared.now_us();
            let items = (0..n)
                .map(|_| {
                    shared
                        .execution(stamp_us)
                        .with_tag(key.clone(), format!("t{t}"))
                })
                .collect();
            shared.create(items).await?;
            left -= n;
        }
    }
    let submit_secs = began.elapsed().as_secs_f64();
    let total = shared.submitted.load(Ordering::Relaxed);
    let (drain_secs, samples) = drain_backlog(shared, args, total).await?;
    let order = match &shared.claimed_tenants {
        Some(order) => std::mem::take(&mut *order.lock().map_err(internal)?),
        None => Vec::new(),
    };
    let submitted: Vec<u64> = (0..tenants)
        .map(|t| {
            if t == 0 {
                light * args.heavy_factor
            } else {
                light
            }
        })
        .collect();
    Ok(Report {
        counted: total,
        seconds: submit_secs + drain_secs,
        submit_per_sec: per_sec(total, submit_secs),
        drain_per_sec: Some(per_sec(total, drain_secs)),
        samples,
        fairness: Some(fairness(&order, &submitted, !args.without_fair_limit)),
    })
}

/// The fair scenario's figures from the tenants of the claims in order
/// (`order`) and how many each submitted (`submitted`, the heavy tenant
/// first): each tenant's share of the claims while every tenant still had
/// work, and when each light tenant's last execution was claimed, as a
/// fraction of all claims.
pub(super) fn fairness(order: &[u32], submitted: &[u64], fair_limit: bool) -> serde_json::Value {
    let mut left = submitted.to_vec();
    let mut counts = vec![0u64; submitted.len()];
    let mut while_all = None;
    let mut done_at = vec![None; submitted.len()];
    for (i, t) in order.iter().enumerate() {
        let Some(t) = usize::try_from(*t).ok().filter(|t| *t < left.len()) else {
            continue;
        };
        if while_all.is_none() {
            counts[t] += 1;
        }
        left[t] = left[t].saturating_sub(1);
        if left[t] == 0 {
            done_at[t] = Some((i + 1) as f64 / order.len().max(1) as f64);
            if while_all.is_none() {
                while_all = Some(i + 1);
            }
        }
    }
    let prefix = while_all.unwrap_or(order.len()).max(1) as f64;
    let shares: Vec<f64> = counts.iter().map(|c| round3(*c as f64 / prefix)).collect();
    let light: Vec<f64> = shares.iter().skip(1).copied().collect();
    let light_done: Vec<f64> = done_at.iter().skip(1).map(|d| d.unwrap_or(1.0)).collect();
    let max = |v: &[f64]| v.iter().copied().fold(f64::MIN, f64::max);
    let min = |v: &[f64]| v.iter().copied().fold(f64::MAX, f64::min);
    serde_json::json!({
        "fair_limit": fair_limit,
        "claims_while_all_had_work": while_all.unwrap_or(order.len()),
        "shares_while_all_had_work": shares,
        "heavy_share": shares.first().copied().unwrap_or(0.0),
        "light_share_min": round3(min(&light)),
        "light_share_max": round3(max(&light)),
        "light_done_at_max": round3(max(&light_done)),
    })
}
