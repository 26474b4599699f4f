//! What a run measured and how it is reported: latency samples, the
//! report document, the table and the progress line.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::table::Table;
use crate::{CliError, CliResult};

use super::*;
/// One worker's latency samples, in microseconds.
#[derive(Debug)]
pub(super) struct Samples {
    pub(super) start: Histogram<u64>,
    pub(super) complete: Histogram<u64>,
    /// How long each `claim` call that took work ran.
    pub(super) claim_call: Histogram<u64>,
    /// How long each `complete` call ran.
    pub(super) complete_call: Histogram<u64>,
    /// How long each `create` call of the latency scenario's submitter ran
    /// (empty in the other scenarios).
    pub(super) create_call: Histogram<u64>,
}

impl Samples {
    pub(super) fn new() -> CliResult<Self> {
        Ok(Samples {
            start: histogram()?,
            complete: histogram()?,
            claim_call: histogram()?,
            complete_call: histogram()?,
            create_call: histogram()?,
        })
    }

    pub(super) fn merge(&mut self, other: &Samples) -> CliResult<()> {
        self.start.add(&other.start).map_err(internal)?;
        self.complete.add(&other.complete).map_err(internal)?;
        self.claim_call.add(&other.claim_call).map_err(internal)?;
        self.complete_call
            .add(&other.complete_call)
            .map_err(internal)?;
        self.create_call.add(&other.create_call).map_err(internal)?;
        Ok(())
    }
}

/// A histogram of microseconds up to an hour, at 3 significant digits;
/// longer samples are clamped to an hour.
pub(super) fn histogram() -> CliResult<Histogram<u64>> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).map_err(internal)
}

pub(super) fn internal(e: impl std::fmt::Display) -> CliError {
    CliError {
        message: format!("bench: {e}"),
        hint: None,
        code: 1,
    }
}

/// Figures of one run, before formatting.
#[derive(Debug)]
pub(super) struct Report {
    /// Executions completed that count towards `throughput_per_sec`.
    pub(super) counted: u64,
    /// Seconds over which `counted` were completed.
    pub(super) seconds: f64,
    pub(super) submit_per_sec: f64,
    pub(super) drain_per_sec: Option<f64>,
    pub(super) samples: Samples,
    /// The fair scenario's figures (see `scenarios::fairness`).
    pub(super) fairness: Option<Value>,
}

impl Report {
    pub(super) fn json(&self, shared: &Shared, args: &BenchArgs) -> Value {
        let ms = |h: &Histogram<u64>, q: f64| {
            if h.is_empty() {
                Value::Null
            } else {
                json!(round3(h.value_at_quantile(q) as f64 / 1000.0))
            }
        };
        let caps = shared.backend.capabilities();
        let mut doc = json!({
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
            "tenants": if matches!(args.scenario, Scenario::Limited | Scenario::Fair) { json!(args.tenants) } else { Value::Null },
            "limit_cap": if args.scenario == Scenario::Limited { json!(args.limit_cap) } else { Value::Null },
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
            "claim_call_p50_ms": ms(&self.samples.claim_call, 0.50),
            "claim_call_p99_ms": ms(&self.samples.claim_call, 0.99),
            "complete_call_p50_ms": ms(&self.samples.complete_call, 0.50),
            "complete_call_p99_ms": ms(&self.samples.complete_call, 0.99),
            "create_call_p50_ms": ms(&self.samples.create_call, 0.50),
            "create_call_p99_ms": ms(&self.samples.create_call, 0.99),
            "retries": shared.retries.load(Ordering::Relaxed),
        });
        if let (Some(fairness), Some(map)) = (&self.fairness, doc.as_object_mut()) {
            map.insert("heavy_factor".into(), json!(args.heavy_factor));
            map.insert("fairness".into(), fairness.clone());
        }
        doc
    }
}

pub(super) fn per_sec(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

pub(super) fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub(super) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub(super) fn print_table(doc: &Value) {
    const ROWS: [(&str, &str); 20] = [
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
        ("claim_call_p99_ms", "ms per claim call that took work"),
        ("complete_call_p99_ms", "ms per complete call"),
        ("create_call_p99_ms", "ms per create call (latency)"),
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
    if let Some(f) = doc.get("fairness") {
        for (key, unit) in [
            ("fair_limit", ""),
            ("claims_while_all_had_work", "claims"),
            ("heavy_share", "of claims while all had work"),
            ("light_share_min", "of claims while all had work"),
            ("light_share_max", "of claims while all had work"),
            ("light_done_at_max", "of the run: last light tenant served"),
        ] {
            if let Some(v) = f.get(key) {
                t.row([key.to_string(), v.to_string(), unit.to_string()]);
            }
        }
    }
    t.print_or("no figures");
}

/// A single-line progress report on standard error, when it is a terminal.
#[derive(Debug)]
pub(super) struct Progress {
    pub(super) stop: Arc<Notify>,
    pub(super) task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    pub(super) fn start(shared: Arc<Shared>, scenario: Scenario) -> Progress {
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

    pub(super) async fn stop(self) {
        self.stop.notify_one();
        if let Some(task) = self.task {
            let _ = task.await;
        }
    }
}
