//! `baton bench`: end-to-end throughput and latency of a backend.
//!
//! Every run uses a namespace of its own (`bench-<random>`), so runs against
//! a shared database never see each other's executions. No scheduler runs:
//! bench executions are never delayed, retried or expired, so the scanners
//! would find nothing to do.
//!
//! What the parts are:
//!
//! - A **submitter** creates executions in batches (`--submit-batch`, one
//!   `create` call each). Every payload starts with its submit time (8 bytes,
//!   microseconds since the run began), so latency needs no lookup table.
//! - A **worker** is what an SDK [`Worker`](baton_sdk::Worker) with a no-op
//!   handler does on the hot path, without the handler plumbing: claim up to
//!   `--claim-batch` executions in one call, complete each of them
//!   concurrently (one `complete` call per execution, as handlers finish
//!   independently), and call `wait_for_work` after an empty claim instead of
//!   spinning.
//!
//! Scenarios:
//!
//! - `drain`: `--executions N` are submitted first, then drained by
//!   `--workers W`. Submit and drain rates are reported separately;
//!   `throughput_per_sec` is N over both phases.
//! - `steady`: submitters and workers run together for `--duration S`
//!   seconds. Submitters hold the backlog (submitted but not completed)
//!   under a bound, so the figure is what the backend sustains end to end,
//!   not how fast a queue can grow. The first tenth of the run is warm-up
//!   and not counted.
//! - `latency`: open-loop offered load at `--rate R` executions per second
//!   for `--duration S` seconds. Each execution is stamped with the time it
//!   was *due*, not the time it was sent, so a stalled submitter shows up as
//!   latency instead of hiding it.
//!
//! Latency is measured from submit to the moment the worker holds the claim
//! (`p50_ms`…, "submit→start") and from submit to the end of `complete`
//! (`complete_p50_ms`…). In `drain` and `steady` these include time queued
//! behind other work; `latency` is the scenario that measures them.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use baton_core::{
    AdminBackend, ClaimRequest, EngineError, Kind, Lane, LeaseToken, Namespace, NewExecution,
    WorkerId,
};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::table::Table;
use crate::{CliError, CliResult};

/// How long an idle worker waits for a wake-up before claiming again; a
/// wake-up normally ends the wait much sooner.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// The open-loop generator's tick: the finest spacing of offered load.
const TICK: Duration = Duration::from_millis(1);
/// Most `create` calls the open-loop generator keeps in flight.
const MAX_IN_FLIGHT_CREATES: usize = 256;
/// Bytes at the start of every payload holding its submit time.
const STAMP_BYTES: usize = 8;

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Submit N executions, then drain them with W workers.
    Drain,
    /// Submit and work at once for S seconds; completed executions per second.
    Steady,
    /// Open-loop load at R per second; submit→start and submit→complete percentiles.
    Latency,
}

impl Scenario {
    fn as_str(self) -> &'static str {
        match self {
            Scenario::Drain => "drain",
            Scenario::Steady => "steady",
            Scenario::Latency => "latency",
        }
    }
}

/// Flags of `baton bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// drain, steady or latency.
    #[arg(long, value_enum, default_value_t = Scenario::Steady)]
    scenario: Scenario,
    /// Executions to submit and drain (drain).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    executions: u64,
    /// Concurrent workers, each claiming in batches.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    workers: u64,
    /// Concurrent submitters (drain, steady).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=1024))]
    submitters: u64,
    /// Seconds to run (steady, latency).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Payload size in bytes (at least 8: the submit time is stored in it).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(8..=1_048_576))]
    payload_bytes: u64,
    /// Offered load in executions per second (latency).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    rate: u64,
    /// Most executions one claim call asks for.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    claim_batch: u64,
    /// Executions per create call (drain, steady).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    submit_batch: u64,
}

/// State shared by the submitters, the workers and the coordinator.
#[derive(Debug)]
struct Shared {
    backend: Arc<dyn AdminBackend>,
    namespace: Namespace,
    lane: Lane,
    kind: Kind,
    payload_bytes: usize,
    epoch: Instant,
    submitted: AtomicU64,
    completed: AtomicU64,
    retries: AtomicU64,
    /// Completions after which [`Shared::done`] is notified.
    target: AtomicU64,
    done: Notify,
    stop_submitting: AtomicBool,
    stop_working: AtomicBool,
}

