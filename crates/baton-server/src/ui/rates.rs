//! Throughput for the overview: an in-memory sampler of the backend's
//! terminal counts.
//!
//! The server keeps no time series, and `HttpMetrics` sees only this
//! process's own HTTP calls. So every [`INTERVAL`] the sampler reads
//! `counts(ns)` (backend-wide: every worker, every node) and keeps each
//! lane's `(completed, failed)` in a ring of [`KEEP`] samples: 15 minutes in
//! fixed memory. A minute's bar is the difference between the samples at its
//! edges, per lane, clamped at 0: a minute in which the retention trim, a
//! delete or a replay lowered a lane's terminal counts is under-counted.
//!
//! It runs only while the dashboard is used: the first `/ui` request starts
//! it and it stops [`IDLE`] after the last one, so a deployment that never
//! opens the dashboard pays nothing for it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use baton_core::{Lane, Namespace, Timestamp};

use crate::AppState;
use crate::metrics::{MAX_AGE_LOOKUPS, MAX_NAMESPACES};

/// Time between two samples.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

/// Samples kept: 15 minutes and one more for the first edge.
pub(crate) const KEEP: usize = 91;

/// Minutes the chart shows.
pub(crate) const MINUTES: usize = 15;

/// The sampler stops this long after the last dashboard request.
pub(crate) const IDLE: Duration = Duration::from_secs(30 * 60);

/// `(completed, failed)` per namespace and lane at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sample {
    pub at: Timestamp,
    pub totals: BTreeMap<(Namespace, Lane), (u64, u64)>,
}

/// The ring of samples and whether the sampler runs.
#[derive(Debug, Default)]
struct Ring {
    samples: VecDeque<Sample>,
    running: bool,
    last_view: Option<Instant>,
}

