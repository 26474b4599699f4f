//! The worker protocol: claim (with long-polling), renew, complete, fail.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use baton_core::api::{bytes_json, snapshot_json};
use baton_core::{
    CapabilityName, Claim, ClaimRequest, EngineError, ExecutionId, Failure, LeaseToken, Namespace,
    RenewOutcome, RenewRequest, RenewStatus, State as ExecState, WorkerId,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::executions::{namespace_or_default, raw_bytes};
use crate::extract::{ApiJson, IdPath, LanePath};
use crate::metrics::HttpMetrics;

/// Lease length when a request names none.
const DEFAULT_LEASE_MS: u64 = 30_000;

/// Shortest interval between two claims of one waiting request.
const MIN_CLAIM_SPACING: Duration = Duration::from_millis(10);

fn default_lease_ms() -> u64 {
    DEFAULT_LEASE_MS
}

fn default_max() -> usize {
    1
}

fn default_true() -> bool {
    true
}

/// Body of `POST /v1/lanes/{lane}/claim`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClaimBody {
    #[serde(default)]
    namespace: Option<Namespace>,
    worker_id: WorkerId,
    #[serde(default)]
    capabilities: BTreeSet<CapabilityName>,
    #[serde(default = "default_max")]
    max: usize,
    #[serde(default = "default_lease_ms")]
    lease_ms: u64,
    #[serde(default)]
    wait_ms: u64,
}

fn claim_json(c: &Claim) -> Value {
    let tags: Map<String, Value> = c
        .tags
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
        .collect();
    json!({
        "id": c.id.to_string(),
        "namespace": c.namespace.as_str(),
        "lane": c.lane.as_str(),
        "kind": c.kind.as_str(),
        "payload": bytes_json(&c.payload),
        "attempt": c.attempt,
        "lease": {"token": c.lease.to_string(), "expires_at": c.lease_expires_at},
        "deadline": c.deadline,
        "tags": tags,
    })
}

/// `POST /v1/lanes/{lane}/claim`: `{"claims": [...]}`. With `wait_ms > 0`
/// (capped at [`ServerConfig::max_wait`](crate::ServerConfig::max_wait)) an
/// empty claim waits for a wake-up from the backend and tries again, until
/// work arrives, the wait is over, or the server shuts down.
pub(crate) async fn claim(
    State(state): State<AppState>,
    LanePath(lane): LanePath,
    ApiJson(body): ApiJson<ClaimBody>,
) -> ApiResult<Json<Value>> {
    let namespace = namespace_or_default(body.namespace)?;
    state.metrics().saw_namespace(&namespace);
    let request = ClaimRequest::new(namespace, lane, body.worker_id, body.max)
        .with_capabilities(body.capabilities)
        .with_lease_ttl(Duration::from_millis(body.lease_ms));
    let wait = Duration::from_millis(body.wait_ms).min(state.config().max_wait);
    let claims = claim_waiting(&state, request, wait).await?;
    HttpMetrics::add(&state.metrics().claimed, claims.len());
    let claims: Vec<Value> = claims.iter().map(claim_json).collect();
    Ok(Json(json!({"claims": claims})))
}

async fn claim_waiting(
    state: &AppState,
    request: ClaimRequest,
    wait: Duration,
) -> ApiResult<Vec<Claim>> {
    let backend = state.backend();
    let until = Instant::now() + wait;
    let mut draining = state.draining();
    let mut last_claim: Option<Instant> = None;
    loop {
        // A backend may wake waiters early (the contract calls wake-ups a
        // hint); spacing the claims keeps that from turning into a busy loop.
        if let Some(at) = last_claim {
            tokio::time::sleep_until(at + MIN_CLAIM_SPACING).await;
        }
        last_claim = Some(Instant::now());
        // Always claim once more after the last wait, so work that arrived
        // without a wake-up is still handed out before answering empty.
        let claims = backend.claim(request.clone()).await?;
        let now = Instant::now();
        if !claims.is_empty() || now >= until || *draining.borrow_and_update() {
            return Ok(claims);
        }
        let nap = (until - now).min(state.config().recheck);
        tokio::select! {
            woke = backend.wait_for_work(&request.namespace, &request.lanes, nap) => woke?,
            _ = draining.changed() => {}
        }
    }
}

/// Body of `POST /v1/executions/{id}/complete`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompleteBody {
    lease: LeaseToken,
    #[serde(default)]
    result: Option<Box<RawValue>>,
}

/// A lease presented on `/v1/executions/{id}/…` must belong to `{id}`.
fn check_lease_matches(lease: &LeaseToken, id: &ExecutionId) -> ApiResult<()> {
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
) -> ApiResult<Json<Value>> {
    check_lease_matches(&body.lease, &id)?;
    let snap = state
        .backend()
        .complete(&body.lease, raw_bytes(body.result))
        .await?;
    HttpMetrics::add(&state.metrics().completed, 1);
    Ok(Json(snapshot_json(&snap)))
}

/// Body of `POST /v1/executions/{id}/fail`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FailBody {
    lease: LeaseToken,
    error: String,
    #[serde(default = "default_true")]
    retryable: bool,
    /// Overrides the backoff before the next attempt.
    #[serde(default)]
    retry_after_ms: Option<u64>,
}

/// `POST /v1/executions/{id}/fail`: the snapshot, `waiting`/`delayed` when
/// another attempt follows, else `failed`.
pub(crate) async fn fail(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<FailBody>,
) -> ApiResult<Json<Value>> {
    check_lease_matches(&body.lease, &id)?;
    let failure = Failure {
        error: body.error,
        retryable: body.retryable,
        retry_after: body.retry_after_ms.map(Duration::from_millis),
    };
    let snap = state.backend().fail(&body.lease, failure).await?;
    let m = state.metrics();
    match snap.state {
        ExecState::Failed => HttpMetrics::add(&m.failed, 1),
        ExecState::Waiting | ExecState::Delayed => HttpMetrics::add(&m.retried, 1),
        _ => {}
    }
    Ok(Json(snapshot_json(&snap)))
}

/// Body of `POST /v1/leases/renew`. Tokens are read as text: a malformed
/// token is reported `lost`, like any other lease that is not the caller's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RenewBody {
    worker_id: WorkerId,
    #[serde(default = "default_lease_ms")]
    lease_ms: u64,
    leases: Vec<String>,
}

fn renew_json(
    token: &str,
    status: RenewStatus,
    expires_at: Option<baton_core::Timestamp>,
) -> Value {
    json!({"token": token, "status": status, "expires_at": expires_at})
}

/// `POST /v1/leases/renew`: `{"leases": [{"token", "status", "expires_at"}]}`
/// in request order.
pub(crate) async fn renew(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RenewBody>,
) -> ApiResult<Json<Value>> {
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
    let mut items = Vec::with_capacity(body.leases.len());
    for (text, token) in body.leases.iter().zip(&parsed) {
        let item = match token {
            None => renew_json(text, RenewStatus::Lost, None),
            Some(_) => match outcomes.next() {
                Some(o) => renew_json(text, o.status, o.expires_at),
                None => {
                    return Err(ApiError::from(EngineError::corruption(
                        "renew answered fewer outcomes than leases",
                    )));
                }
            },
        };
        items.push(item);
    }
    Ok(Json(json!({"leases": items})))
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
