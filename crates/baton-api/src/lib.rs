//! # baton-api
//!
//! The wire format of Baton's HTTP API v1, defined once: a serde type for the
//! body of every request and every answer, the query strings, the error body
//! and the table of routes. The server (`baton-server`) reads requests and
//! writes answers with these types, the SDK's HTTP transport (`baton-sdk`)
//! writes requests and reads answers with them, and the CLI prints them for
//! `--json`; so the three cannot drift apart. The contract they implement is
//! `docs/HTTP-API.md`.
//!
//! | route | request | answer |
//! |-------|---------|--------|
//! | `POST /v1/executions` | [`SubmitBody`] | [`Created`] |
//! | `POST /v1/executions/batch` | [`BatchBody`] | [`BatchCreated`] |
//! | `GET /v1/executions` | [`ListQuery`] | [`ListAnswer`] |
//! | `GET /v1/executions/{id}` | [`DescribeQuery`] | [`Snapshot`] |
//! | `POST /v1/executions/{id}/cancel` | [`CancelBody`] | [`CancelAnswer`] |
//! | `GET /v1/executions/{id}/children` | [`ChildrenQuery`] | [`ListAnswer`] |
//! | `GET /v1/executions/{id}/tree` | [`TreeQuery`] | [`TreeAnswer`] |
//! | `POST /v1/lanes/{lane}/claim` | [`ClaimBody`] | [`ClaimAnswer`] |
//! | `POST /v1/executions/{id}/complete` | [`CompleteBody`] | [`Snapshot`] |
//! | `POST /v1/executions/{id}/fail` | [`FailBody`] | [`Snapshot`] |
//! | `POST /v1/executions/{id}/wait-children` | [`WaitChildrenBody`] | [`Snapshot`] |
//! | `POST /v1/executions/{id}/release` | [`ReleaseBody`] | [`Snapshot`] |
//! | `POST /v1/executions/{id}/suspend` | [`SuspendBody`] | [`SuspendAnswer`] |
//! | `POST /v1/executions/{id}/signals/{name}` | [`SignalRequestBody`] | [`SignalAnswer`] |
//! | `GET /v1/executions/{id}/signals` | – | [`SignalsAnswer`] |
//! | `POST /v1/executions/{id}/steps/{name}` | [`StepBody`] | [`StepAnswer`] |
//! | `GET /v1/executions/{id}/steps` | – | [`StepsAnswer`] |
//! | `POST /v1/leases/renew` | [`RenewBody`] | [`RenewAnswer`] |
//! | `GET /v1/stats` | [`StatsQuery`] | [`StatsAnswer`] |
//! | `GET /healthz` | – | [`Health`] |
//! | any, on error | – | [`ErrorBody`] |
//!
//! [`Route`] lists the routes themselves. Each type converts to and from the
//! `baton-core` value it carries (`From`, `into_*`/`from_*` methods), so
//! validation stays in `baton-core` and every backend rejects the same input.
//!
//! # Compatibility
//! Request bodies refuse unknown fields (a misspelt field is an error, not a
//! silently ignored option). Answers accept unknown fields, so a client keeps
//! working against a newer server that added some.
//!
//! # Payloads and results
//! Payloads and results are bytes in `baton-core` and JSON values on the
//! wire. A submission's payload is stored exactly as the JSON text sent
//! ([`raw_bytes`]), once [`check_json`] accepts it, and written back as that
//! same text ([`JsonText`]), never re-encoded: numbers of any size and
//! precision come back as sent. Bytes that are not JSON (stored by a
//! non-HTTP client) go out as a JSON string.
//!
//! ```
//! use baton_api::{Created, ErrorBody};
//! let created: Created = serde_json::from_str(
//!     r#"{"id": "{p:13}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071", "state": "waiting", "created": true}"#,
//! ).unwrap();
//! assert!(created.created);
//! let error: ErrorBody = serde_json::from_str(
//!     r#"{"error": {"code": "invalid_input", "message": "invalid lane", "field": "lane"}}"#,
//! ).unwrap();
//! assert_eq!(error.error.field.as_deref(), Some("lane"));
//! ```

#![warn(missing_docs)]

mod error;
mod flow;
mod json;
mod limits;
mod list;
mod memory;
mod ops;
mod read;
mod routes;
mod submit;
mod wait;
mod worker;

use baton_core::{EngineError, Namespace, Result};
use serde_json::Value;
use serde_json::value::RawValue;

