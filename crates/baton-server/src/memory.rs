//! Routes of memory: checkpointed steps.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use baton_api::{StepAnswer, StepBody, StepsAnswer};
use baton_core::{ExecutionId, StepName};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, IdPath};
use crate::worker::check_lease_matches;

/// The `{id}` and `{name}` segments of the step route.
#[derive(Debug)]
pub(crate) struct StepPath(ExecutionId, StepName);

impl<S: Send + Sync> FromRequestParts<S> for StepPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((id, name)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid(format!("invalid path: {}", e.body_text())))?;
        Ok(StepPath(id.parse()?, StepName::new(name)?))
    }
}

/// `POST /v1/executions/{id}/steps/{name}`: the step as stored. The same
/// output again for a done step answers it unchanged; another record for a
/// done step is `409 conflict`.
pub(crate) async fn record_step(
    State(state): State<AppState>,
    StepPath(id, name): StepPath,
    ApiJson(body): ApiJson<StepBody>,
) -> ApiResult<Json<StepAnswer>> {
    check_lease_matches(&body.lease, &id)?;
    let (lease, outcome) = body.into_outcome()?;
    let step = state.backend().record_step(&lease, name, outcome).await?;
    Ok(Json(StepAnswer::from(&step)))
}

/// `GET /v1/executions/{id}/steps`: `{"items": […]}` by name.
pub(crate) async fn steps(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<StepsAnswer>> {
    let items = state.backend().steps(&id).await?;
    Ok(Json(StepsAnswer {
        items: items.iter().map(StepAnswer::from).collect(),
    }))
}
