//! The error body of every non-2xx answer:
//! `{"error": {"code", "message", "field"?, "state"?}}`.
//!
//! `code` is the stable, machine-readable class of the error and decides the
//! HTTP status; `message` is for people and may change wording at any time.
//! A client decides what to do from `code`, and from `field` (which request
//! field was invalid) and `state` (the execution's state on a conflict),
//! never from the message.

use std::str::FromStr;

use baton_core::{EngineError, ExecutionId, State};
use serde::{Deserialize, Serialize};

/// The body of an error answer.
///
/// ```
/// use baton_api::{ErrorBody, ErrorCode};
/// use baton_core::EngineError;
/// let body = ErrorBody::from(&EngineError::invalid("lane", "a b", "no spaces"));
/// assert_eq!(body.error.code(), ErrorCode::InvalidInput);
/// assert_eq!(body.error.field.as_deref(), Some("lane"));
/// let text = serde_json::to_value(&body).unwrap();
/// assert_eq!(text["error"]["code"], "invalid_input");
/// assert!(text["error"].get("state").is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The `error` object of an [`ErrorBody`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// The stable code, one of [`ErrorCode`]'s (kept as text, so a code
    /// added by a newer server passes through unchanged).
    pub code: String,
    /// What was wrong and how to fix it, for people.
    pub message: String,
    /// For `invalid_input`: the request field at fault, as a path when it is
    /// nested (`lane`, `executions[3].kind`, `backoff.max_ms`). Absent when
    /// the request as a whole is malformed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `conflict`: the state the execution is in, which the refused
    /// operation contradicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
}

impl ErrorDetail {
    /// An error of `code` with `message`, no field and no state.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorDetail {
            code: code.as_str().to_owned(),
            message: message.into(),
            field: None,
            state: None,
        }
    }

    /// The code, parsed; [`ErrorCode::Unknown`] for a code this build does
    /// not know.
    pub fn code(&self) -> ErrorCode {
        self.code.parse().unwrap_or(ErrorCode::Unknown)
    }
}

impl From<&EngineError> for ErrorDetail {
    fn from(e: &EngineError) -> Self {
        ErrorDetail {
            code: e.code().to_owned(),
            message: e.to_string(),
            field: match e {
                EngineError::InvalidInput { field, .. } => Some((*field).to_owned()),
                _ => None,
            },
            state: match e {
                EngineError::Conflict { state, .. } => Some(*state),
                _ => None,
            },
        }
    }
}

impl From<&EngineError> for ErrorBody {
    fn from(e: &EngineError) -> Self {
        ErrorBody { error: e.into() }
    }
}

impl From<ErrorDetail> for ErrorBody {
    fn from(error: ErrorDetail) -> Self {
        ErrorBody { error }
    }
}

