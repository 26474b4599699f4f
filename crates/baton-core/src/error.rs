//! [`EngineError`]: one error type for every backend, classified by what the
//! caller should do next.
//!
//! | variant | caller should | HTTP |
//! |---|---|---|
//! | [`NotFound`](EngineError::NotFound) | stop; the id is unknown (never created, or trimmed) | 404 `not_found` |
//! | [`InvalidInput`](EngineError::InvalidInput) | fix the named field | 400 `invalid_input` |
//! | [`LeaseLost`](EngineError::LeaseLost) | abandon the work; someone else owns it now | 409 `lease_lost` |
//! | [`Conflict`](EngineError::Conflict) | stop; the execution already ended differently | 409 `conflict` |
//! | [`Unavailable`](EngineError::Unavailable) | retry later, with backoff | 503 `unavailable` |
//! | [`Contention`](EngineError::Contention) | retry soon; a concurrent writer won | 503 `unavailable` |
//! | [`Corruption`](EngineError::Corruption) | page an operator; stored state is not what Baton wrote | 500 |
//! | [`Unsupported`](EngineError::Unsupported) | use another backend or skip the feature | 501 |
//! | [`Configuration`](EngineError::Configuration) | fix the deployment setting named | startup failure |
//!
//! A call that returns an error changed nothing, except for
//! [`Unavailable`](EngineError::Unavailable), where the backend could not tell
//! whether the change was applied (for example a connection that broke after
//! the request was sent). Retrying is then safe for every operation that is
//! idempotent or fenced by a lease token; `create` is safe to retry when it
//! carries an idempotency key (without one a retry may create a duplicate),
//! and a retried `claim` may leave the first call's leases to expire and be
//! reclaimed.

use std::fmt;

use crate::id::ExecutionId;
use crate::state::State;

/// Result alias used across Baton.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Everything that can go wrong in a backend call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// No execution with this id exists (never created, or already trimmed).
    #[error(
        "execution {id} not found: it was never created here or was trimmed after its retention"
    )]
    NotFound {
        /// The id that was looked up.
        id: ExecutionId,
    },

    /// A field of the request is malformed or out of range. Nothing changed.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidInput {
        /// The request field at fault (`lane`, `payload`, `max_attempts`…).
        field: &'static str,
        /// The offending value, shortened when long.
        value: String,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// The lease token is stale, expired, or the execution was cancelled or
    /// expired while it ran. The holder no longer owns the execution.
    #[error("lease lost on execution {id}: {reason}")]
    LeaseLost {
        /// The execution the lease was for.
        id: ExecutionId,
        /// Why the lease is no longer valid.
        reason: String,
    },

    /// The operation contradicts how the execution (or the lease's attempt)
    /// already ended: cancelling a completed execution, completing an attempt
    /// that failed, completing again with a different result.
    #[error("conflict on execution {id}: cannot {operation}: {reason} (the execution is {state})")]
    Conflict {
        /// The execution.
        id: ExecutionId,
        /// The operation that was refused (`cancel`, `complete`, `fail`).
        operation: &'static str,
        /// The execution's current state.
        state: State,
        /// What it contradicts.
        reason: String,
    },

    /// The backend cannot be reached or is overloaded. Retry with backoff.
    #[error("backend unavailable: {message}; retry with backoff")]
    Unavailable {
        /// What failed, including the underlying driver error.
        message: String,
    },

    /// A concurrent writer held what this call needed; nothing changed.
    /// Retry soon.
    #[error("contention: {message}; nothing changed, retry")]
    Contention {
        /// What was contended.
        message: String,
    },

    /// The backend holds a value Baton never writes (an unknown state literal,
    /// an unparsable id). This is a bug or outside tampering, never defaulted.
    #[error("corrupt stored state: {message}")]
    Corruption {
        /// What was found and where.
        message: String,
    },

    /// This backend does not implement the operation. See
    /// [`Capabilities`](crate::Capabilities) to ask before calling.
    #[error("operation {operation} is not supported by the {backend} backend")]
    Unsupported {
        /// The operation that was called.
        operation: &'static str,
        /// The backend kind.
        backend: &'static str,
    },

    /// The deployment is misconfigured (for example the partition count
    /// differs from the one recorded when the backend was first started).
    #[error("configuration error: {message}")]
    Configuration {
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// Longest value echoed back inside an [`EngineError::InvalidInput`].
const ECHO_LIMIT: usize = 120;

impl EngineError {
    /// An [`InvalidInput`](EngineError::InvalidInput) error; `value` is
    /// shortened to a readable length.
    pub fn invalid(
        field: &'static str,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        let mut value = value.to_string();
        if value.len() > ECHO_LIMIT {
            let mut cut = ECHO_LIMIT;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value.truncate(cut);
            value.push('…');
        }
        EngineError::InvalidInput {
            field,
            value,
            reason: reason.into(),
        }
    }

    /// A [`LeaseLost`](EngineError::LeaseLost) error.
    pub fn lease_lost(id: &ExecutionId, reason: impl Into<String>) -> Self {
        EngineError::LeaseLost {
            id: id.clone(),
            reason: reason.into(),
        }
    }

    /// A [`Corruption`](EngineError::Corruption) error.
    pub fn corruption(message: impl Into<String>) -> Self {
        EngineError::Corruption {
            message: message.into(),
        }
    }

    /// An [`Unavailable`](EngineError::Unavailable) error.
    pub fn unavailable(message: impl Into<String>) -> Self {
        EngineError::Unavailable {
            message: message.into(),
        }
    }

    /// Names the batch item an [`InvalidInput`](EngineError::InvalidInput)
    /// error came from; other errors pass through unchanged.
    pub fn in_batch(self, item: usize) -> Self {
        match self {
            EngineError::InvalidInput {
                field,
                value,
                reason,
            } => EngineError::InvalidInput {
                field,
                value,
                reason: format!("{reason} (item {item} of the batch)"),
            },
            other => other,
        }
    }

    /// True when repeating the same call later may succeed
    /// ([`Unavailable`](EngineError::Unavailable) and
    /// [`Contention`](EngineError::Contention)).
    ///
    /// ```
    /// use baton_core::EngineError;
    /// assert!(EngineError::unavailable("connection refused").is_retryable());
    /// assert!(!EngineError::invalid("lane", "", "must not be empty").is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            EngineError::Unavailable { .. } | EngineError::Contention { .. }
        )
    }

    /// A stable machine-readable code, as used in the HTTP error body.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::NotFound { .. } => "not_found",
            EngineError::InvalidInput { .. } => "invalid_input",
            EngineError::LeaseLost { .. } => "lease_lost",
            EngineError::Conflict { .. } => "conflict",
            EngineError::Unavailable { .. } | EngineError::Contention { .. } => "unavailable",
            EngineError::Corruption { .. } => "corruption",
            EngineError::Unsupported { .. } => "unsupported",
            EngineError::Configuration { .. } => "configuration",
        }
    }
}
