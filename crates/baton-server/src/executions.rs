//! Routes for callers: submit, describe, list, stats (cancel and the reads
//! of a flow are in `flows.rs`). The bodies and answers are `baton-api`'s
//! types.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use baton_api::{
    BatchBody, BatchCreated, Created, DescribeQuery, ListAnswer, ListQuery, Snapshot, StatsAnswer,
    StatsQuery, SubmitBody,
};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, IdPath};
use crate::metrics::HttpMetrics;

/// `POST /v1/executions`: 201 when created, 200 for a repeated idempotency
/// key or child key.
pub(crate) async fn submit(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SubmitBody>,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let new = body.into_new()?;
    state.metrics().saw_namespace(&new.namespace);
    let mut out = state.backend().create(vec![new]).await?;
    let Some(o) = out.pop() else {
        return Err(baton_core::EngineError::corruption("create answered no outcome").into());
    };
    let status = if o.created {
        HttpMetrics::add(&state.metrics().submitted, 1);
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(Created::from(&o))))
}

/// `POST /v1/executions/batch`: one backend call, answers in request order.
pub(crate) async fn submit_batch(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<BatchBody>,
) -> ApiResult<(StatusCode, Json<BatchCreated>)> {
    let mut batch = Vec::with_capacity(body.executions.len());
    for (i, item) in body.executions.into_iter().enumerate() {
        batch.push(
            item.into_new()
                .map_err(|e| ApiError::from(e).at(format!("executions[{i}]")))?,
        );
    }
    for new in &batch {
        state.metrics().saw_namespace(&new.namespace);
    }
    let out = state.backend().create(batch).await?;
    let created = out.iter().filter(|o| o.created).count();
    HttpMetrics::add(&state.metrics().submitted, created);
    let results = out.iter().map(Created::from).collect();
    Ok((StatusCode::CREATED, Json(BatchCreated { results })))
}

/// `GET /v1/executions/{id}`; `?attempts=true` adds `attempt_history`.
/// With `wait_ms > 0` it answers as soon as the execution is terminal (at
/// once if it is) — or, given `status_version` / `progress_seq`, as soon as
/// those differ — else after `wait_ms` with the current snapshot; the wait
/// is woken by the change, never by polling.
pub(crate) async fn describe(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiQuery(q): ApiQuery<DescribeQuery>,
) -> ApiResult<Json<Snapshot>> {
    let (status, progress) = (q.status_version, q.progress_seq);
    let snap = crate::memory::follow(&state, &id, Duration::from_millis(q.wait_ms), |s| {
        s.state.is_terminal()
            || status.is_some_and(|v| v != s.status_version)
            || progress.is_some_and(|p| p != s.progress_seq)
    })
    .await?;
    let snap = Snapshot::from(&snap);
    if q.attempts {
        let history = state.backend().attempts(&id).await?;
        return Ok(Json(snap.with_attempts(&history)));
    }
    Ok(Json(snap))
}

/// `GET /v1/executions`: `{"items": [...], "next_cursor": "..." | null}`.
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<ListAnswer>> {
    let (filter, page) = q.into_request()?;
    state.metrics().saw_namespace(&filter.namespace);
    let out = state.backend().list(&filter, page).await?;
    Ok(Json(ListAnswer::from(&out)))
}

/// `POST /v1/executions/describe` `{"ids": […]}`: `{"items": [<snapshot>
/// | null, …]}` in the order asked.
pub(crate) async fn describe_many(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<baton_api::DescribeManyBody>,
) -> ApiResult<Json<baton_api::DescribeManyAnswer>> {
    let ids = body.into_ids()?;
    let found = state.backend().describe_many(&ids).await?;
    Ok(Json(baton_api::DescribeManyAnswer {
        items: found
            .iter()
            .map(|s| s.as_ref().map(Snapshot::from))
            .collect(),
    }))
}

/// `POST /v1/executions/bulk/cancel`: `{"matched", "changed", "skipped",
/// "next_cursor"}`; each call is logged as an audit line.
pub(crate) async fn bulk_cancel(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<baton_api::BulkBody>,
) -> ApiResult<Json<baton_api::BulkAnswer>> {
    let request = body.into_request(baton_core::BulkAction::Cancel(Default::default()))?;
    bulk(state, &headers, request).await
}

/// `POST /v1/executions/bulk/replay`: as bulk cancel.
pub(crate) async fn bulk_replay(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<baton_api::BulkBody>,
) -> ApiResult<Json<baton_api::BulkAnswer>> {
    let request = body.into_request(baton_core::BulkAction::Replay)?;
    bulk(state, &headers, request).await
}

/// `POST /v1/executions/bulk/delete`: as bulk cancel (`"force"` cancels
/// and deletes unfinished executions).
pub(crate) async fn bulk_delete(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<baton_api::BulkBody>,
) -> ApiResult<Json<baton_api::BulkAnswer>> {
    let request = body.into_request(baton_core::BulkAction::Delete { force: false })?;
    bulk(state, &headers, request).await
}

/// Who asks for a bulk call: `http:` and the `Baton-Actor` header (an
/// operator's or tool's name, visible ASCII; the server has one API token,
/// so it cannot tell callers apart itself), else `http`.
fn actor(headers: &axum::http::HeaderMap) -> ApiResult<String> {
    const MAX: usize = baton_core::BulkRequest::MAX_ACTOR - "http:".len();
    let Some(value) = headers.get("baton-actor") else {
        return Ok("http".into());
    };
    let text = value.to_str().map(str::trim).unwrap_or("");
    if text.is_empty()
        || text.len() > MAX
        || !text.bytes().all(|c| c.is_ascii_graphic() || c == b' ')
    {
        return Err(baton_core::EngineError::invalid(
            "Baton-Actor",
            text,
            format!("name the caller in 1 to {MAX} visible ASCII characters"),
        )
        .into());
    }
    Ok(format!("http:{text}"))
}

