//! `GET /metrics`: Prometheus text exposition, written by hand.
//!
//! Counters of what this server did, the engine's scheduler counters, gauges
//! per lane read from the backend at scrape time, and a request latency
//! histogram per route.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use baton_core::{ListFilter, Namespace, Page, State as ExecState, Timestamp};

use crate::AppState;

/// Upper bounds of the latency histogram, in seconds. Long-poll claims wait up
/// to a minute, hence the long tail.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 60.0,
];

/// Namespaces the per-lane gauges cover: the first this many the backend
/// holds (ascending), plus up to this many more that requests used; more
/// are not reported, so a scrape stays bounded however many tenants exist.
pub(crate) const MAX_NAMESPACES: usize = 64;

/// Lanes per namespace whose oldest waiting execution is looked up per scrape.
pub(crate) const MAX_AGE_LOOKUPS: usize = 256;

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// Request key: route template, method, status.
type RequestKey = (String, String, u16);

/// What this server process counted since it started.
#[derive(Debug, Default)]
pub(crate) struct HttpMetrics {
    pub(crate) submitted: AtomicU64,
    pub(crate) claimed: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retried: AtomicU64,
    requests: Mutex<BTreeMap<RequestKey, u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    namespaces: Mutex<BTreeSet<Namespace>>,
}

impl HttpMetrics {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Remembers a namespace that requests used, for the per-lane gauges.
    pub(crate) fn saw_namespace(&self, ns: &Namespace) {
        if let Ok(mut set) = self.namespaces.lock()
            && set.len() < MAX_NAMESPACES
        {
            set.insert(ns.clone());
        }
    }

