//! The error body of every non-2xx answer, [`baton_api::ErrorBody`]:
//! `{"error": {"code", "message", "field"?, "state"?}}`. The codes and their
//! statuses are [`baton_api::ErrorCode`]'s.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_api::{ErrorBody, ErrorCode, ErrorDetail};
use baton_core::{EngineError, State};

/// An error answer: HTTP status, stable code, a readable message, and the
/// machine-readable `field` and `state` when they apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status of the answer.
    pub status: StatusCode,
    /// Stable machine-readable code (`invalid_input`, `not_found`, …).
    pub code: &'static str,
    /// What was wrong and how to fix it.
    pub message: String,
    /// For `invalid_input`: the request field at fault, as a path.
    pub field: Option<String>,
    /// For `conflict`: the execution's state.
    pub state: Option<State>,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            state: None,
        }
    }

    /// `400 invalid_input`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidInput.as_str(),
            message,
        )
    }

    /// `400 invalid_input` about the request field at `field` (a path such
    /// as `backoff.max_ms`).
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::invalid(message);
        e.field = Some(field.into());
        e
    }

    /// `413 invalid_input`: the request body is larger than the server accepts.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::InvalidInput.as_str(),
            format!(
                "the request body is larger than {limit} bytes; store large data elsewhere and pass a reference"
            ),
        )
    }

    /// `401 unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized.as_str(),
            "missing or wrong bearer token; send the header `Authorization: Bearer <token>` with the server's BATON_API_TOKEN",
        )
    }

    /// `403 forbidden`: a browser sent the request from another site.
    pub fn forbidden(why: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden.as_str(),
            format!(
                "refused: {why}; call the API from the server's own origin or from a program that is not a browser"
            ),
        )
    }

    /// `401` for a waitpoint token that is missing its keys, malformed,
    /// forged, expired, or for another execution or waitpoint.
    pub fn bad_waitpoint_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized.as_str(),
            "the waitpoint token is not valid for this execution and waitpoint (wrong, expired or forged); ask for a new one, or send the API token",
        )
    }

    /// Prefixes the message with where in the request the error is, such as
    /// `executions[3]`, and the field path with it.
    pub fn at(mut self, place: impl std::fmt::Display) -> Self {
        self.message = format!("{place}: {}", self.message);
        if let Some(field) = &mut self.field {
            *field = format!("{place}.{field}");
        }
        self
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let ErrorDetail {
            message,
            field,
            state,
            ..
        } = ErrorDetail::from(&e);
        let status = StatusCode::from_u16(ErrorCode::of(&e).status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(code = e.code(), error = %e, "request failed");
        }
        ApiError {
            status,
            code: e.code(),
            message,
            field,
            state,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody::from(ErrorDetail {
            code: self.code.to_owned(),
            message: self.message,
            field: self.field,
            state: self.state,
        });
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
        assert!(v["error"].get("field").is_none());
    }

    async fn body(e: ApiError) -> serde_json::Value {
        let bytes = axum::body::to_bytes(e.into_response().into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn the_body_names_the_field_and_the_state() {
        let e = ApiError::from(EngineError::invalid("kind", "", "must not be empty"));
        let v = body(e.at("executions[2]")).await;
        assert_eq!(v["error"]["field"], "executions[2].kind");
        assert!(v["error"].get("state").is_none());
        let id = ExecutionId::generate(PartitionCount::DEFAULT);
        let v = body(ApiError::from(EngineError::Conflict {
            id,
            operation: "cancel",
            state: State::Failed,
            reason: "it failed".into(),
        }))
        .await;
        assert_eq!(v["error"]["code"], "conflict");
        assert_eq!(v["error"]["state"], "failed");
        assert!(v["error"].get("field").is_none());
    }
}
