//! Operations routes: health and the OpenAPI document.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::{AppState, OPENAPI};

/// `GET /healthz`: the process is up and which backend it serves. Never
/// requires a token, so load balancers can probe it.
pub(crate) async fn healthz(State(state): State<AppState>) -> axum::Json<Value> {
    let backend = state.backend();
    axum::Json(json!({
        "status": "ok",
        "backend": backend.capabilities().backend,
        "partitions": backend.partitions().get(),
    }))
}

/// `GET /v1/openapi.json`.
pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}
