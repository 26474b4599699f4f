//! The dashboard: HTML pages under `/ui`, rendered on the server from askama
//! templates compiled into the binary, reading the in-process
//! [`AdminBackend`](baton_core::AdminBackend) directly (RFC 0012).
//!
//! - `mod.rs`: the router, the auth layer (the API's bearer token, sent by
//!   `baton.js` from `sessionStorage`), the cross-site refusal of POSTs and
//!   the security headers of every answer.
//! - `pages.rs`: overview, executions, execution detail (reads only).
//! - `actions.rs`: confirmation pages (reads) and the POSTs that act.
//! - `rates.rs`: the in-memory throughput sampler and its SVG chart.
//! - `json.rs`: the payload re-indenter that keeps number text verbatim.
//! - `assets.rs`: the embedded CSS, script and icon.
//!
//! The dashboard is outside the API contract: it is not in `Route::ALL`
//! nor in `openapi.json`.

mod actions;
mod assets;
mod json;
mod pages;
mod rates;

use askama::Template;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::AppState;
use crate::error::ApiError;

pub(crate) use rates::Rates;

/// The Content-Security-Policy of every `/ui` answer: only this origin's
/// script, style and images; no inline script or style, no frames, forms
/// only to this origin.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// The dashboard's routes, for [`crate::router`] to merge before its
/// fallback.
pub(crate) fn router(state: AppState) -> Router<AppState> {
    let guarded = Router::new()
        .route("/ui", get(pages::overview))
        .route("/ui/", get(pages::overview))
        .route("/ui/executions", get(pages::executions))
        .route("/ui/executions/{id}", get(pages::execution))
        .route(
            "/ui/executions/{id}/{action}",
            get(actions::confirm_one).post(actions::act_one),
        )
        .route(
            "/ui/lanes/{lane}/{action}",
            get(actions::confirm_lane).post(actions::act_lane),
        )
        .route(
            "/ui/bulk/{action}",
            get(actions::confirm_bulk).post(actions::act_bulk),
        )
        .route("/ui/{*rest}", get(no_page))
        .route_layer(middleware::from_fn_with_state(state, guard));
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui/unlock", post(unlock))
        .route("/ui/assets/{name}", get(assets::serve))
        .merge(guarded)
        .layer(middleware::from_fn(headers))
}

/// What the base template needs besides a page's own data.
#[derive(Debug, Clone)]
pub(crate) struct Chrome {
    /// The stylesheet's URL with its content hash.
    pub css: &'static str,
    /// The script's URL with its content hash.
    pub js: &'static str,
    /// The icon's URL with its content hash.
    pub icon: &'static str,
    /// The request carried the token: offer "Forget token".
    pub forget: bool,
}

impl Chrome {
    fn new(forget: bool) -> Self {
        let urls = assets::urls();
        Chrome {
            css: &urls.css,
            js: &urls.js,
            icon: &urls.icon,
            forget,
        }
    }

    /// The chrome of a page answering `headers`.
    pub(crate) fn of(state: &AppState, headers: &axum::http::HeaderMap) -> Self {
        Chrome::new(crate::bearer_matches(state, headers))
    }
}

/// The layout and token form, with no data: what a request without the
/// token sees in token mode.
#[derive(Template)]
#[template(path = "locked.html")]
struct Locked {
    chrome: Chrome,
    message: &'static str,
}

/// An error page.
#[derive(Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage {
    pub chrome: Chrome,
    pub status: u16,
    pub code: String,
    pub message: String,
}

/// A page's answer: rendered HTML, or an error shown as a page.
pub(crate) type UiResult = Result<Response, UiError>;

/// An error of a page, shown as the error page with the API's status, code
/// and message.
#[derive(Debug)]
pub(crate) struct UiError {
    pub error: ApiError,
    pub forget: bool,
}

impl UiError {
    /// The error `e` on a page whose request carried the token or not.
    pub(crate) fn new(e: impl Into<ApiError>, forget: bool) -> Self {
        UiError {
            error: e.into(),
            forget,
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            chrome: Chrome::new(self.forget),
            status: self.error.status.as_u16(),
            code: self.error.code.to_owned(),
            message: self.error.message,
        };
        html(self.error.status, &page)
    }
}

/// Renders `page` as an HTML answer with `status`.
pub(crate) fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "dashboard: a template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// Renders `page` with `200 OK`.
pub(crate) fn ok(page: &impl Template) -> UiResult {
    Ok(html(StatusCode::OK, page))
}

/// Every `/ui` route but the assets and the unlock form: the cross-site
/// refusal of POSTs, then the token when the server has one.
async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::GET
        && req.method() != Method::HEAD
        && let Some(why) = crate::cross_site(req.headers())
    {
        return refused(why);
    }
    if state.config().api_token.is_none() || crate::bearer_matches(&state, req.headers()) {
        // Only a served request keeps the sampler going, never a refused one.
        state.rates().touch(&state);
        return next.run(req).await;
    }
    let asked = req.method() == Method::GET || req.method() == Method::HEAD;
    let message = if asked && !req.headers().contains_key(header::AUTHORIZATION) {
        "This dashboard needs the server's API token (BATON_API_TOKEN)."
    } else {
        "The token was refused: enter the server's API token (BATON_API_TOKEN)."
    };
    locked(message)
}

/// `403` for a POST a browser sent from another site.
fn refused(why: &str) -> Response {
    let page = ErrorPage {
        chrome: Chrome::new(false),
        status: 403,
        code: "forbidden".into(),
        message: format!("refused: {why}"),
    };
    html(StatusCode::FORBIDDEN, &page)
}

fn locked(message: &'static str) -> Response {
    let mut response = html(
        StatusCode::UNAUTHORIZED,
        &Locked {
            chrome: Chrome::new(false),
            message,
        },
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"baton\""),
    );
    response
}

/// Any other `/ui` address: the error page (with the headers), not the
/// API's JSON.
async fn no_page(State(state): State<AppState>, headers: axum::http::HeaderMap) -> UiError {
    UiError::new(
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such dashboard page"),
        crate::bearer_matches(&state, &headers),
    )
}

/// `POST /ui/unlock`: where the token form posts when the script does not
/// run. It never reads the body (the token must not travel as a form
/// field); with a token set it says the dashboard needs JavaScript.
async fn unlock(State(state): State<AppState>, req: Request) -> Response {
    if let Some(why) = crate::cross_site(req.headers()) {
        return refused(why);
    }
    if state.config().api_token.is_none() {
        return Redirect::to("/ui").into_response();
    }
    locked(
        "With a token set, the dashboard sends it from JavaScript: turn JavaScript on for this page.",
    )
}

/// The headers of every `/ui` answer: the CSP and its companions, and for
/// pages (anything the asset handler did not mark cacheable) `no-store`
/// and `Vary: Authorization`.
async fn headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::VARY, HeaderValue::from_static("Authorization"));
    }
    response
}

/// A relative age for people: `42s`, `5m`, `3h`, `2d`.
pub(crate) fn age(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests;