    /// The namespaces requests used (at most [`MAX_NAMESPACES`]).
    pub(crate) fn seen_namespaces(&self) -> BTreeSet<Namespace> {
        self.namespaces
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    fn record(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        if let Ok(mut map) = self.requests.lock() {
            *map.entry((route.to_owned(), method.to_owned(), status))
                .or_default() += 1;
        }
        if let Ok(mut map) = self.latency.lock() {
            map.entry((route.to_owned(), method.to_owned()))
                .or_default()
                .observe(elapsed.as_secs_f64());
        }
    }
}

/// Middleware recording count and latency of every routed request.
pub(crate) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(req).await;
    state
        .metrics()
        .record(&route, &method, response.status().as_u16(), start.elapsed());
    response
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let text = render(&state).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    head(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

/// Escapes a label value (backslash, double quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

async fn render(state: &AppState) -> String {
    let m = state.metrics();
    let mut out = String::new();
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    counter(
        &mut out,
        "baton_executions_submitted_total",
        "Executions created through this server (repeated idempotency keys not counted).",
        load(&m.submitted),
    );
    counter(
        &mut out,
        "baton_executions_claimed_total",
        "Executions handed to workers by claim.",
        load(&m.claimed),
    );
    counter(
        &mut out,
        "baton_executions_completed_total",
        "Complete calls answered with a completed execution.",
        load(&m.completed),
    );
    counter(
        &mut out,
        "baton_executions_failed_total",
        "Fail calls that ended the execution as failed (attempts exhausted or not retryable).",
        load(&m.failed),
    );
    counter(
        &mut out,
        "baton_executions_retried_total",
        "Fail calls after which the execution will be attempted again.",
        load(&m.retried),
    );
    if let Some(e) = state.engine_metrics() {
        for (name, help, value) in [
            (
                "baton_executions_promoted_total",
                "Delayed executions the scheduler made waiting.",
                &e.promoted,
            ),
            (
                "baton_executions_reclaimed_total",
                "Expired leases the scheduler reclaimed.",
                &e.reclaimed,
            ),
            (
                "baton_executions_expired_total",
                "Executions the scheduler expired at their deadline.",
                &e.expired,
            ),
            (
                "baton_executions_timed_out_total",
                "Suspended executions whose wait timed out (resumed, failed or cancelled as their suspension said).",
                &e.timed_out,
            ),
            (
                "baton_executions_trimmed_total",
                "Terminal executions deleted after their retention.",
                &e.trimmed,
            ),
            (
                "baton_executions_cascaded_total",
                "Descendants the scheduler's cascade pass cancelled, finishing cancels whose subtree did not fit in the cancel call.",
                &e.cascaded,
            ),
            (
                "baton_scheduler_errors_total",
                "Scheduler passes that failed and were retried.",
                &e.errors,
            ),
        ] {
            counter(&mut out, name, help, load(value));
        }
        for (name, help, value) in [
            (
                "baton_engine_owned_partitions",
                "Partitions this process's scheduler owns.",
                &e.owned_partitions,
            ),
            (
                "baton_engine_live_nodes",
                "Engine processes alive at the last ownership heartbeat.",
                &e.live_nodes,
            ),
        ] {
            head(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {}", load(value));
        }
    }
    counter(
        &mut out,
        "baton_claims_limited_total",
        "Waiting executions claims in this process passed over because a limit had no room for their key.",
        baton_core::raw::counters::passed_by_limits_total(),
    );
    lane_gauges(state, &mut out).await;
    limit_gauges(state, &mut out).await;
    requests(m, &mut out);
    out
}

/// Keys of limits reported per scrape at most, so a scrape stays bounded
/// however many tenants a limit counts.
const MAX_LIMIT_KEYS: usize = 1_000;

/// `baton_limit_running` and `baton_limit_window_claims` per limit and key
/// with runs or recent claims, read from the backend at scrape time.
async fn limit_gauges(state: &AppState, out: &mut String) {
    let backend = state.backend();
    let Ok(limits) = backend.limits(None).await else {
        return;
    };
    let mut running = String::new();
    let mut window = String::new();
    let mut left = MAX_LIMIT_KEYS;
    for limit in &limits {
        if left == 0 {
            break;
        }
        let Ok(usage) = backend
            .limit_usage(&limit.name, left.min(Page::MAX_LIMIT))
            .await
        else {
            continue;
        };
        left = left.saturating_sub(usage.len());
        for u in usage {
            let labels = format!(
                "namespace=\"{}\",limit=\"{}\",key=\"{}\"",
                label(limit.namespace.as_str()),
                label(limit.name.as_str()),
                label(&u.key_value)
            );
            let _ = writeln!(running, "baton_limit_running{{{labels}}} {}", u.running);
            if limit.rate.is_some() {
                let _ = writeln!(
                    window,
                    "baton_limit_window_claims{{{labels}}} {}",
                    u.window_claims
                );
            }
        }
    }
    head(
        out,
        "baton_limit_running",
        "gauge",
        "Executions running now per limit and key (keys with runs or recent claims).",
    );
    out.push_str(&running);
    head(
        out,
        "baton_limit_window_claims",
        "gauge",
        "Claims per limit and key in the rate's window ending now.",
    );
    out.push_str(&window);
}

async fn lane_gauges(state: &AppState, out: &mut String) {
    let mut namespaces = state.metrics().seen_namespaces();
    if let Ok(default) = Namespace::new("default") {
        namespaces.insert(default);
    }
    let backend = state.backend();
    let now = Timestamp::now_system();
    let mut up = 1;
    // Also the namespaces other processes wrote (and this one has not seen
    // since it started).
    match backend.namespaces(MAX_NAMESPACES).await {
        Ok(held) => namespaces.extend(held),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot list namespaces");
            up = 0;
        }
    }
    let mut depth = String::new();
    let mut by_state = String::new();
    let mut age_out = String::new();
    for ns in &namespaces {
        let counts = match backend.counts(ns).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(namespace = %ns, error = %e, "metrics: cannot count executions");
                up = 0;
                continue;
            }
        };
        let mut lookups = 0;
        for (lane, c) in &counts {
            let labels = format!(
                "namespace=\"{}\",lane=\"{}\"",
                label(ns.as_str()),
                label(lane.as_str())
            );
            let _ = writeln!(depth, "baton_queue_depth{{{labels}}} {}", c.waiting);
            for s in ExecState::ALL {
                let _ = writeln!(
                    by_state,
                    "baton_executions{{{labels},state=\"{s}\"}} {}",
                    c.get(s)
                );
            }
            if c.waiting == 0 || lookups >= MAX_AGE_LOOKUPS {
                continue;
            }
            lookups += 1;
            match oldest_waiting(backend.as_ref(), ns, lane, now).await {
                Ok(Some(age)) => {
                    let secs = age.as_secs_f64();
                    let _ = writeln!(
                        age_out,
                        "baton_queue_oldest_waiting_age_seconds{{{labels}}} {secs:.3}"
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(namespace = %ns, lane = %lane, error = %e, "metrics: cannot read the oldest waiting execution");
                    up = 0;
                }
            }
        }
    }
    head(
        out,
        "baton_backend_up",
        "gauge",
        "1 when the backend answered this scrape's reads.",
    );
    let _ = writeln!(out, "baton_backend_up {up}");
    head(
        out,
        "baton_queue_depth",
        "gauge",
        "Waiting executions per lane.",
    );
    out.push_str(&depth);
    head(
        out,
        "baton_executions",
        "gauge",
        "Executions per lane and state.",
    );
    out.push_str(&by_state);
    head(
        out,
        "baton_queue_oldest_waiting_age_seconds",
        "gauge",
        "How long the oldest waiting execution of a lane has been waiting.",
    );
    out.push_str(&age_out);
}

/// How long the oldest waiting execution of a lane has waited, `None` when
/// none waits: the waiting execution with the lowest id (the oldest
/// created), whose last state change is when it became waiting. Close to
/// the true oldest waiting age at the price of one indexed read; what the
/// metrics gauge and the dashboard show.
pub(crate) async fn oldest_waiting(
    backend: &dyn baton_core::AdminBackend,
    ns: &Namespace,
    lane: &baton_core::Lane,
    now: Timestamp,
) -> baton_core::Result<Option<Duration>> {
    let filter = ListFilter::namespace(ns.clone())
        .with_lane(lane.clone())
        .with_state(ExecState::Waiting);
    let page = backend.list(&filter, Page::first(1)).await?;
    Ok(page
        .items
        .first()
        .map(|first| now.duration_since(first.updated_at)))
}

fn requests(m: &HttpMetrics, out: &mut String) {
    head(
        out,
        "baton_http_requests_total",
        "counter",
        "HTTP requests by route, method and status.",
    );
    if let Ok(map) = m.requests.lock() {
        for ((route, method, status), n) in map.iter() {
            let _ = writeln!(
                out,
                "baton_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                label(route)
            );
        }
    }
    let name = "baton_http_request_duration_seconds";
    head(
        out,
        name,
        "histogram",
        "HTTP request latency by route and method (long-poll claims include their wait).",
    );
    if let Ok(map) = m.latency.lock() {
        for ((route, method), h) in map.iter() {
            let labels = format!("route=\"{}\",method=\"{method}\"", label(route));
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(h.buckets.iter()) {
                cumulative += n;
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {:.6}", h.sum);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_when_rendered() {
        let m = HttpMetrics::default();
        m.record("/v1/stats", "GET", 200, Duration::from_millis(3));
        m.record("/v1/stats", "GET", 200, Duration::from_millis(300));
        m.record("/v1/stats", "GET", 200, Duration::from_secs(120));
        let mut out = String::new();
        requests(&m, &mut out);
        assert!(out.contains(
            "baton_http_requests_total{route=\"/v1/stats\",method=\"GET\",status=\"200\"} 3"
        ));
        assert!(out.contains(
            "baton_http_request_duration_seconds_bucket{route=\"/v1/stats\",method=\"GET\",le=\"0.005\"} 1"
        ));
        assert!(out.contains(
            "baton_http_request_duration_seconds_bucket{route=\"/v1/stats\",method=\"GET\",le=\"0.5\"} 2"
        ));
        assert!(out.contains(
            "baton_http_request_duration_seconds_bucket{route=\"/v1/stats\",method=\"GET\",le=\"60\"} 2"
        ));
        assert!(out.contains(
            "baton_http_request_duration_seconds_bucket{route=\"/v1/stats\",method=\"GET\",le=\"+Inf\"} 3"
        ));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
