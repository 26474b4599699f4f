//! The error body of every non-2xx answer:
//! `{"error": {"code": "<code>", "message": "<what was wrong and how to fix it>"}}`.
//!
//! | code | status |
//! |------|--------|
//! | `invalid_input` | 400 (413 when the body is over the size limit) |
//! | `unauthorized` | 401 |
//! | `not_found` | 404 |
//! | `method_not_allowed` | 405 |
//! | `lease_lost`, `conflict` | 409 |
//! | `unavailable` | 503 |
//! | `corruption`, `configuration`, `internal` | 500 |
//! | `unsupported` | 501 |

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_core::EngineError;
use serde_json::json;

/// An error answer: HTTP status, stable code and a readable message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status of the answer.
    pub status: StatusCode,
    /// Stable machine-readable code (`invalid_input`, `not_found`, …).
    pub code: &'static str,
    /// What was wrong and how to fix it.
    pub message: String,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// `400 invalid_input`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    /// `413 invalid_input`: the request body is larger than the server accepts.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_input",
            format!(
                "the request body is larger than {limit} bytes; store large data elsewhere and pass a reference"
            ),
        )
    }

    /// `401 unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token; send the header `Authorization: Bearer <token>` with the server's BATON_API_TOKEN",
        )
    }

    /// Prefixes the message with where in the request the error is, such as
    /// `executions[3]`.
    pub fn at(mut self, place: impl std::fmt::Display) -> Self {
        self.message = format!("{place}: {}", self.message);
        self
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status = match &e {
            EngineError::NotFound { .. } => StatusCode::NOT_FOUND,
            EngineError::InvalidInput { .. } => StatusCode::BAD_REQUEST,
            EngineError::LeaseLost { .. } | EngineError::Conflict { .. } => StatusCode::CONFLICT,
            EngineError::Unavailable { .. } | EngineError::Contention { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            EngineError::Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
            // Corruption, Configuration and variants added later: the server
            // cannot help the caller, an operator must look.
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(code = e.code(), error = %e, "request failed");
        }
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"baton\""),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// Result alias of the handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use baton_core::{ExecutionId, PartitionCount, State};

    fn status_and_code(e: EngineError) -> (u16, &'static str) {
        let a = ApiError::from(e);
        (a.status.as_u16(), a.code)
    }

    #[test]
    fn engine_errors_map_to_the_contract_table() {
        let id = ExecutionId::generate(PartitionCount::DEFAULT);
        assert_eq!(
            status_and_code(EngineError::NotFound { id: id.clone() }),
            (404, "not_found")
        );
        assert_eq!(
            status_and_code(EngineError::invalid("lane", "a b", "bad")),
            (400, "invalid_input")
        );
        assert_eq!(
            status_and_code(EngineError::lease_lost(&id, "expired")),
            (409, "lease_lost")
        );
        assert_eq!(
            status_and_code(EngineError::Conflict {
                id,
                operation: "cancel",
                state: State::Completed,
                reason: "it completed".into()
            }),
            (409, "conflict")
        );
        assert_eq!(
            status_and_code(EngineError::unavailable("down")),
            (503, "unavailable")
        );
        assert_eq!(
            status_and_code(EngineError::Contention {
                message: "busy".into()
            }),
            (503, "unavailable")
        );
        assert_eq!(
            status_and_code(EngineError::corruption("bad row")),
            (500, "corruption")
        );
        assert_eq!(
            status_and_code(EngineError::Unsupported {
                operation: "list",
                backend: "x"
            }),
            (501, "unsupported")
        );
    }

    #[tokio::test]
    async fn the_body_has_code_and_message() {
        let response = ApiError::invalid("bad lane")
            .at("executions[2]")
            .into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["error"]["code"], "invalid_input");
        assert_eq!(v["error"]["message"], "executions[2]: bad lane");
    }
}