async fn bulk(
    state: AppState,
    headers: &axum::http::HeaderMap,
    mut request: baton_core::BulkRequest,
) -> ApiResult<Json<baton_api::BulkAnswer>> {
    request.actor = Some(actor(headers)?);
    let report = bulk_as(&state, request).await?;
    Ok(Json(baton_api::BulkAnswer::from(&report)))
}

/// One bulk call as `request.actor` asked, logged as an audit line: what
/// the API routes and the dashboard both call.
pub(crate) async fn bulk_as(
    state: &AppState,
    request: baton_core::BulkRequest,
) -> ApiResult<baton_core::BulkReport> {
    state.metrics().saw_namespace(&request.filter.namespace);
    let op = request.action.name();
    let (namespace, dry_run) = (request.filter.namespace.clone(), request.dry_run);
    let filter = format!("{:?}", request.filter);
    let ids = request.ids.len();
    let actor = request.actor.clone().unwrap_or_default();
    let report = state.backend().bulk(request).await?;
    if let Some(e) = &report.audit_error {
        tracing::warn!(target: "baton::audit", op, %namespace, error = %e, "bulk call: audit events not written");
    }
    tracing::info!(
        target: "baton::audit",
        op,
        actor,
        %namespace,
        dry_run,
        filter,
        ids,
        matched = report.matched,
        changed = report.changed,
        skipped = report.skipped.len(),
        more = report.next_cursor.is_some(),
        "bulk call"
    );
    Ok(report)
}

/// `GET /v1/stats?namespace=`: `{"lanes": {"<lane>": {<state>: n, …}}}`.
pub(crate) async fn stats(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<Json<StatsAnswer>> {
    let ns = q.namespace()?;
    state.metrics().saw_namespace(&ns);
    let lanes = state.backend().counts(&ns).await?;
    Ok(Json(StatsAnswer { lanes }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::extract::parse_json;
    use baton_core::{Backoff, ListFilter, Page, RetryPolicy};

    #[test]
    fn a_submission_gets_the_documented_defaults() {
        let body: SubmitBody = parse_json(br#"{"kind": "email.send"}"#).unwrap();
        let new = body.into_new().unwrap();
        assert_eq!(new.namespace.as_str(), "default");
        assert_eq!(new.lane.as_str(), "default");
        assert_eq!(new.priority, 0);
        assert_eq!(new.delay_ms, 0);
        assert_eq!(new.payload, b"null");
        assert_eq!(new.retry, RetryPolicy::default());
        assert_eq!(
            new.retry.backoff,
            Backoff {
                initial_ms: 1000,
                max_ms: 60_000,
                multiplier: 2.0,
                jitter: true
            }
        );
    }

    #[test]
    fn the_payload_is_stored_as_sent() {
        let body: SubmitBody =
            parse_json(br#"{"kind": "k", "payload": {"b": 1, "a": [1.50, "x"]}}"#).unwrap();
        assert_eq!(
            body.into_new().unwrap().payload,
            br#"{"b": 1, "a": [1.50, "x"]}"#
        );
    }

    #[test]
    fn a_bad_field_is_named() {
        let e = parse_json::<SubmitBody>(br#"{"kind": "k", "lane": "no spaces"}"#).unwrap_err();
        assert!(e.message.contains("lane"), "{}", e.message);
        let e = parse_json::<SubmitBody>(br#"{"kind": "k", "max_attempts": -1}"#).unwrap_err();
        assert!(e.message.contains("max_attempts"), "{}", e.message);
        let e = parse_json::<SubmitBody>(br#"{"kind": "k", "run_at": "tomorrow"}"#).unwrap_err();
        assert!(e.message.contains("run_at"), "{}", e.message);
        let e = parse_json::<BatchBody>(br#"{"executions": [{"kind": "k"}, {"kind": ""}]}"#)
            .unwrap_err();
        assert!(e.message.contains("executions[1].kind"), "{}", e.message);
    }

    #[test]
    fn an_initial_backoff_above_the_default_max_raises_the_max() {
        let body: SubmitBody =
            parse_json(br#"{"kind": "k", "backoff": {"initial_ms": 120000}}"#).unwrap();
        let b = body.into_new().unwrap().retry.backoff;
        assert_eq!((b.initial_ms, b.max_ms), (120_000, 120_000));
    }

    #[test]
    fn list_parameters_are_checked() {
        let q = |s: &str| -> ApiResult<(ListFilter, Page)> {
            let ApiQuery(q) = futures_free_query(s)?;
            Ok(q.into_request()?)
        };
        let (f, p) = q("lane=emails&state=waiting&tag=customer:42:x&limit=5").unwrap();
        assert_eq!(f.lane.unwrap().as_str(), "emails");
        assert_eq!(f.tag.unwrap().1, "42:x");
        assert_eq!(p.limit, 5);
        assert!(q("limit=0").is_err());
        assert!(q("limit=1001").is_err());
        assert!(q("limit=ten").is_err());
        assert!(q("state=sleeping").is_err());
        assert!(q("tag=nocolon").is_err());
        assert!(q("cursor=garbage").is_err());
        assert!(q("colour=blue").is_err());
    }

    fn futures_free_query(s: &str) -> ApiResult<ApiQuery<ListQuery>> {
        let uri: axum::http::Uri = format!("/v1/executions?{s}").parse().unwrap();
        axum::extract::Query::<ListQuery>::try_from_uri(&uri)
            .map(|axum::extract::Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::invalid(e.body_text()))
    }
}
