//! # baton-server
//!
//! Baton's HTTP API v1 over any [`AdminBackend`]: submitting, inspecting and
//! cancelling executions, the worker protocol (claim with long-polling, renew,
//! complete, fail), stats, Prometheus metrics and the OpenAPI document.
//! The routes, field names and status codes are the public contract written
//! down in `docs/HTTP-API.md`; the bodies and answers are `baton-api`'s
//! types, the routes [`baton_api::Route`]'s, and [`OPENAPI`] describes them.
//!
//! | route | what |
//! |-------|------|
//! | `POST /v1/executions` | submit one |
//! | `POST /v1/executions/batch` | submit many, in one backend call |
//! | `GET /v1/executions` | list, filtered, with a cursor |
//! | `GET /v1/executions/{id}` | the snapshot (`?attempts=true` adds `attempt_history`) |
//! | `POST /v1/executions/{id}/cancel` | cancel it and (by default) its descendants |
//! | `GET /v1/executions/{id}/children` | its children, with a cursor |
//! | `GET /v1/executions/{id}/tree` | the flow it belongs to |
//! | `POST /v1/lanes/{lane}/claim` | claim work, optionally waiting for it |
//! | `POST /v1/executions/{id}/complete` | complete with the lease |
//! | `POST /v1/executions/{id}/fail` | fail with the lease |
//! | `POST /v1/executions/{id}/wait-children` | hand the lease back until the children finish |
//! | `POST /v1/executions/{id}/release` | hand the lease back, no attempt consumed |
//! | `POST /v1/executions/{id}/suspend` | wait for signals or a timer without a worker |
//! | `POST /v1/executions/{id}/signals/{name}` | deliver a signal (API token or waitpoint token) |
//! | `GET /v1/executions/{id}/signals` | the signals it holds |
//! | `POST /v1/executions/{id}/steps/{name}` | record a step under the lease |
//! | `GET /v1/executions/{id}/steps` | the steps it recorded |
//! | `POST /v1/leases/renew` | renew every lease of a worker |
//! | `GET /v1/stats` | counts per lane and state |
//! | `GET /healthz`, `GET /metrics`, `GET /v1/openapi.json` | operations |
//!
//! Errors are `{"error": {"code", "message", "field"?, "state"?}}`; see
//! [`ApiError`] and [`baton_api::ErrorBody`].
//!
//! Beside the API, outside its contract: the dashboard, HTML pages under
//! `/ui` rendered from the askama templates in `templates/` (RFC 0012; `/`
//! redirects there; [`ServerConfig::ui`] leaves it out). A request that
//! changes something and that a browser sent from another site (its
//! `Origin` or `Sec-Fetch-Site` says so) is refused with `403 forbidden`,
//! on the API as on the dashboard.
//!
//! ```no_run
//! # async fn demo(backend: std::sync::Arc<dyn baton_core::AdminBackend>) -> std::io::Result<()> {
//! use baton_server::{AppState, ServerConfig};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7420").await?;
//! let state = AppState::new(backend, ServerConfig::default());
//! // Any future: a signal handler, a oneshot receiver…
//! let stop = std::future::pending::<()>();
//! baton_server::serve(listener, state, stop).await
//! # }
//! ```

mod body;
mod control;
mod error;
mod executions;
mod extract;
mod flows;
mod memory;
mod metrics;
mod ops;
mod ui;
mod waitpoint;
mod waits;
mod worker;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use baton_api::{Method, Route};
use baton_core::AdminBackend;
use baton_engine::SchedulerMetrics;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use body::{DRAIN_BYTES, DRAIN_TIME, MAX_HEADER_BYTES, MAX_URI_BYTES};
pub use error::{ApiError, ApiResult};
pub use waitpoint::{MIN_SECRET_BYTES, Refusal, WaitpointKeys};
pub use waits::WAITPOINT_TOKEN_HEADER;

use metrics::HttpMetrics;

