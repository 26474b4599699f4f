//! Routes of memory: checkpointed steps, custom status, progress frames,
//! key-value state, and the long-polls that follow an execution.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use baton_api::{
    FrameAnswer, LeaseBody, ProgressAnswer, ProgressAppended, ProgressBody, ProgressQuery,
    StateAnswer, StateBody, StateEntryAnswer, StatusAnswer, StatusBody, StepAnswer, StepBody,
    StepsAnswer,
};
use baton_core::{ChangeMark, ExecutionId, ExecutionSnapshot, Page, StateKey, StepName};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery, IdAnd, IdPath};
use crate::worker::check_lease_matches;

/// `POST /v1/executions/{id}/steps/{name}`: the step as stored. The same
/// output again for a done step answers it unchanged; another record for a
/// done step is `409 conflict`.
pub(crate) async fn record_step(
    State(state): State<AppState>,
    IdAnd(id, name): IdAnd<StepName>,
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

/// `PUT /v1/executions/{id}/status`: `{"version": n}`.
pub(crate) async fn set_status(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<StatusBody>,
) -> ApiResult<Json<StatusAnswer>> {
    check_lease_matches(&body.lease, &id)?;
    let (lease, status) = body.into_parts()?;
    let version = state.backend().set_status(&lease, status).await?;
    Ok(Json(StatusAnswer { version }))
}

/// `POST /v1/executions/{id}/progress`: `{"seq": n}`.
pub(crate) async fn append_progress(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<ProgressBody>,
) -> ApiResult<Json<ProgressAppended>> {
    check_lease_matches(&body.lease, &id)?;
    let (lease, frame) = body.into_parts()?;
    let seq = state.backend().append_progress(&lease, frame).await?;
    Ok(Json(ProgressAppended { seq }))
}

/// `GET /v1/executions/{id}/progress?after=&limit=&wait_ms=`: the frames
/// above `after`. With none yet and `wait_ms > 0`, waits (woken by the
/// append, not polling) until one is appended, the execution finishes,
/// the wait is over or the server shuts down.
pub(crate) async fn progress(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiQuery(q): ApiQuery<ProgressQuery>,
) -> ApiResult<Json<ProgressAnswer>> {
    let limit = q.limit.unwrap_or(Page::DEFAULT_LIMIT);
    Page::first(limit).validate()?;
    let backend = state.backend();
    let mut frames = backend.progress(&id, q.after, limit).await?;
    let snap = if frames.is_empty() {
        let after = q.after;
        let snap = follow(&state, &id, Duration::from_millis(q.wait_ms), |s| {
            s.progress_seq > after || s.state.is_terminal()
        })
        .await?;
        if snap.progress_seq > after {
            frames = backend.progress(&id, after, limit).await?;
        }
        snap
    } else {
        backend.describe(&id).await?
    };
    Ok(Json(ProgressAnswer {
        frames: frames.iter().map(FrameAnswer::from).collect(),
        progress_seq: snap.progress_seq,
        state: snap.state,
    }))
}

/// `PUT /v1/executions/{id}/state/{key}`: `204`.
pub(crate) async fn set_state(
    State(state): State<AppState>,
    IdAnd(id, key): IdAnd<StateKey>,
    ApiJson(body): ApiJson<StateBody>,
) -> ApiResult<StatusCode> {
    check_lease_matches(&body.lease, &id)?;
    let (lease, value) = body.into_parts()?;
    state.backend().set_state(&lease, key, Some(value)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/executions/{id}/state/{key}`: `204`, whether or not the key
/// was held.
pub(crate) async fn clear_state(
    State(state): State<AppState>,
    IdAnd(id, key): IdAnd<StateKey>,
    ApiJson(body): ApiJson<LeaseBody>,
) -> ApiResult<StatusCode> {
    check_lease_matches(&body.lease, &id)?;
    state.backend().set_state(&body.lease, key, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/executions/{id}/state`: `{"items": […]}` by key.
pub(crate) async fn execution_state(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<StateAnswer>> {
    let items = state.backend().state(&id).await?;
    Ok(Json(StateAnswer {
        items: items.iter().map(StateEntryAnswer::from).collect(),
    }))
}

/// Reads execution `id` and, until `done` holds for it, waits for it to
/// change (woken by the backend, never polling) for at most `wait`
/// (capped at [`ServerConfig::max_wait`](crate::ServerConfig::max_wait));
/// answers the last snapshot read. A server shutting down answers at once.
pub(crate) async fn follow(
    state: &AppState,
    id: &ExecutionId,
    wait: Duration,
    mut done: impl FnMut(&ExecutionSnapshot) -> bool,
) -> ApiResult<ExecutionSnapshot> {
    let backend = state.backend();
    let deadline = tokio::time::Instant::now() + wait.min(state.config().max_wait);
    let mut draining = state.draining();
    let mut snap = backend.describe(id).await?;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if done(&snap) || left.is_zero() || *draining.borrow() {
            return Ok(snap);
        }
        tokio::select! {
            changed = backend.wait_for_change(id, ChangeMark::of(&snap), left) => {
                snap = changed?;
            }
            _ = draining.changed() => return Ok(snap),
        }
    }
}
