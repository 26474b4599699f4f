//! Routes of flows: cancel (which reaches descendants unless told not to),
//! the children of an execution, and the tree of a flow.

use axum::Json;
use axum::extract::State;
use baton_api::{CancelAnswer, CancelBody, ChildrenQuery, ListAnswer, TreeAnswer, TreeQuery};

use baton_core::{CancelRequest, Cancellation, ExecutionId};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery, IdPath};

/// `POST /v1/executions/{id}/cancel`: the snapshot with `cascaded` and
/// `cascade_pending`. Scope `tree` (the default) cancels the non-terminal
/// descendants too. Cancelling a cancelled execution again is a no-op for
/// it (its descendants are still reached); any other terminal state is a
/// `409 conflict`.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<CancelBody>,
) -> ApiResult<Json<CancelAnswer>> {
    let out = cancel_one(&state, &id, body.into_request(), "http").await?;
    Ok(Json(CancelAnswer::from(&out)))
}

/// Cancels `id` as `actor` (`http`, `ui`) asked, with an audit line: what
/// the API route and the dashboard both call.
pub(crate) async fn cancel_one(
    state: &AppState,
    id: &ExecutionId,
    request: CancelRequest,
    actor: &str,
) -> ApiResult<Cancellation> {
    let scope = request.scope;
    let out = state.backend().cancel(id, request).await?;
    tracing::info!(
        target: "baton::audit",
        op = "cancel",
        actor,
        %id,
        %scope,
        cascaded = out.cascaded,
        "cancel call"
    );
    Ok(out)
}

/// `GET /v1/executions/{id}/children?cursor=&limit=`: one page of its
/// children, oldest first.
pub(crate) async fn children(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiQuery(q): ApiQuery<ChildrenQuery>,
) -> ApiResult<Json<ListAnswer>> {
    let page = q.into_page()?;
    let out = state.backend().children(&id, page).await?;
    Ok(Json(ListAnswer::from(&out)))
}

/// `GET /v1/executions/{id}/tree?limit=`: the flow `id` belongs to, from its
/// root, every parent before its children.
pub(crate) async fn tree(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiQuery(q): ApiQuery<TreeQuery>,
) -> ApiResult<Json<TreeAnswer>> {
    let limit = q.into_limit()?;
    let out = state.backend().tree(&id, limit).await?;
    Ok(Json(TreeAnswer::from(&out)))
}