/// The OpenAPI 3 document of the API, as served at `GET /v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Server settings.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// When set, every route except `/healthz` requires
    /// `Authorization: Bearer <token>`.
    pub api_token: Option<String>,
    /// Largest request body accepted; larger bodies answer `413`. `None`: the
    /// backend's payload limit plus 1 MiB of headroom for the other fields
    /// and JSON escaping.
    pub max_body_bytes: Option<usize>,
    /// Longest a claim may wait for work (`wait_ms` is capped at this).
    /// Default 60 s.
    pub max_wait: Duration,
    /// While a claim waits, it tries again at least this often even without
    /// a wake-up, so that work submitted by another process (or in the
    /// instant before the waiter registered) is picked up. Default 1 s.
    pub recheck: Duration,
    /// The keys waitpoint tokens are signed with; without them a suspend
    /// answers no tokens and signals need the API token.
    pub waitpoint_keys: Option<WaitpointKeys>,
    /// Serve the dashboard under `/ui` (and redirect `/` there). Default
    /// true.
    pub ui: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            api_token: None,
            max_body_bytes: None,
            max_wait: Duration::from_secs(60),
            recheck: Duration::from_secs(1),
            waitpoint_keys: None,
            ui: true,
        }
    }
}

impl ServerConfig {
    /// Requires `Authorization: Bearer <token>` on every route but `/healthz`.
    pub fn with_api_token(mut self, token: impl Into<String>) -> Self {
        self.api_token = Some(token.into());
        self
    }

    /// Signs and verifies waitpoint tokens with `keys`.
    pub fn with_waitpoint_keys(mut self, keys: WaitpointKeys) -> Self {
        self.waitpoint_keys = Some(keys);
        self
    }

    /// Serves the dashboard under `/ui` or leaves it out.
    pub fn with_ui(mut self, ui: bool) -> Self {
        self.ui = ui;
        self
    }

    /// Sets the largest accepted request body.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = Some(bytes);
        self
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            // The token is a credential; only say whether there is one.
            .field("api_token", &self.api_token.as_ref().map(|_| "<set>"))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_wait", &self.max_wait)
            .field("recheck", &self.recheck)
            .field("waitpoint_keys", &self.waitpoint_keys)
            .field("ui", &self.ui)
            .finish()
    }
}

/// What every handler shares: the backend, the settings and the counters.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    backend: Arc<dyn AdminBackend>,
    config: ServerConfig,
    body_limit: usize,
    engine: Option<Arc<SchedulerMetrics>>,
    metrics: HttpMetrics,
    rates: ui::Rates,
    draining: watch::Sender<bool>,
}

impl AppState {
    /// State for serving `backend` with `config`.
    pub fn new(backend: Arc<dyn AdminBackend>, config: ServerConfig) -> Self {
        Self::build(backend, config, None)
    }

    /// Also reports the counters of an engine running in this process on
    /// `/metrics` (promoted, reclaimed, expired, trimmed, cascaded, owned
    /// partitions).
    /// Call it while building the state: the answer is a fresh state whose
    /// request counters start at zero.
    pub fn with_engine_metrics(self, engine: Arc<SchedulerMetrics>) -> Self {
        let inner = &self.inner;
        Self::build(inner.backend.clone(), inner.config.clone(), Some(engine))
    }

    fn build(
        backend: Arc<dyn AdminBackend>,
        config: ServerConfig,
        engine: Option<Arc<SchedulerMetrics>>,
    ) -> Self {
        let body_limit = config
            .max_body_bytes
            .unwrap_or_else(|| backend.capabilities().limits.max_payload_bytes + (1 << 20));
        let (draining, _) = watch::channel(false);
        AppState {
            inner: Arc::new(Inner {
                backend,
                config,
                body_limit,
                engine,
                metrics: HttpMetrics::default(),
                rates: ui::Rates::default(),
                draining,
            }),
        }
    }

