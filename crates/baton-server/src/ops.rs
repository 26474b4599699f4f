//! Operations routes: health and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use baton_api::Health;

use crate::{AppState, OPENAPI};

/// `GET /healthz`: the process is up and which backend it serves. Never
/// requires a token, so load balancers can probe it.
pub(crate) async fn healthz(State(state): State<AppState>) -> Json<Health> {
    let backend = state.backend();
    Json(Health {
        status: "ok".into(),
        backend: backend.capabilities().backend.as_str().into(),
        partitions: backend.partitions().get(),
    })
}

/// `GET /v1/openapi.json`.
pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}