impl Shared {
    /// Microseconds since the run began.
    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn execution(&self, stamp_us: u64) -> NewExecution {
        let mut payload = vec![b'x'; self.payload_bytes];
        payload[..STAMP_BYTES].copy_from_slice(&stamp_us.to_le_bytes());
        NewExecution::new(
            self.namespace.clone(),
            self.lane.clone(),
            self.kind.clone(),
            payload,
        )
    }

    fn note_completed(&self) {
        let n = self.completed.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.target.load(Ordering::Relaxed) {
            self.done.notify_one();
        }
    }

    /// Returns once `target` executions completed.
    async fn wait_done(&self) {
        loop {
            if self.completed.load(Ordering::Relaxed) >= self.target.load(Ordering::Relaxed) {
                return;
            }
            self.done.notified().await;
        }
    }

    /// Runs `op` again after a retryable error (busy database, lost
    /// connection), counting the retries; every other error ends the run.
    async fn retrying<T, F, Fut>(&self, mut op: F) -> Result<T, EngineError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, EngineError>>,
    {
        loop {
            match op().await {
                Err(e) if e.is_retryable() => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                other => return other,
            }
        }
    }

    async fn create(&self, batch: Vec<NewExecution>) -> Result<(), EngineError> {
        let n = batch.len() as u64;
        self.retrying(|| self.backend.create(batch.clone())).await?;
        self.submitted.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }
}

/// The submit time stored at the start of a payload.
fn stamp(payload: &[u8]) -> u64 {
    payload
        .get(..STAMP_BYTES)
        .and_then(|b| <[u8; STAMP_BYTES]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// One worker's latency samples, in microseconds.
#[derive(Debug)]
struct Samples {
    start: Histogram<u64>,
    complete: Histogram<u64>,
}

impl Samples {
    fn new() -> CliResult<Self> {
        Ok(Samples {
            start: histogram()?,
            complete: histogram()?,
        })
    }

    fn merge(&mut self, other: &Samples) -> CliResult<()> {
        self.start.add(&other.start).map_err(internal)?;
        self.complete.add(&other.complete).map_err(internal)?;
        Ok(())
    }
}

/// A histogram of microseconds up to an hour, at 3 significant digits;
/// longer samples are clamped to an hour.
fn histogram() -> CliResult<Histogram<u64>> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).map_err(internal)
}

fn internal(e: impl std::fmt::Display) -> CliError {
    CliError {
        message: format!("bench: {e}"),
        hint: None,
        code: 1,
    }
}

/// Runs the scenario and prints its figures.
pub(crate) async fn run(
    backend: Arc<dyn AdminBackend>,
    args: BenchArgs,
    json_out: bool,
) -> CliResult<()> {
    if !(args.duration.is_finite() && args.duration > 0.0) {
        return Err(EngineError::invalid(
            "duration",
            args.duration,
            "give a positive number of seconds, for example --duration 10",
        )
        .into());
    }
    let suffix = format!("{:016x}", rand_u64());
    let shared = Arc::new(Shared {
        backend,
        namespace: Namespace::new(format!("bench-{suffix}"))?,
        lane: Lane::new("bench")?,
        kind: Kind::new("bench.noop")?,
        payload_bytes: usize::try_from(args.payload_bytes).map_err(internal)?,
        epoch: Instant::now(),
        submitted: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        target: AtomicU64::new(u64::MAX),
        done: Notify::new(),
        stop_submitting: AtomicBool::new(false),
        stop_working: AtomicBool::new(false),
    });
    let progress = Progress::start(shared.clone(), args.scenario);
    let outcome = match args.scenario {
        Scenario::Drain => drain(&shared, &args).await,
        Scenario::Steady => steady(&shared, &args).await,
        Scenario::Latency => latency(&shared, &args).await,
    };
    progress.stop().await;
    let report = outcome?;
    let doc = report.json(&shared, &args);
    if json_out {
        println!("{doc}");
    } else {
        print_table(&doc);
    }
    Ok(())
}

