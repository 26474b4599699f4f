//! The worker protocol: claim (with long-polling), renew, complete, fail. The
//! bodies and answers are `baton-api`'s types; the long-poll is
//! [`baton_core::claim_waiting`], shared with the SDK's in-process worker.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use baton_api::{
    ClaimAnswer, ClaimBody, ClaimedExecution, CompleteBody, FailBody, RenewAnswer, RenewBody,
    RenewedLease, Snapshot, WaitChildrenBody,
};
use baton_core::{
    EngineError, ExecutionId, LeaseToken, LongPoll, RenewOutcome, RenewRequest, RenewStatus,
    State as ExecState, claim_waiting,
};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, IdPath, LanePath};
use crate::metrics::HttpMetrics;

/// `POST /v1/lanes/{lane}/claim`: `{"claims": [...]}`. With `wait_ms > 0`
/// (capped at [`ServerConfig::max_wait`](crate::ServerConfig::max_wait)) an
/// empty claim waits for a wake-up from the backend and tries again (at
/// least every [`ServerConfig::recheck`](crate::ServerConfig::recheck)),
/// until work arrives, the wait is over, or the server shuts down.
pub(crate) async fn claim(
    State(state): State<AppState>,
    LanePath(lane): LanePath,
    ApiJson(body): ApiJson<ClaimBody>,
) -> ApiResult<Json<ClaimAnswer>> {
    let (request, wait) = body.into_request(lane)?;
    state.metrics().saw_namespace(&request.namespace);
    let poll =
        LongPoll::new(wait.min(state.config().max_wait)).with_recheck(state.config().recheck);
    let mut draining = state.draining();
    let claims = claim_waiting(state.backend().as_ref(), &request, poll, &mut draining).await?;
    HttpMetrics::add(&state.metrics().claimed, claims.len());
    let claims = claims.iter().map(ClaimedExecution::from).collect();
    Ok(Json(ClaimAnswer { claims }))
}

/// A lease presented on `/v1/executions/{id}/…` must belong to `{id}`.
pub(crate) fn check_lease_matches(lease: &LeaseToken, id: &ExecutionId) -> ApiResult<()> {
    if lease.execution_id() != id {
        return Err(EngineError::invalid(
            "lease",
            lease.execution_id(),
            format!(
                "this lease belongs to execution {}, not {id}; send it to that execution's URL",
                lease.execution_id()
            ),
        )
        .into());
    }
    Ok(())
}

/// `POST /v1/executions/{id}/complete`: the snapshot, state `completed`.
pub(crate) async fn complete(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<CompleteBody>,
) -> ApiResult<Json<Snapshot>> {
    check_lease_matches(&body.lease, &id)?;
    let (lease, result) = body.into_result()?;
    let snap = state.backend().complete(&lease, result).await?;
    HttpMetrics::add(&state.metrics().completed, 1);
    Ok(Json(Snapshot::from(&snap)))
}

/// `POST /v1/executions/{id}/wait-children`: the snapshot, `blocked`
/// (lease handed back; `waiting` again once every child has finished) or
/// still `running` with the lease kept when no child is unfinished.
pub(crate) async fn wait_children(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<WaitChildrenBody>,
) -> ApiResult<Json<Snapshot>> {
    check_lease_matches(&body.lease, &id)?;
    let snap = state.backend().wait_children(&body.lease).await?;
    Ok(Json(Snapshot::from(&snap)))
}

/// `POST /v1/executions/{id}/fail`: the snapshot, `waiting`/`delayed` when
/// another attempt follows, else `failed`.
pub(crate) async fn fail(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<FailBody>,
) -> ApiResult<Json<Snapshot>> {
    check_lease_matches(&body.lease, &id)?;
    let (lease, failure) = body.into_failure();
    let snap = state.backend().fail(&lease, failure).await?;
    let m = state.metrics();
    match snap.state {
        ExecState::Failed => HttpMetrics::add(&m.failed, 1),
        ExecState::Waiting | ExecState::Delayed => HttpMetrics::add(&m.retried, 1),
        _ => {}
    }
    Ok(Json(Snapshot::from(&snap)))
}

/// `POST /v1/leases/renew`: `{"leases": [{"token", "status", "expires_at"}]}`
/// in request order. A malformed token is answered `lost`.
pub(crate) async fn renew(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RenewBody>,
) -> ApiResult<Json<RenewAnswer>> {
    let limits = state.backend().capabilities().limits;
    limits.check_batch("leases", body.leases.len())?;
    let lease_ttl = Duration::from_millis(body.lease_ms);
    limits.check_lease(lease_ttl)?;
    let parsed: Vec<Option<LeaseToken>> = body.leases.iter().map(|t| t.parse().ok()).collect();
    let valid: Vec<LeaseToken> = parsed.iter().flatten().cloned().collect();
    let mut outcomes: std::vec::IntoIter<RenewOutcome> = if valid.is_empty() {
        Vec::new().into_iter()
    } else {
        state
            .backend()
            .renew(RenewRequest {
                worker_id: body.worker_id,
                lease_ttl,
                leases: valid,
            })
            .await?
            .into_iter()
    };
    let mut leases = Vec::with_capacity(body.leases.len());
    for (token, parsed) in body.leases.into_iter().zip(&parsed) {
        let (status, expires_at) = match parsed {
            None => (RenewStatus::Lost, None),
            Some(_) => match outcomes.next() {
                Some(o) => (o.status, o.expires_at),
                None => {
                    return Err(ApiError::from(EngineError::corruption(
                        "renew answered fewer outcomes than leases",
                    )));
                }
            },
        };
        leases.push(RenewedLease {
            token,
            status,
            expires_at,
        });
    }
    Ok(Json(RenewAnswer { leases }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::extract::parse_json;
    use baton_core::PartitionCount;

    #[test]
    fn claim_defaults() {
        let b: ClaimBody = parse_json(br#"{"worker_id": "w1"}"#).unwrap();
        assert_eq!((b.max, b.lease_ms, b.wait_ms), (1, 30_000, 0));
        assert!(b.namespace.is_none() && b.capabilities.is_empty());
        assert!(parse_json::<ClaimBody>(br#"{"worker_id": "w1", "wait_ms": -1}"#).is_err());
        assert!(parse_json::<ClaimBody>(b"{}").is_err());
    }

    #[test]
    fn a_lease_for_another_execution_is_invalid_input() {
        let id = ExecutionId::generate(PartitionCount::DEFAULT);
        let other = ExecutionId::generate(PartitionCount::DEFAULT);
        let lease = LeaseToken::new(id.clone(), 1, 7);
        assert!(check_lease_matches(&lease, &id).is_ok());
        let e = check_lease_matches(&lease, &other).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (400, "invalid_input"));
    }

    #[test]
    fn fail_is_retryable_unless_told_otherwise() {
        let id = ExecutionId::generate(PartitionCount::DEFAULT);
        let token = LeaseToken::new(id, 1, 7).to_string();
        let b: FailBody =
            parse_json(format!(r#"{{"lease": "{token}", "error": "boom"}}"#).as_bytes()).unwrap();
        assert!(b.retryable);
        let e = parse_json::<FailBody>(br#"{"lease": "nope", "error": "boom"}"#).unwrap_err();
        assert!(e.message.contains("lease"), "{}", e.message);
    }
}