impl ErrorBody {
    /// The [`EngineError`] a client reports for this answer to `operation`
    /// (`submit`, `cancel`, `complete`…) on execution `id`, if the call named
    /// one. `status` is the answer's HTTP status, quoted when the code gives
    /// no better error.
    ///
    /// Read from `code`, `field` and `state` only:
    /// - `not_found`, `lease_lost` and `conflict` about `id` become
    ///   `NotFound`, `LeaseLost` and `Conflict`; a conflict without a
    ///   `state` is an answer this client cannot trust: `Unavailable`.
    /// - `invalid_input` becomes `InvalidInput` naming the field
    ///   ([`static_field`]), `"request"` when the field is absent or unknown.
    /// - `unauthorized`, `forbidden` and `configuration` become `Configuration`,
    ///   `unsupported` `Unsupported`, `corruption` `Corruption`.
    /// - anything else, `Unavailable`: retry later.
    ///
    /// ```
    /// use baton_api::ErrorBody;
    /// use baton_core::{EngineError, ExecutionId, PartitionCount, State};
    /// let id = ExecutionId::generate(PartitionCount::DEFAULT);
    /// let body: ErrorBody = serde_json::from_str(
    ///     r#"{"error": {"code": "conflict", "message": "it completed", "state": "completed"}}"#,
    /// ).unwrap();
    /// let e = body.into_engine_error(409, "cancel", Some(&id));
    /// assert!(matches!(e, EngineError::Conflict { state: State::Completed, .. }));
    /// ```
    pub fn into_engine_error(
        self,
        status: u16,
        operation: &'static str,
        id: Option<&ExecutionId>,
    ) -> EngineError {
        let ErrorDetail {
            code,
            message,
            field,
            state,
        } = self.error;
        match (code.parse().unwrap_or(ErrorCode::Unknown), id) {
            (ErrorCode::NotFound, Some(id)) => EngineError::NotFound { id: id.clone() },
            (ErrorCode::LeaseLost, Some(id)) => EngineError::LeaseLost {
                id: id.clone(),
                reason: message,
            },
            (ErrorCode::Conflict, Some(id)) => match state {
                Some(state) => EngineError::Conflict {
                    id: id.clone(),
                    operation,
                    state,
                    reason: message,
                },
                None => EngineError::unavailable(format!(
                    "{operation} answered {status} conflict without the execution's state (is this a Baton server?): {message}"
                )),
            },
            (ErrorCode::InvalidInput, _) => EngineError::InvalidInput {
                field: field.as_deref().and_then(static_field).unwrap_or("request"),
                value: String::new(),
                reason: message,
            },
            (ErrorCode::Unsupported, _) => EngineError::Unsupported {
                operation,
                backend: "http",
            },
            (ErrorCode::Unauthorized, _) => EngineError::Configuration {
                message: format!("{message} (set the client's API token)"),
            },
            (ErrorCode::Forbidden, _) => EngineError::Configuration { message },
            (ErrorCode::Corruption, _) => EngineError::corruption(message),
            (ErrorCode::Configuration, _) => EngineError::Configuration { message },
            _ => EngineError::unavailable(format!("{operation} answered {status}: {message}")),
        }
    }
}

/// The stable error codes and the HTTP status each answers with.
///
/// | code | status |
/// |------|--------|
/// | `invalid_input` | 400 (413 when the body is over the size limit) |
/// | `unauthorized` | 401 |
/// | `forbidden` | 403 |
/// | `not_found` | 404 |
/// | `method_not_allowed` | 405 |
/// | `lease_lost`, `conflict` | 409 |
/// | `unavailable` | 503 |
/// | `corruption`, `configuration` | 500 |
/// | `unsupported` | 501 |
///
/// ```
/// use baton_api::ErrorCode;
/// let code: ErrorCode = "lease_lost".parse().unwrap();
/// assert_eq!((code, code.status()), (ErrorCode::LeaseLost, 409));
/// assert_eq!("teapot".parse::<ErrorCode>().unwrap(), ErrorCode::Unknown);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_input`: fix the request (see `field`).
    InvalidInput,
    /// `unauthorized`: missing or wrong bearer token.
    Unauthorized,
    /// `forbidden`: a browser sent the request from another site (its
    /// `Origin` or `Sec-Fetch-Site` says so); send it from the server's
    /// own origin, or from a program that is not a browser.
    Forbidden,
    /// `not_found`: unknown execution or route.
    NotFound,
    /// `method_not_allowed`: the route exists with another method.
    MethodNotAllowed,
    /// `lease_lost`: the lease is stale, expired, or the execution was
    /// cancelled; abandon the work.
    LeaseLost,
    /// `conflict`: the operation contradicts a terminal state (see `state`).
    Conflict,
    /// `unavailable`: the backend is unreachable or busy; retry.
    Unavailable,
    /// `corruption`: stored state is not what Baton wrote; an operator must
    /// look.
    Corruption,
    /// `configuration`: the deployment is misconfigured.
    Configuration,
    /// `unsupported`: the backend does not implement the operation.
    Unsupported,
    /// A code this build does not know (from a newer server).
    Unknown,
}

impl ErrorCode {
    /// Every known code.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::InvalidInput,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::LeaseLost,
        ErrorCode::Conflict,
        ErrorCode::Unavailable,
        ErrorCode::Corruption,
        ErrorCode::Configuration,
        ErrorCode::Unsupported,
    ];

    /// The code as written in the body.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::LeaseLost => "lease_lost",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Corruption => "corruption",
            ErrorCode::Configuration => "configuration",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// The HTTP status answered with this code (`invalid_input` may also
    /// answer 413 for an oversize body).
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidInput => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::LeaseLost | ErrorCode::Conflict => 409,
            ErrorCode::Unavailable => 503,
            ErrorCode::Unsupported => 501,
            ErrorCode::Corruption | ErrorCode::Configuration | ErrorCode::Unknown => 500,
        }
    }

    /// The code of an engine error.
    pub fn of(e: &EngineError) -> ErrorCode {
        e.code().parse().unwrap_or(ErrorCode::Unknown)
    }
}

