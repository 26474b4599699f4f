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
//! - `limited`: `steady` with a limit on: executions are tagged with one
//!   of `--tenants` tenants in turn, and a limit caps each tenant at
//!   `--limit-cap` running (removed after the run). What the limited claim
//!   path costs beside `steady`.
//! - `fair`: a backlog where one tenant submitted `--heavy-factor` times
//!   (100) as many executions as each of `--tenants - 1` others, and first,
//!   drained under a fair limit by tenant (`--without-fair-limit`: the same
//!   backlog without one, the baseline). Reports each tenant's share of the
//!   claims while every tenant still had work (the goal: one in
//!   `--tenants` each) and when the light tenants' last executions were
//!   claimed, as a fraction of the run.
//! - `latency`: open-loop offered load at `--rate R` executions per second
//!   for `--duration S` seconds. Each execution is stamped with the time it
//!   was *due*, not the time it was sent, so a stalled submitter shows up as
//!   latency instead of hiding it.
//!
//! Latency is measured from submit to the moment the worker holds the claim
//! (`p50_ms`…, "submit→start") and from submit to the end of `complete`
//! (`complete_p50_ms`…). In `drain` and `steady` these include time queued
//! behind other work; `latency` is the scenario that measures them. To
//! tell where a slow start or completion spent its time, the calls are
//! timed too: each `claim` call that took work, from its start to its
//! answer (`claim_call_p50_ms`, `claim_call_p99_ms`), each `complete`
//! call (`complete_call_p50_ms`, `complete_call_p99_ms`) and, in
//! `latency`, each `create` call of the submitter (`create_call_p50_ms`,
//! `create_call_p99_ms`; `null` in the other scenarios).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use baton_core::{
    AdminBackend, EngineError, Kind, Lane, Limit, LimitName, Namespace, NewExecution, TagKey,
};
use clap::{Args, ValueEnum};
use tokio::sync::Notify;

use crate::CliResult;

mod report;
mod scenarios;

use report::*;
use scenarios::*;

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
    /// Steady, with executions spread over tenants and a cap per tenant.
    Limited,
    /// Drain a backlog one tenant dominates, with a fair limit by tenant.
    Fair,
}

impl Scenario {
    fn as_str(self) -> &'static str {
        match self {
            Scenario::Drain => "drain",
            Scenario::Steady => "steady",
            Scenario::Latency => "latency",
            Scenario::Limited => "limited",
            Scenario::Fair => "fair",
        }
    }
}

/// Flags of `baton bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// drain, steady, latency, limited or fair.
    #[arg(long, value_enum, default_value_t = Scenario::Steady)]
    scenario: Scenario,
    /// Executions to submit and drain (drain, fair).
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
    /// Tenants the executions are spread over (limited: in turn; fair: the
    /// first takes --heavy-factor times each other's share).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    tenants: u64,
    /// Most executions of one tenant running at once (limited).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    limit_cap: u32,
    /// How many times as many executions the first tenant submits as each
    /// other tenant (fair).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    heavy_factor: u64,
    /// Run the fair scenario's backlog without the fair limit: the
    /// baseline to compare with.
    #[arg(long)]
    without_fair_limit: bool,
    /// Record the event history of the run's executions (off by default,
    /// as for any namespace): what the history costs.
    #[arg(long)]
    history: bool,
}

/// State shared by the submitters, the workers and the coordinator.
#[derive(Debug)]
struct Shared {
    backend: Arc<dyn AdminBackend>,
    namespace: Namespace,
    lane: Lane,
    kind: Kind,
    payload_bytes: usize,
    /// Tenants executions are tagged with in turn; `None`: untagged.
    tenants: Option<u64>,
    /// The next tenant's turn.
    turn: AtomicU64,
    epoch: Instant,
    submitted: AtomicU64,
    completed: AtomicU64,
    retries: AtomicU64,
    /// Completions after which [`Shared::done`] is notified.
    target: AtomicU64,
    done: Notify,
    stop_submitting: AtomicBool,
    stop_working: AtomicBool,
    /// The tenant (its index) of each claim, in the order workers got
    /// them (fair only).
    claimed_tenants: Option<std::sync::Mutex<Vec<u32>>>,
}

impl Shared {
    /// Microseconds since the run began.
    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn execution(&self, stamp_us: u64) -> NewExecution {
        let mut payload = vec![b'x'; self.payload_bytes];
        payload[..STAMP_BYTES].copy_from_slice(&stamp_us.to_le_bytes());
        let new = NewExecution::new(
            self.namespace.clone(),
            self.lane.clone(),
            self.kind.clone(),
            payload,
        );
        match (self.tenants, TagKey::new("tenant")) {
            (Some(n), Ok(key)) => {
                let t = self.turn.fetch_add(1, Ordering::Relaxed) % n.max(1);
                new.with_tag(key, format!("t{t}"))
            }
            _ => new,
        }
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
        tenants: (args.scenario == Scenario::Limited).then_some(args.tenants),
        turn: AtomicU64::new(0),
        epoch: Instant::now(),
        submitted: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        target: AtomicU64::new(u64::MAX),
        done: Notify::new(),
        stop_submitting: AtomicBool::new(false),
        stop_working: AtomicBool::new(false),
        claimed_tenants: (args.scenario == Scenario::Fair)
            .then(|| std::sync::Mutex::new(Vec::new())),
    });
    if args.history {
        shared.backend.set_history(&shared.namespace, true).await?;
    }
    let limit = Limit {
        name: LimitName::new(format!("bench-{suffix}"))?,
        namespace: shared.namespace.clone(),
        lane: None,
        key: "tag:tenant".parse()?,
        max_running: Some(args.limit_cap),
        rate: None,
        fair: false,
    };
    let limit = match args.scenario {
        Scenario::Limited => Some(limit),
        Scenario::Fair if !args.without_fair_limit => Some(Limit {
            max_running: None,
            fair: true,
            ..limit
        }),
        _ => None,
    };
    if let Some(limit) = &limit {
        shared.backend.set_limit(limit).await?;
    }
    let progress = Progress::start(shared.clone(), args.scenario);
    let outcome = match args.scenario {
        Scenario::Drain => drain(&shared, &args).await,
        Scenario::Steady | Scenario::Limited => steady(&shared, &args).await,
        Scenario::Latency => latency(&shared, &args).await,
        Scenario::Fair => fair(&shared, &args).await,
    };
    progress.stop().await;
    if let Some(limit) = &limit {
        shared.backend.remove_limit(&limit.name).await?;
    }
    let report = outcome?;
    let doc = report.json(&shared, &args);
    if json_out {
        println!("{doc}");
    } else {
        print_table(&doc);
    }
    Ok(())
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