    /// The backend requests go to.
    pub fn backend(&self) -> &Arc<dyn AdminBackend> {
        &self.inner.backend
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// Largest request body accepted, in bytes.
    pub fn body_limit(&self) -> usize {
        self.inner.body_limit
    }

    /// Tells waiting claims to answer now (with whatever they have, usually
    /// nothing) so that a graceful shutdown is not held up by long-polls.
    /// [`serve`] calls it when its shutdown signal fires.
    pub fn begin_shutdown(&self) {
        self.inner.draining.send_replace(true);
    }

    fn draining(&self) -> watch::Receiver<bool> {
        self.inner.draining.subscribe()
    }

    fn metrics(&self) -> &HttpMetrics {
        &self.inner.metrics
    }

    fn rates(&self) -> &ui::Rates {
        &self.inner.rates
    }

    fn engine_metrics(&self) -> Option<&SchedulerMetrics> {
        self.inner.engine.as_deref()
    }
}

/// The handler of `route`, answering only the route's method. The match is
/// exhaustive, so a route added to [`Route`] does not build without one.
fn endpoint(route: Route) -> MethodRouter<AppState> {
    let method = match route.method() {
        Method::Get => MethodFilter::GET,
        Method::Post => MethodFilter::POST,
        Method::Put => MethodFilter::PUT,
        Method::Delete => MethodFilter::DELETE,
    };
    match route {
        Route::Submit => on(method, executions::submit),
        Route::SubmitBatch => on(method, executions::submit_batch),
        Route::List => on(method, executions::list),
        Route::Describe => on(method, executions::describe),
        Route::DescribeMany => on(method, executions::describe_many),
        Route::BulkCancel => on(method, executions::bulk_cancel),
        Route::BulkReplay => on(method, executions::bulk_replay),
        Route::BulkDelete => on(method, executions::bulk_delete),
        Route::Delete => on(method, control::delete),
        Route::Events => on(method, control::events),
        Route::SetHistory => on(method, control::set_history),
        Route::History => on(method, control::history),
        Route::SetRetention => on(method, control::set_retention),
        Route::RemoveRetention => on(method, control::remove_retention),
        Route::Retention => on(method, control::retention),
        Route::SetLimit => on(method, control::set_limit),
        Route::RemoveLimit => on(method, control::remove_limit),
        Route::Limits => on(method, control::limits),
        Route::LimitUsage => on(method, control::limit_usage),
        Route::Cancel => on(method, flows::cancel),
        Route::Children => on(method, flows::children),
        Route::Tree => on(method, flows::tree),
        Route::Claim => on(method, worker::claim),
        Route::Complete => on(method, worker::complete),
        Route::Fail => on(method, worker::fail),
        Route::WaitChildren => on(method, worker::wait_children),
        Route::Release => on(method, waits::release),
        Route::Suspend => on(method, waits::suspend),
        Route::Signal => on(method, waits::signal),
        Route::Signals => on(method, waits::signals),
        Route::RecordStep => on(method, memory::record_step),
        Route::Steps => on(method, memory::steps),
        Route::SetStatus => on(method, memory::set_status),
        Route::AppendProgress => on(method, memory::append_progress),
        Route::Progress => on(method, memory::progress),
        Route::SetState => on(method, memory::set_state),
        Route::ClearState => on(method, memory::clear_state),
        Route::State => on(method, memory::execution_state),
        Route::SetPriority => on(method, control::set_priority),
        Route::SetTag => on(method, control::set_tag),
        Route::RemoveTag => on(method, control::remove_tag),
        Route::Revoke => on(method, control::revoke),
        Route::Workers => on(method, control::workers),
        Route::Explain => on(method, control::explain),
        Route::Pause => on(method, control::pause),
        Route::Resume => on(method, control::resume),
        Route::Replay => on(method, control::replay),
        Route::PauseLane => on(method, control::pause_lane),
        Route::ResumeLane => on(method, control::resume_lane),
        Route::Lanes => on(method, control::lanes),
        Route::Renew => on(method, worker::renew),
        Route::Stats => on(method, executions::stats),
        Route::Health => on(method, ops::healthz),
        Route::Metrics => on(method, metrics::metrics),
        Route::OpenApi => on(method, ops::openapi),
    }
}

/// The routes the server serves: exactly [`Route::ALL`], each with its
/// method. [`router`] is built from this list.
pub fn routes() -> &'static [Route] {
    &Route::ALL
}

/// The API as an axum [`Router`], ready to serve or to nest.
pub fn router(state: AppState) -> Router {
    let mut public = Router::new();
    let mut protected = Router::new();
    for &route in routes() {
        if route.requires_token() {
            protected = protected.route(route.path(), endpoint(route));
        } else {
            public = public.route(route.path(), endpoint(route));
        }
    }
    let protected =
        protected.route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let mut app = public
        .merge(protected)
        .route_layer(middleware::from_fn(refuse_cross_site));
    if state.config().ui {
        app = app.merge(ui::router(state.clone()));
    }
    app.fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(state.body_limit()))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            body::read_whole,
        ))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then stops
/// accepting connections, ends waiting claims and returns once in-flight
/// requests have been answered.
///
/// # Errors
/// Only I/O errors of the listener.
pub async fn serve<F>(listener: TcpListener, state: AppState, shutdown: F) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let drain = state.clone();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            drain.begin_shutdown();
        })
        .await
}

/// Compares a presented secret with the expected one in time that depends
/// only on the expected secret's length.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= given.get(i).copied().unwrap_or(0) ^ e;
    }
    std::hint::black_box(diff) == 0
}

fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Whether the request carries the server's API token (false when the
/// server has none).
fn bearer_matches(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    state.config().api_token.as_ref().is_some_and(|expected| {
        bearer(headers).is_some_and(|t| same_secret(t.as_bytes(), expected.as_bytes()))
    })
}

/// Why a browser's request comes from another site, if it does: its
/// `Sec-Fetch-Site` says `cross-site` or `same-site`, or its `Origin` is
/// not `http(s)://` and the `Host` it was sent to (or, behind a proxy that
/// rewrites `Host`, the `X-Forwarded-Host` the proxy passed on: a page on
/// another site cannot add that header without a preflight, which this
/// server never answers). Programs that are not browsers send neither
/// `Origin` nor `Sec-Fetch-Site` and are never refused.
pub(crate) fn cross_site(headers: &axum::http::HeaderMap) -> Option<&'static str> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("");
        if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
            return Some("the browser sent it from another site (Sec-Fetch-Site)");
        }
    }
    let origin = headers.get(header::ORIGIN)?.to_str().unwrap_or("");
    let origin = origin.to_ascii_lowercase();
    let Some(origin_host) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return Some("the browser sent it from another origin (Origin is not this server)");
    };
    let same = [header::HOST.as_str(), "x-forwarded-host"]
        .iter()
        .filter_map(|name| headers.get(*name)?.to_str().ok())
        .any(|host| host.trim().eq_ignore_ascii_case(origin_host));
    (!same).then_some("the browser sent it from another origin (Origin is not this server)")
}

/// Refuses (`403 forbidden`) a request that changes something when a
/// browser sent it from another site: without a token the API takes a body
/// of any content type, so a page elsewhere could post a `text/plain` JSON
/// body without a preflight.
async fn refuse_cross_site(req: Request, next: Next) -> Response {
    let safe = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if !safe && let Some(why) = cross_site(req.headers()) {
        return ApiError::forbidden(why).into_response();
    }
    next.run(req).await
}

async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.config().api_token.is_some() && !bearer_matches(&state, req.headers()) {
        return ApiError::unauthorized().into_response();
    }
    next.run(req).await
}

async fn no_route(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route {} {}; the routes are listed at /v1/openapi.json",
            req.method(),
            req.uri().path()
        ),
    )
}

async fn wrong_method(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}; the routes are listed at /v1/openapi.json",
            req.method(),
            req.uri().path()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cre", b"s3cret"));
        assert!(!same_secret(b"s3cretX", b"s3cret"));
        assert!(!same_secret(b"S3cret", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
    }

    #[test]
    fn cross_site_requests_are_told_apart() {
        let judge = |pairs: &[(&'static str, &'static str)]| {
            let mut h = axum::http::HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, axum::http::HeaderValue::from_static(v));
            }
            cross_site(&h).is_some()
        };
        // Programs: no browser headers.
        assert!(!judge(&[]));
        assert!(!judge(&[("host", "baton:7420")]));
        // The server's own pages.
        assert!(!judge(&[
            ("host", "baton:7420"),
            ("origin", "http://baton:7420")
        ]));
        assert!(!judge(&[
            ("host", "Baton:7420"),
            ("origin", "https://baton:7420")
        ]));
        assert!(!judge(&[
            ("host", "baton:7420"),
            ("sec-fetch-site", "same-origin")
        ]));
        assert!(!judge(&[
            ("host", "baton:7420"),
            ("sec-fetch-site", "none")
        ]));
        // Behind a proxy that rewrote Host.
        assert!(!judge(&[
            ("host", "127.0.0.1:7420"),
            ("x-forwarded-host", "baton.example.com"),
            ("origin", "https://baton.example.com"),
        ]));
        // Other sites.
        assert!(judge(&[
            ("host", "baton:7420"),
            ("origin", "http://evil.example")
        ]));
        assert!(judge(&[
            ("host", "baton:7420"),
            ("origin", "http://baton:7421")
        ]));
        assert!(judge(&[
            ("host", "baton:7420"),
            ("origin", "http://baton:7420.evil")
        ]));
        assert!(judge(&[("host", "baton:7420"), ("origin", "null")]));
        assert!(judge(&[("origin", "http://baton:7420")]));
        assert!(judge(&[
            ("host", "baton:7420"),
            ("sec-fetch-site", "cross-site")
        ]));
        assert!(judge(&[
            ("host", "baton:7420"),
            ("origin", "http://baton:7420"),
            ("sec-fetch-site", "same-site"),
        ]));
    }

    #[test]
    fn the_openapi_document_is_json() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap_or_default();
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    }
}