impl FromStr for ErrorCode {
    type Err = std::convert::Infallible;

    /// Never fails: an unrecognised code is [`ErrorCode::Unknown`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .unwrap_or(ErrorCode::Unknown))
    }
}

/// Every field name an `invalid_input` answer may report, as the
/// `&'static str` that [`EngineError::InvalidInput`] carries.
const FIELDS: &[&str] = &[
    "attempts",
    "backoff",
    "backoff.initial_ms",
    "backoff.max_ms",
    "backoff.multiplier",
    "backoff.jitter",
    "capabilities",
    "capability",
    "child_key",
    "cursor",
    "deadline",
    "delay_ms",
    "error",
    "executions",
    "id",
    "idempotency_key",
    "kind",
    "lane",
    "lanes",
    "lease",
    "lease_ms",
    "leases",
    "limit",
    "max",
    "max_attempts",
    "namespace",
    "parent",
    "payload",
    "priority",
    "reason",
    "result",
    "retry_after_ms",
    "retryable",
    "run_at",
    "scope",
    "state",
    "tag",
    "tag key",
    "tags",
    "timestamp",
    "wait_ms",
    "worker_id",
];

/// The known field a reported `field` path names, as a `&'static str`:
/// the whole path when it is known, else its longest known tail, with list
/// indexes left out (`executions[3].backoff.max_ms` names
/// `backoff.max_ms`). `None` when no part of it is known.
///
/// ```
/// use baton_api::static_field;
/// assert_eq!(static_field("lane"), Some("lane"));
/// assert_eq!(static_field("executions[3].kind"), Some("kind"));
/// assert_eq!(static_field("executions[3]"), Some("executions"));
/// assert_eq!(static_field("colour"), None);
/// ```
pub fn static_field(path: &str) -> Option<&'static str> {
    let mut plain = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            c if !in_index => plain.push(c),
            _ => {}
        }
    }
    let find = |name: &str| FIELDS.iter().copied().find(|f| *f == name);
    std::iter::once(plain.as_str())
        .chain(plain.match_indices('.').map(|(i, _)| &plain[i + 1..]))
        .find_map(find)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use baton_core::PartitionCount;

    #[test]
    fn every_engine_error_code_is_known() {
        let id = ExecutionId::generate(PartitionCount::DEFAULT);
        for e in [
            EngineError::NotFound { id: id.clone() },
            EngineError::invalid("lane", "a b", "bad"),
            EngineError::lease_lost(&id, "expired"),
            EngineError::Conflict {
                id,
                operation: "cancel",
                state: State::Completed,
                reason: "done".into(),
            },
            EngineError::unavailable("down"),
            EngineError::Contention {
                message: "busy".into(),
            },
            EngineError::corruption("bad row"),
            EngineError::Unsupported {
                operation: "list",
                backend: "x",
            },
            EngineError::Configuration {
                message: "x".into(),
            },
        ] {
            assert_ne!(ErrorCode::of(&e), ErrorCode::Unknown, "{e}");
        }
    }

    #[test]
    fn a_conflict_carries_its_state_both_ways() {
        let id = ExecutionId::generate(PartitionCount::DEFAULT);
        let e = EngineError::Conflict {
            id: id.clone(),
            operation: "cancel",
            state: State::Expired,
            reason: "it expired".into(),
        };
        let wire = serde_json::to_string(&ErrorBody::from(&e)).unwrap();
        let body: ErrorBody = serde_json::from_str(&wire).unwrap();
        assert_eq!(body.error.state, Some(State::Expired));
        let back = body.into_engine_error(409, "cancel", Some(&id));
        assert!(matches!(
            back,
            EngineError::Conflict {
                state: State::Expired,
                operation: "cancel",
                ..
            }
        ));
    }

    #[test]
    fn every_field_of_the_requests_is_known() {
        for f in FIELDS {
            assert_eq!(static_field(f), Some(*f));
        }
        assert_eq!(
            static_field("executions[1].backoff.max_ms"),
            Some("backoff.max_ms")
        );
    }
}