impl Ring {
    fn push(&mut self, sample: Sample) {
        if self.samples.len() == KEEP {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }
}

/// The sampler's shared state (one per [`AppState`]).
#[derive(Debug, Default)]
pub(crate) struct Rates {
    ring: Mutex<Ring>,
}

/// Completed and failed in one minute; `None` where the ring has no sample
/// at one of its edges.
pub(crate) type Bucket = Option<(u64, u64)>;

impl Rates {
    /// Notes a dashboard request and starts the sampler if it is not
    /// running.
    pub(crate) fn touch(&self, state: &AppState) {
        let Ok(mut ring) = self.ring.lock() else {
            return;
        };
        ring.last_view = Some(Instant::now());
        if ring.running {
            return;
        }
        ring.running = true;
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                let sample = collect(&state).await;
                let idle = {
                    let Ok(mut ring) = state.rates().ring.lock() else {
                        return;
                    };
                    ring.push(sample);
                    let idle = ring.last_view.is_none_or(|t| t.elapsed() > IDLE);
                    if idle {
                        ring.running = false;
                    }
                    idle
                };
                if idle {
                    return;
                }
                tokio::time::sleep(INTERVAL).await;
            }
        });
    }

    /// Adds a sample, as the sampler does.
    #[cfg(test)]
    pub(crate) fn record(&self, sample: Sample) {
        if let Ok(mut ring) = self.ring.lock() {
            ring.push(sample);
        }
    }

    /// The samples held, oldest first.
    pub(crate) fn samples(&self) -> Vec<Sample> {
        self.ring
            .lock()
            .map(|r| r.samples.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// One sample of every namespace the overview can show (bounded as the
/// metrics scrape is); a namespace whose counts fail is left out of it.
async fn collect(state: &AppState) -> Sample {
    let backend = state.backend();
    let mut namespaces: BTreeSet<Namespace> = state.metrics().seen_namespaces();
    if let Ok(default) = Namespace::new("default") {
        namespaces.insert(default);
    }
    if let Ok(held) = backend.namespaces(MAX_NAMESPACES).await {
        namespaces.extend(held);
    }
    let mut totals = BTreeMap::new();
    for ns in namespaces.into_iter().take(2 * MAX_NAMESPACES) {
        let Ok(counts) = backend.counts(&ns).await else {
            continue;
        };
        for (lane, c) in counts.into_iter().take(MAX_AGE_LOOKUPS) {
            totals.insert((ns.clone(), lane), (c.completed, c.failed));
        }
    }
    Sample {
        at: Timestamp::now_system(),
        totals,
    }
}

/// The latest sample taken at or before `at`.
fn at_or_before(samples: &[Sample], at: Timestamp) -> Option<&Sample> {
    samples.iter().rev().find(|s| s.at <= at)
}

/// What finished between two samples over the lanes `keep` selects, each
/// lane's difference clamped at 0.
fn between(from: &Sample, to: &Sample, keep: &impl Fn(&Namespace, &Lane) -> bool) -> (u64, u64) {
    let mut sum = (0, 0);
    for ((ns, lane), (c, f)) in &to.totals {
        if !keep(ns, lane) {
            continue;
        }
        let (c0, f0) = from
            .totals
            .get(&(ns.clone(), lane.clone()))
            .copied()
            .unwrap_or((0, 0));
        sum.0 += c.saturating_sub(c0);
        sum.1 += f.saturating_sub(f0);
    }
    sum
}

/// The last [`MINUTES`] minutes ending at `now`, oldest first.
pub(crate) fn buckets(
    samples: &[Sample],
    now: Timestamp,
    keep: &impl Fn(&Namespace, &Lane) -> bool,
) -> Vec<Bucket> {
    (0..MINUTES)
        .map(|i| {
            let end = now.saturating_sub(Duration::from_secs(60 * (MINUTES - 1 - i) as u64));
            let start = end.saturating_sub(Duration::from_secs(60));
            let to = at_or_before(samples, end)?;
            let from = at_or_before(samples, start)?;
            Some(between(from, to, keep))
        })
        .collect()
}

/// `failed / (completed + failed)` over the `window` ending at `now`, with
/// the span it covers (shorter than `window` while the ring fills); `None`
/// before two samples or when nothing finished.
pub(crate) fn failure_rate(
    samples: &[Sample],
    now: Timestamp,
    window: Duration,
    keep: &impl Fn(&Namespace, &Lane) -> bool,
) -> Option<f64> {
    let to = at_or_before(samples, now)?;
    let start = now.saturating_sub(window);
    let from = at_or_before(samples, start).or_else(|| samples.first())?;
    if from.at >= to.at {
        return None;
    }
    let (c, f) = between(from, to, keep);
    (c + f > 0).then(|| f as f64 / (c + f) as f64)
}

/// A failure rate for people: `2.5%`, or `—` when unknown.
pub(crate) fn percent(rate: Option<f64>) -> String {
    match rate {
        Some(r) => format!("{:.1}%", r * 100.0),
        None => "—".into(),
    }
}

/// The chart: stacked bars of completed (`ok`) and failed (`bad`) per
/// minute, as inline SVG built from numbers and fixed text only (it is
/// the one piece of markup the templates output unescaped).
pub(crate) fn chart(buckets: &[Bucket]) -> String {
    const W: usize = 20;
    const H: u64 = 100;
    let max = buckets
        .iter()
        .flatten()
        .map(|(c, f)| c + f)
        .max()
        .unwrap_or(0)
        .max(1);
    let width = W * buckets.len();
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg id=\"throughput\" class=\"chart\" viewBox=\"0 0 {width} {}\" \
         preserveAspectRatio=\"none\" role=\"img\" \
         aria-label=\"Completed and failed executions per minute\">",
        H + 2
    );
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"0\" y1=\"{H}\" x2=\"{width}\" y2=\"{H}\"/>"
    );
    let n = buckets.len();
    for (i, b) in buckets.iter().enumerate() {
        let x = i * W + 1;
        let minutes_ago = n - 1 - i;
        let Some((c, f)) = b else {
            let _ = write!(
                svg,
                "<rect class=\"none\" x=\"{x}\" y=\"{}\" width=\"{}\" height=\"2\"><title>no data</title></rect>",
                H - 2,
                W - 2
            );
            continue;
        };
        let hc = c * H / max;
        let hf = f * H / max;
        let label = match minutes_ago {
            0 => "this minute".to_owned(),
            1 => "1 minute ago".to_owned(),
            m => format!("{m} minutes ago"),
        };
        let _ = write!(svg, "<g><title>{label}: {c} completed, {f} failed</title>");
        if hc > 0 {
            let _ = write!(
                svg,
                "<rect class=\"ok\" x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{hc}\"/>",
                H - hc,
                W - 2
            );
        }
        if hf > 0 {
            let _ = write!(
                svg,
                "<rect class=\"bad\" x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{hf}\"/>",
                H - hc - hf,
                W - 2
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key(ns: &str, lane: &str) -> (Namespace, Lane) {
        (Namespace::new(ns).unwrap(), Lane::new(lane).unwrap())
    }

    fn sample(secs: i64, lanes: &[(&str, u64, u64)]) -> Sample {
        Sample {
            at: Timestamp::from_millis(secs * 1000),
            totals: lanes
                .iter()
                .map(|(l, c, f)| (key("default", l), (*c, *f)))
                .collect(),
        }
    }

    fn all(_: &Namespace, _: &Lane) -> bool {
        true
    }

    #[test]
    fn a_bucket_is_the_difference_at_its_edges() {
        let now = 10_000;
        let samples = vec![
            sample(now - 120, &[("a", 10, 1)]),
            sample(now - 60, &[("a", 15, 2)]),
            sample(now - 30, &[("a", 17, 2)]),
            sample(now, &[("a", 20, 4), ("b", 3, 0)]),
        ];
        let b = buckets(&samples, Timestamp::from_millis(now * 1000), &all);
        assert_eq!(b.len(), MINUTES);
        // The last minute: a 15→20 and 2→4, lane b new (from 0).
        assert_eq!(b[MINUTES - 1], Some((8, 2)));
        assert_eq!(b[MINUTES - 2], Some((5, 1)));
        // Before the first sample: no data.
        assert_eq!(b[0], None);
        assert_eq!(b[MINUTES - 3], None);
    }

    #[test]
    fn a_lowered_count_is_clamped_per_lane() {
        let now = 10_000;
        let samples = vec![
            sample(now - 60, &[("a", 50, 5), ("b", 1, 0)]),
            // The trim took 40 completed of lane a; lane b finished 3.
            sample(now, &[("a", 10, 6), ("b", 4, 0)]),
        ];
        let b = buckets(&samples, Timestamp::from_millis(now * 1000), &all);
        assert_eq!(b[MINUTES - 1], Some((3, 1)));
    }

    #[test]
    fn the_failure_rate_and_the_lane_filter() {
        let now = 10_000;
        let samples = vec![
            sample(now - 300, &[("a", 0, 0), ("b", 0, 0)]),
            sample(now, &[("a", 3, 1), ("b", 0, 4)]),
        ];
        let t = Timestamp::from_millis(now * 1000);
        let r = failure_rate(&samples, t, Duration::from_secs(300), &all).unwrap();
        assert!((r - 5.0 / 8.0).abs() < 1e-9);
        let only_a = |_: &Namespace, l: &Lane| l.as_str() == "a";
        let r = failure_rate(&samples, t, Duration::from_secs(300), &only_a).unwrap();
        assert!((r - 0.25).abs() < 1e-9);
        assert_eq!(percent(Some(0.25)), "25.0%");
        assert_eq!(
            failure_rate(&samples[..1], t, Duration::from_secs(300), &all),
            None
        );
    }

    #[test]
    fn the_ring_is_bounded() {
        let rates = Rates::default();
        for i in 0..(KEEP as i64 + 10) {
            rates.record(sample(i * 10, &[("a", i as u64, 0)]));
        }
        let held = rates.samples();
        assert_eq!(held.len(), KEEP);
        assert_eq!(held[0].at, Timestamp::from_millis(10 * 10_000));
    }

    #[test]
    fn the_chart_holds_numbers_and_fixed_text_only() {
        let svg = chart(&[None, Some((3, 1)), Some((0, 0))]);
        assert!(svg.starts_with("<svg id=\"throughput\""));
        assert!(svg.contains("class=\"ok\""));
        assert!(svg.contains("class=\"bad\""));
        assert!(svg.contains("3 completed, 1 failed"));
        assert!(!svg.contains("style="));
    }
}