/// Figures of one run, before formatting.
#[derive(Debug)]
struct Report {
    /// Executions completed that count towards `throughput_per_sec`.
    counted: u64,
    /// Seconds over which `counted` were completed.
    seconds: f64,
    submit_per_sec: f64,
    drain_per_sec: Option<f64>,
    samples: Samples,
}

impl Report {
    fn json(&self, shared: &Shared, args: &BenchArgs) -> Value {
        let ms = |h: &Histogram<u64>, q: f64| {
            if h.is_empty() {
                Value::Null
            } else {
                json!(round3(h.value_at_quantile(q) as f64 / 1000.0))
            }
        };
        let caps = shared.backend.capabilities();
        json!({
            "backend": caps.backend,
            "durable": caps.durable,
            "scenario": args.scenario.as_str(),
            "namespace": shared.namespace.as_str(),
            "executions": shared.completed.load(Ordering::Relaxed),
            "submitted": shared.submitted.load(Ordering::Relaxed),
            "workers": args.workers,
            "submitters": if args.scenario == Scenario::Latency { 1 } else { args.submitters },
            "claim_batch": args.claim_batch,
            "submit_batch": if args.scenario == Scenario::Latency { Value::Null } else { json!(args.submit_batch) },
            "payload_bytes": args.payload_bytes,
            "rate": if args.scenario == Scenario::Latency { json!(args.rate) } else { Value::Null },
            "duration_s": round3(self.seconds),
            "throughput_per_sec": round1(per_sec(self.counted, self.seconds)),
            "submit_per_sec": round1(self.submit_per_sec),
            "drain_per_sec": self.drain_per_sec.map(round1),
            "p50_ms": ms(&self.samples.start, 0.50),
            "p95_ms": ms(&self.samples.start, 0.95),
            "p99_ms": ms(&self.samples.start, 0.99),
            "max_ms": ms(&self.samples.start, 1.0),
            "complete_p50_ms": ms(&self.samples.complete, 0.50),
            "complete_p95_ms": ms(&self.samples.complete, 0.95),
            "complete_p99_ms": ms(&self.samples.complete, 0.99),
            "retries": shared.retries.load(Ordering::Relaxed),
        })
    }
}

fn per_sec(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn print_table(doc: &Value) {
    const ROWS: [(&str, &str); 17] = [
        ("backend", ""),
        ("scenario", ""),
        ("executions", ""),
        ("workers", ""),
        ("claim_batch", ""),
        ("payload_bytes", "bytes"),
        ("rate", "/s offered"),
        ("duration_s", "s"),
        ("throughput_per_sec", "/s end to end"),
        ("submit_per_sec", "/s"),
        ("drain_per_sec", "/s"),
        ("p50_ms", "ms submit→start"),
        ("p95_ms", "ms submit→start"),
        ("p99_ms", "ms submit→start"),
        ("complete_p50_ms", "ms submit→complete"),
        ("complete_p99_ms", "ms submit→complete"),
        ("retries", ""),
    ];
    let mut t = Table::new(["FIGURE", "VALUE", "UNIT"]);
    for (key, unit) in ROWS {
        match doc.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => t.row([key.to_string(), s.clone(), unit.to_string()]),
            Some(v) => t.row([key.to_string(), v.to_string(), unit.to_string()]),
        }
    }
    t.print_or("no figures");
}

