//! Routes of operator control: priority and tag edits, revoking a lease,
//! the worker registry, pausing and resuming executions and lanes, replay.

use axum::Json;
use axum::extract::State;
use baton_api::{
    ExplainAnswer, LaneAnswer, LaneBody, LanePauseAnswer, LanesAnswer, PauseAnswer, PriorityBody,
    ScopeBody, Snapshot, TagBody, WorkerAnswer, WorkersAnswer, WorkersQuery,
};
use baton_core::{CancelScope, ExecutionId, Lane, Namespace, PauseOutcome, TagKey};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery, IdAnd, IdPath, LanePath, LimitPath, NamespacePath};

/// `PUT /v1/executions/{id}/priority`: the snapshot with its new priority.
pub(crate) async fn set_priority(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<PriorityBody>,
) -> ApiResult<Json<Snapshot>> {
    let snap = state.backend().set_priority(&id, body.priority).await?;
    Ok(Json(Snapshot::from(&snap)))
}

/// `PUT /v1/executions/{id}/tags/{key}`: the snapshot with the tag set.
pub(crate) async fn set_tag(
    State(state): State<AppState>,
    IdAnd(id, key): IdAnd<TagKey>,
    ApiJson(body): ApiJson<TagBody>,
) -> ApiResult<Json<Snapshot>> {
    let snap = state.backend().set_tag(&id, key, Some(body.value)).await?;
    Ok(Json(Snapshot::from(&snap)))
}

/// `DELETE /v1/executions/{id}/tags/{key}`: the snapshot without the tag
/// (removing a tag it does not have is fine).
pub(crate) async fn remove_tag(
    State(state): State<AppState>,
    IdAnd(id, key): IdAnd<TagKey>,
) -> ApiResult<Json<Snapshot>> {
    let snap = state.backend().set_tag(&id, key, None).await?;
    Ok(Json(Snapshot::from(&snap)))
}