pub use error::{ErrorBody, ErrorCode, ErrorDetail, static_field};
pub use flow::{CancelAnswer, ChildrenQuery, TreeAnswer, TreeItem, TreeQuery};
pub use json::{JsonText, MAX_JSON_DEPTH, check_json};
pub use limits::{
    LimitAnswer, LimitBody, LimitChangeAnswer, LimitKeyAnswer, LimitUsageAnswer, LimitUsageQuery,
    LimitsAnswer, LimitsQuery, RateBody,
};
pub use list::{
    BulkAnswer, BulkBody, BulkFilterBody, BulkSkipped, DescribeManyAnswer, DescribeManyBody,
    ListAnswer, ListQuery, parse_states,
};
pub use memory::{
    FrameAnswer, LeaseBody, ProgressAnswer, ProgressAppended, ProgressBody, ProgressQuery,
    StateAnswer, StateBody, StateEntryAnswer, StatusAnswer, StatusBody, StepAnswer, StepBody,
    StepsAnswer,
};
pub use ops::{
    DeleteAnswer, DeleteQuery, EventAnswer, EventsAnswer, EventsQuery, ExplainAnswer,
    HistoryAnswer, HistoryBody, LaneAnswer, LaneBody, LanePauseAnswer, LanesAnswer, PauseAnswer,
    PriorityBody, RetentionAnswer, RetentionBody, RetentionChangeAnswer, RetentionQuery,
    RetentionRulesAnswer, ScopeBody, TagBody, WorkerAnswer, WorkersAnswer, WorkersQuery,
};
pub use read::{
    Attempt, CancelBody, DescribeQuery, Health, PauseBody, Snapshot, StatsAnswer, StatsQuery,
    WaitingOnBody,
};
pub use routes::{Method, Route};
pub use submit::{BackoffBody, BatchBody, BatchCreated, Created, DependencyPolicyBody, SubmitBody};
pub use wait::{
    ReleaseBody, SignalAnswer, SignalBody, SignalRequestBody, SignalsAnswer, SuspendAnswer,
    SuspendBody, SuspensionBody, WaitpointBody,
};
pub use worker::{
    ClaimAnswer, ClaimBody, ClaimedExecution, CompleteBody, FailBody, Lease, RenewAnswer,
    RenewBody, RenewedLease, UpstreamBody, VersionRangeBody, WaitChildrenBody,
};

/// The namespace or lane a request that names none uses.
pub const DEFAULT_NAME: &str = "default";

/// Lease length in milliseconds when a claim or renew names none.
pub const DEFAULT_LEASE_MS: u64 = 30_000;

/// A namespace from an optional field: [`DEFAULT_NAME`] when absent.
///
/// ```
/// assert_eq!(baton_api::namespace_or_default(None).unwrap().as_str(), "default");
/// ```
pub fn namespace_or_default(namespace: Option<Namespace>) -> Result<Namespace> {
    match namespace {
        Some(ns) => Ok(ns),
        None => Namespace::new(DEFAULT_NAME),
    }
}

/// Payload or result bytes as a parsed JSON value, for showing it: the JSON
/// value they hold, or a string when they are not JSON (bytes submitted by a
/// non-HTTP client). Parsing may change numbers beyond 64 bits; answers use
/// [`JsonText`], which does not.
///
/// ```
/// use baton_api::bytes_json;
/// assert_eq!(bytes_json(br#"{"a":1}"#), serde_json::json!({"a": 1}));
/// assert_eq!(bytes_json(b"plain text"), serde_json::json!("plain text"));
/// ```
pub fn bytes_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// The JSON text of an optional raw field, exactly as sent; absent is `null`.
///
/// ```
/// let raw = serde_json::value::RawValue::from_string("[1.50, 2]".into()).unwrap();
/// assert_eq!(baton_api::raw_bytes(Some(raw)), b"[1.50, 2]");
/// assert_eq!(baton_api::raw_bytes(None), b"null");
/// ```
pub fn raw_bytes(raw: Option<Box<RawValue>>) -> Vec<u8> {
    raw.map(|r| r.get().as_bytes().to_vec())
        .unwrap_or_else(|| b"null".to_vec())
}

/// Payload or result bytes as a raw field of a request: the JSON text
/// itself, checked by [`check_json`] under `field`.
///
/// # Errors
/// `InvalidInput` naming `field` when the bytes are not JSON, or JSON that
/// [`check_json`] refuses.
fn raw_json(field: &'static str, bytes: &[u8]) -> Result<Box<RawValue>> {
    let raw: Box<RawValue> = serde_json::from_slice(bytes).map_err(|e| {
        EngineError::invalid(
            field,
            String::from_utf8_lossy(bytes),
            format!("over HTTP a {field} must be JSON ({e})"),
        )
    })?;
    check_json(field, raw.get())?;
    Ok(raw)
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for a
/// path segment or a query value.
///
/// ```
/// assert_eq!(baton_api::encode_component("{p:3}-ab c"), "%7Bp%3A3%7D-ab%20c");
/// ```
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