/// Starts `n` workers.
fn spawn_workers(shared: &Arc<Shared>, args: &BenchArgs) -> CliResult<JoinSet<CliResult<Samples>>> {
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
async fn work(shared: Arc<Shared>, request: ClaimRequest) -> CliResult<Samples> {
    let mut samples = Samples::new()?;
    let lanes = std::slice::from_ref(&shared.lane);
    let mut completing: JoinSet<Result<u64, EngineError>> = JoinSet::new();
    while !shared.stop_working.load(Ordering::Relaxed) {
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
        for claim in claims {
            let submitted = stamp(&claim.payload);
            samples
                .start
                .saturating_record(started.saturating_sub(submitted));
            completing.spawn(complete(shared.clone(), claim.lease, submitted));
        }
        while let Some(done) = completing.join_next().await {
            let finished_after = done.map_err(internal)??;
            samples.complete.saturating_record(finished_after);
            shared.note_completed();
        }
    }
    Ok(samples)
}

/// Completes one claim; answers the microseconds from submit to completion.
async fn complete(
    shared: Arc<Shared>,
    lease: LeaseToken,
    submitted: u64,
) -> Result<u64, EngineError> {
    shared
        .retrying(|| shared.backend.complete(&lease, b"null".to_vec()))
        .await?;
    Ok(shared.now_us().saturating_sub(submitted))
}

/// Stops the workers and merges their samples.
async fn stop_workers(
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
async fn join_submitters(mut set: JoinSet<Result<(), EngineError>>) -> CliResult<()> {
    while let Some(joined) = set.join_next().await {
        joined.map_err(internal)??;
    }
    Ok(())
}

async fn drain(shared: &Arc<Shared>, args: &BenchArgs) -> CliResult<Report> {
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

    shared.target.store(total, Ordering::Relaxed);
    let drain_began = Instant::now();
    let workers = spawn_workers(shared, args)?;
    shared.wait_done().await;
    let drain_secs = drain_began.elapsed().as_secs_f64();
    let samples = stop_workers(shared, workers).await?;
    Ok(Report {
        counted: total,
        seconds: submit_secs + drain_secs,
        submit_per_sec: per_sec(total, submit_secs),
        drain_per_sec: Some(per_sec(total, drain_secs)),
        samples,
    })
}

async fn steady(shared: &Arc<Shared>, args: &BenchArgs) -> CliResult<Report> {
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
    })
}

async fn latency(shared: &Arc<Shared>, args: &BenchArgs) -> CliResult<Report> {
    let duration = Duration::from_secs_f64(args.duration);
    let rate = args.rate;
    let workers = spawn_workers(shared, args)?;
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT_CREATES));
    let mut creates: JoinSet<Result<(), EngineError>> = JoinSet::new();
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
                let out = shared.create(items).await;
                drop(permit);
                out
            });
        }
        while let Some(joined) = creates.try_join_next() {
            joined.map_err(internal)??;
        }
        if elapsed >= duration {
            break;
        }
    }
    join_submitters(creates).await?;
    let submit_secs = began.elapsed().as_secs_f64();
    // Every offered execution is measured: wait for the tail to complete.
    shared.target.store(offered, Ordering::Relaxed);
    shared.done.notify_one();
    shared.wait_done().await;
    let seconds = began.elapsed().as_secs_f64();
    let samples = stop_workers(shared, workers).await?;
    Ok(Report {
        counted: offered,
        seconds,
        submit_per_sec: per_sec(offered, submit_secs),
        drain_per_sec: None,
        samples,
    })
}

/// A single-line progress report on standard error, when it is a terminal.
#[derive(Debug)]
struct Progress {
    stop: Arc<Notify>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(shared: Arc<Shared>, scenario: Scenario) -> Progress {
        let stop = Arc::new(Notify::new());
        if !std::io::stderr().is_terminal() {
            return Progress { stop, task: None };
        }
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let began = Instant::now();
            let mut last = (0u64, Instant::now());
            loop {
                tokio::select! {
                    () = stopped.notified() => break,
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
                let completed = shared.completed.load(Ordering::Relaxed);
                let now = Instant::now();
                let rate = per_sec(
                    completed.saturating_sub(last.0),
                    now.duration_since(last.1).as_secs_f64(),
                );
                last = (completed, now);
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r{} {:6.1}s  submitted {:>9}  completed {:>9}  {:>9.0}/s   ",
                    scenario.as_str(),
                    began.elapsed().as_secs_f64(),
                    shared.submitted.load(Ordering::Relaxed),
                    completed,
                    rate,
                );
                let _ = err.flush();
            }
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{:78}\r", "");
            let _ = err.flush();
        });
        Progress {
            stop,
            task: Some(task),
        }
    }

    async fn stop(self) {
        self.stop.notify_one();
        if let Some(task) = self.task {
            let _ = task.await;
        }
    }
}

/// A random number for the run's namespace, without a dependency for it:
/// std's hasher is seeded randomly per process.
fn rand_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}