/// `POST /v1/executions/{id}/revoke`: the snapshot after the attempt ended
/// (`waiting`/`delayed` for a retry, `failed` on the last attempt).
pub(crate) async fn revoke(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<Snapshot>> {
    let snap = state.backend().revoke(&id).await?;
    Ok(Json(Snapshot::from(&snap)))
}

/// `GET /v1/workers?namespace=&limit=`: `{"workers": […]}` by id.
pub(crate) async fn workers(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<WorkersQuery>,
) -> ApiResult<Json<WorkersAnswer>> {
    let (ns, limit) = q.into_request()?;
    let list = state.backend().workers(&ns, limit).await?;
    Ok(Json(WorkersAnswer {
        workers: list.iter().map(WorkerAnswer::from).collect(),
    }))
}

/// `GET /v1/executions/{id}/explain`: `{"id", "state", "waiting_on",
/// "detail"}`.
pub(crate) async fn explain(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<ExplainAnswer>> {
    let e = state.backend().explain(&id).await?;
    Ok(Json(ExplainAnswer::from(&e)))
}

/// `POST /v1/executions/{id}/pause` `{"scope"}`: the snapshot with
/// `cascaded` and `cascade_pending`.
pub(crate) async fn pause(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<ScopeBody>,
) -> ApiResult<Json<PauseAnswer>> {
    let out = pause_one(&state, &id, body.scope(), "http").await?;
    Ok(Json(PauseAnswer::from(&out)))
}

/// `POST /v1/executions/{id}/resume` `{"scope"}`: as pause.
pub(crate) async fn resume(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<ScopeBody>,
) -> ApiResult<Json<PauseAnswer>> {
    let out = resume_one(&state, &id, body.scope(), "http").await?;
    Ok(Json(PauseAnswer::from(&out)))
}

/// `POST /v1/executions/{id}/replay`: the snapshot, `waiting` again.
pub(crate) async fn replay(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<Snapshot>> {
    let snap = replay_one(&state, &id, "http").await?;
    Ok(Json(Snapshot::from(&snap)))
}

/// Pauses `id` as `actor` asked, with an audit line; the API route and the
/// dashboard both call it, so they cannot drift.
pub(crate) async fn pause_one(
    state: &AppState,
    id: &ExecutionId,
    scope: CancelScope,
    actor: &str,
) -> ApiResult<PauseOutcome> {
    let out = state.backend().pause(id, scope).await?;
    tracing::info!(target: "baton::audit", op = "pause", actor, %id, %scope, cascaded = out.cascaded, "pause call");
    Ok(out)
}

/// Resumes `id` as `actor` asked, with an audit line.
pub(crate) async fn resume_one(
    state: &AppState,
    id: &ExecutionId,
    scope: CancelScope,
    actor: &str,
) -> ApiResult<PauseOutcome> {
    let out = state.backend().resume(id, scope).await?;
    tracing::info!(target: "baton::audit", op = "resume", actor, %id, %scope, cascaded = out.cascaded, "resume call");
    Ok(out)
}

/// Replays `id` as `actor` asked, with an audit line.
pub(crate) async fn replay_one(
    state: &AppState,
    id: &ExecutionId,
    actor: &str,
) -> ApiResult<baton_core::ExecutionSnapshot> {
    let snap = state.backend().replay(id).await?;
    tracing::info!(target: "baton::audit", op = "replay", actor, %id, "replay call");
    Ok(snap)
}

/// Pauses (`pause`) or resumes a lane as `actor` asked, with an audit
/// line; answers whether it changed.
pub(crate) async fn lane_one(
    state: &AppState,
    ns: &Namespace,
    lane: &Lane,
    pause: bool,
    actor: &str,
) -> ApiResult<bool> {
    let changed = if pause {
        state.backend().pause_lane(ns, lane).await?
    } else {
        state.backend().resume_lane(ns, lane).await?
    };
    let op = if pause { "pause_lane" } else { "resume_lane" };
    tracing::info!(target: "baton::audit", op, actor, namespace = %ns, %lane, changed, "lane call");
    Ok(changed)
}

/// `DELETE /v1/executions/{id}?force=`: `{"id", "deleted", "cancelled"}`;
/// logged as an audit line.
pub(crate) async fn delete(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiQuery(q): ApiQuery<baton_api::DeleteQuery>,
) -> ApiResult<Json<baton_api::DeleteAnswer>> {
    let report = state.backend().delete(&id, q.force).await?;
    tracing::info!(
        target: "baton::audit",
        op = "delete",
        %id,
        force = q.force,
        deleted = report.deleted,
        cancelled = report.cancelled,
        "delete call"
    );
    Ok(Json(baton_api::DeleteAnswer::from(&report)))
}

/// `GET /v1/executions/{id}/events?after=&limit=`: `{"items": [event…],
/// "next_after"}`.
pub(crate) async fn events(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiQuery(q): ApiQuery<baton_api::EventsQuery>,
) -> ApiResult<Json<baton_api::EventsAnswer>> {
    let limit = q.limit.unwrap_or(baton_core::Page::DEFAULT_LIMIT);
    let events = state.backend().events(&id, q.after, limit).await?;
    let next_after = (events.len() == limit)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    Ok(Json(baton_api::EventsAnswer {
        items: events.iter().map(baton_api::EventAnswer::from).collect(),
        next_after,
    }))
}

/// `PUT /v1/namespaces/{namespace}/history` `{"enabled"}`: `{"namespace",
/// "enabled", "was"}`.
pub(crate) async fn set_history(
    State(state): State<AppState>,
    NamespacePath(ns): NamespacePath,
    ApiJson(body): ApiJson<baton_api::HistoryBody>,
) -> ApiResult<Json<baton_api::HistoryAnswer>> {
    let was = state.backend().set_history(&ns, body.enabled).await?;
    tracing::info!(target: "baton::audit", op = "set_history", namespace = %ns, enabled = body.enabled, was, "history setting");
    Ok(Json(baton_api::HistoryAnswer {
        namespace: ns.to_string(),
        enabled: body.enabled,
        was: Some(was),
    }))
}

/// `GET /v1/namespaces/{namespace}/history`: `{"namespace", "enabled"}`.
pub(crate) async fn history(
    State(state): State<AppState>,
    NamespacePath(ns): NamespacePath,
) -> ApiResult<Json<baton_api::HistoryAnswer>> {
    let enabled = state.backend().history_enabled(&ns).await?;
    Ok(Json(baton_api::HistoryAnswer {
        namespace: ns.to_string(),
        enabled,
        was: None,
    }))
}

/// The lane a retention call names, checked.
fn retention_lane(lane: Option<&str>) -> Result<Option<baton_core::Lane>, baton_core::EngineError> {
    lane.map(str::parse).transpose()
}

/// `PUT /v1/retention/{namespace}` `{"lane", "keep" | "keep_ms"}`:
/// `{"namespace", "lane", "keep_ms", "previous_ms"}`.
pub(crate) async fn set_retention(
    State(state): State<AppState>,
    NamespacePath(ns): NamespacePath,
    ApiJson(body): ApiJson<baton_api::RetentionBody>,
) -> ApiResult<Json<baton_api::RetentionChangeAnswer>> {
    let lane = retention_lane(body.lane.as_deref())?;
    let keep = match (&body.keep, body.keep_ms) {
        (Some(text), None) => baton_core::parse_duration(text)?,
        (None, Some(ms)) => std::time::Duration::from_millis(ms),
        _ => {
            return Err(baton_core::EngineError::invalid(
                "keep",
                "",
                "give the keep once: \"keep\": \"30d\" or \"keep_ms\": 2592000000",
            )
            .into());
        }
    };
    let previous = state
        .backend()
        .set_retention(&ns, lane.as_ref(), keep)
        .await?;
    tracing::info!(
        target: "baton::audit",
        op = "set_retention",
        namespace = %ns,
        lane = lane.as_ref().map_or("*", baton_core::Lane::as_str),
        keep_ms = keep.as_millis() as u64,
        previous_ms = previous.map(|p| p.as_millis() as u64),
        "retention rule set"
    );
    Ok(Json(baton_api::RetentionChangeAnswer {
        namespace: ns.to_string(),
        lane: lane.map(|l| l.to_string()),
        keep_ms: Some(keep.as_millis() as u64),
        previous_ms: previous.map(|p| p.as_millis() as u64),
    }))
}

/// `DELETE /v1/retention/{namespace}?lane=`: `{"namespace", "lane",
/// "keep_ms": null, "previous_ms"}` (`previous_ms` null: there was no such
/// rule).
pub(crate) async fn remove_retention(
    State(state): State<AppState>,
    NamespacePath(ns): NamespacePath,
    ApiQuery(q): ApiQuery<baton_api::RetentionQuery>,
) -> ApiResult<Json<baton_api::RetentionChangeAnswer>> {
    let lane = retention_lane(q.lane.as_deref())?;
    let previous = state.backend().remove_retention(&ns, lane.as_ref()).await?;
    tracing::info!(
        target: "baton::audit",
        op = "remove_retention",
        namespace = %ns,
        lane = lane.as_ref().map_or("*", baton_core::Lane::as_str),
        previous_ms = previous.map(|p| p.as_millis() as u64),
        "retention rule removed"
    );
    Ok(Json(baton_api::RetentionChangeAnswer {
        namespace: ns.to_string(),
        lane: lane.map(|l| l.to_string()),
        keep_ms: None,
        previous_ms: previous.map(|p| p.as_millis() as u64),
    }))
}

/// `GET /v1/retention`: `{"items": [{"namespace", "lane", "keep",
/// "keep_ms"}…]}`.
pub(crate) async fn retention(
    State(state): State<AppState>,
) -> ApiResult<Json<baton_api::RetentionRulesAnswer>> {
    let rules = state.backend().retention_rules().await?;
    Ok(Json(baton_api::RetentionRulesAnswer {
        items: rules.iter().map(baton_api::RetentionAnswer::from).collect(),
    }))
}

/// `PUT /v1/limits/{name}` `{"namespace", "lane", "key", "max_running",
/// "rate": {"count", "per_ms"}}`: `{"name", "limit", "previous"}`.
pub(crate) async fn set_limit(
    State(state): State<AppState>,
    LimitPath(name): LimitPath,
    ApiJson(body): ApiJson<baton_api::LimitBody>,
) -> ApiResult<Json<baton_api::LimitChangeAnswer>> {
    let limit = body.limit(name.as_str())?;
    let previous = state.backend().set_limit(&limit).await?;
    tracing::info!(
        target: "baton::audit",
        op = "set_limit",
        limit = %name,
        namespace = %limit.namespace,
        lane = limit.lane.as_ref().map_or("*", baton_core::Lane::as_str),
        key = %limit.key,
        max_running = limit.max_running,
        rate_count = limit.rate.map(|r| r.count),
        rate_per_ms = limit.rate.map(|r| r.per.as_millis() as u64),
        replaced = previous.is_some(),
        "limit set"
    );
    Ok(Json(baton_api::LimitChangeAnswer {
        name: name.to_string(),
        limit: Some(baton_api::LimitAnswer::from(&limit)),
        previous: previous.as_ref().map(baton_api::LimitAnswer::from),
    }))
}

/// `DELETE /v1/limits/{name}`: `{"name", "limit": null, "previous"}`
/// (`previous` null: there was no such limit).
pub(crate) async fn remove_limit(
    State(state): State<AppState>,
    LimitPath(name): LimitPath,
) -> ApiResult<Json<baton_api::LimitChangeAnswer>> {
    let previous = state.backend().remove_limit(&name).await?;
    tracing::info!(
        target: "baton::audit",
        op = "remove_limit",
        limit = %name,
        removed = previous.is_some(),
        "limit removed"
    );
    Ok(Json(baton_api::LimitChangeAnswer {
        name: name.to_string(),
        limit: None,
        previous: previous.as_ref().map(baton_api::LimitAnswer::from),
    }))
}

/// `GET /v1/limits?namespace=`: `{"items": [{"name", "namespace", "lane",
/// "key", "max_running", "rate"}…]}`.
pub(crate) async fn limits(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<baton_api::LimitsQuery>,
) -> ApiResult<Json<baton_api::LimitsAnswer>> {
    let namespace: Option<baton_core::Namespace> =
        q.namespace.as_deref().map(str::parse).transpose()?;
    let limits = state.backend().limits(namespace.as_ref()).await?;
    Ok(Json(baton_api::LimitsAnswer {
        items: limits.iter().map(baton_api::LimitAnswer::from).collect(),
    }))
}

/// `GET /v1/limits/{name}/usage?limit=`: `{"name", "items": [{"key_value",
/// "running", "window_claims"}…]}`; `400` (field `limit`) when no limit
/// has the name.
pub(crate) async fn limit_usage(
    State(state): State<AppState>,
    LimitPath(name): LimitPath,
    ApiQuery(q): ApiQuery<baton_api::LimitUsageQuery>,
) -> ApiResult<Json<baton_api::LimitUsageAnswer>> {
    let backend = state.backend();
    let usage = backend
        .limit_usage(&name, q.limit.unwrap_or(baton_core::Page::DEFAULT_LIMIT))
        .await?;
    Ok(Json(baton_api::LimitUsageAnswer {
        name: name.to_string(),
        items: usage
            .into_iter()
            .map(|u| baton_api::LimitKeyAnswer {
                key_value: u.key_value,
                running: u.running,
                window_claims: u.window_claims,
            })
            .collect(),
    }))
}

/// `POST /v1/lanes/{lane}/pause` `{"namespace"}`: `{"lane", "paused":
/// true, "changed"}`.
pub(crate) async fn pause_lane(
    State(state): State<AppState>,
    LanePath(lane): LanePath,
    ApiJson(body): ApiJson<LaneBody>,
) -> ApiResult<Json<LanePauseAnswer>> {
    let ns = body.namespace()?;
    let changed = lane_one(&state, &ns, &lane, true, "http").await?;
    Ok(Json(LanePauseAnswer {
        lane,
        paused: true,
        changed,
    }))
}

/// `POST /v1/lanes/{lane}/resume` `{"namespace"}`: `{"lane", "paused":
/// false, "changed"}`.
pub(crate) async fn resume_lane(
    State(state): State<AppState>,
    LanePath(lane): LanePath,
    ApiJson(body): ApiJson<LaneBody>,
) -> ApiResult<Json<LanePauseAnswer>> {
    let ns = body.namespace()?;
    let changed = lane_one(&state, &ns, &lane, false, "http").await?;
    Ok(Json(LanePauseAnswer {
        lane,
        paused: false,
        changed,
    }))
}

/// `GET /v1/lanes?namespace=`: `{"lanes": [{"lane", "paused", "paused_at",
/// "counts"}…]}` by name.
pub(crate) async fn lanes(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<LaneBody>,
) -> ApiResult<Json<LanesAnswer>> {
    let ns = q.namespace()?;
    let lanes = state.backend().lanes(&ns).await?;
    Ok(Json(LanesAnswer {
        lanes: lanes.iter().map(LaneAnswer::from).collect(),
    }))
}
