//! The request as a whole, before routing: limits on the head, and the body
//! read in full, so that every answer leaves the connection in a known state.
//!
//! - A request whose URI or headers are over this server's limits answers
//!   `414` or `431` with the API's error body.
//! - The body is read to its end before any handler runs (up to the body
//!   limit). A handler that answers without looking at it (a malformed id, a
//!   missing token) therefore leaves a keep-alive connection ready for the
//!   next request.
//! - A body over the limit answers `413` with `Connection: close`. Unless the
//!   client asked `Expect: 100-continue` (and so has not sent it), the body
//!   is first read and dropped, up to [`DRAIN_BYTES`] and for at most
//!   [`DRAIN_TIME`], so that a client that writes its whole body before
//!   reading (most do) gets to read the answer instead of a reset
//!   connection.
//!
//! Requests that hyper cannot parse at all (a malformed request line, more
//! than 100 headers, a head over about 400 KiB) are answered by hyper itself
//! with the status alone and an empty body, before any of this runs.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use crate::AppState;
use crate::error::ApiError;

/// Longest request target (path and query) accepted, in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Most bytes of header names and values accepted in one request.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Most bytes of an oversize body read and dropped before answering `413`.
pub const DRAIN_BYTES: u64 = 64 * 1024 * 1024;

/// Longest time spent reading and dropping an oversize body.
pub const DRAIN_TIME: Duration = Duration::from_secs(30);

enum Read {
    Whole(Bytes),
    TooLarge,
    Failed(String),
}

/// The middleware: checks the head, reads the body, then routes.
pub(crate) async fn read_whole(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let target = parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        let e = ApiError::new(
            StatusCode::URI_TOO_LONG,
            "invalid_input",
            format!(
                "the request target is {target} bytes, over the limit of {MAX_URI_BYTES}; send long values in a request body"
            ),
        );
        return closing(e, body, parts.headers.get(header::EXPECT)).await;
    }
    let head: usize = parts
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if head > MAX_HEADER_BYTES {
        let e = ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "invalid_input",
            format!("the request headers hold {head} bytes, over the limit of {MAX_HEADER_BYTES}"),
        );
        return closing(e, body, parts.headers.get(header::EXPECT)).await;
    }
    let limit = state.body_limit();
    let announced = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        let expect = parts.headers.get(header::EXPECT);
        return closing(ApiError::too_large(limit), body, expect).await;
    }
    match read(body, limit).await {
        (Read::Whole(bytes), _) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        (Read::TooLarge, rest) => {
            drain(rest).await;
            close(ApiError::too_large(limit))
        }
        (Read::Failed(e), _) => close(ApiError::invalid(format!(
            "cannot read the request body: {e}"
        ))),
    }
}

/// Reads `body` to its end if it holds at most `limit` bytes; else stops at
/// the first frame over it and hands back the rest.
async fn read(mut body: Body, limit: usize) -> (Read, Body) {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > limit {
                        return (Read::TooLarge, body);
                    }
                    buf.extend_from_slice(&data);
                }
            }
            Err(e) => return (Read::Failed(e.to_string()), Body::empty()),
        }
    }
    (Read::Whole(Bytes::from(buf)), Body::empty())
}

/// Reads and drops what is left of `body`, within [`DRAIN_BYTES`] and
/// [`DRAIN_TIME`].
async fn drain(mut body: Body) {
    let all = async {
        let mut seen = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                seen += data.len() as u64;
                if seen > DRAIN_BYTES {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, all).await;
}

/// `e` with `Connection: close`, after draining the body unless the client
/// waits for `100 Continue` before sending it.
async fn closing(e: ApiError, body: Body, expect: Option<&HeaderValue>) -> Response {
    let waits = expect
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if !waits {
        drain(body).await;
    }
    close(e)
}

/// `e`, telling the client this connection ends after it.
fn close(e: ApiError) -> Response {
    let mut response = e.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
