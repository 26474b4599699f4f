//! Routes of waiting without a worker: release, suspend, signals.

use axum::Json;
use axum::extract::State;
use baton_api::{
    ReleaseBody, SignalAnswer, SignalBody, SignalRequestBody, SignalsAnswer, Snapshot,
    SuspendAnswer, SuspendBody, WaitpointBody,
};
use baton_core::{ExecutionId, ExecutionSnapshot, SignalName, SuspendOutcome, Timestamp};
use serde::Deserialize;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, IdAnd, IdPath};
use crate::worker::check_lease_matches;

/// The header a third party presents a waitpoint token in.
pub const WAITPOINT_TOKEN_HEADER: &str = "baton-waitpoint-token";

/// `POST /v1/executions/{id}/release`: the snapshot, `waiting` again with
/// no attempt consumed.
pub(crate) async fn release(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<ReleaseBody>,
) -> ApiResult<Json<Snapshot>> {
    check_lease_matches(&body.lease, &id)?;
    let snap = state.backend().release(&body.lease).await?;
    Ok(Json(Snapshot::from(&snap)))
}

/// `POST /v1/executions/{id}/suspend`: `suspended` with each waitpoint's
/// token, or `running` with the signals that already satisfied the wait
/// (the lease is kept).
pub(crate) async fn suspend(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<SuspendBody>,
) -> ApiResult<Json<SuspendAnswer>> {
    check_lease_matches(&body.lease, &id)?;
    let (lease, request) = body.into_request();
    let out = state.backend().suspend(&lease, request).await?;
    Ok(Json(match out {
        SuspendOutcome::Suspended(snap) => SuspendAnswer {
            state: snap.state,
            waitpoints: tokens(&state, &snap),
            signals: Vec::new(),
            execution: Snapshot::from(&snap),
        },
        SuspendOutcome::Satisfied { snapshot, signals } => SuspendAnswer {
            state: snapshot.state,
            waitpoints: Vec::new(),
            signals: signals.iter().map(SignalBody::from).collect(),
            execution: Snapshot::from(&snapshot),
        },
    }))
}

/// Each waitpoint of a suspended execution with its token: valid until the
/// wait times out, or for the configured lifetime without a timeout.
fn tokens(state: &AppState, snap: &ExecutionSnapshot) -> Vec<WaitpointBody> {
    let Some(wait) = &snap.suspension else {
        return Vec::new();
    };
    let keys = state.config().waitpoint_keys.as_ref();
    let expires = wait.timeout_at.unwrap_or_else(|| {
        Timestamp::now_system().saturating_add(keys.map(|k| k.ttl).unwrap_or_default())
    });
    wait.waitpoints
        .iter()
        .map(|name| WaitpointBody {
            name: name.clone(),
            token: keys.and_then(|k| k.sign(&snap.id, name, expires)),
        })
        .collect()
}

/// The optional `?token=` of the signal route.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenQuery {
    #[serde(default)]
    token: Option<String>,
}

/// `POST /v1/executions/{id}/signals/{name}`: `{"outcome": …}`. Authorised
/// by the API token, or by the waitpoint's token (header
/// `Baton-Waitpoint-Token`, or `?token=`); every token that is presented
/// must be valid — forged, expired, for another execution or waitpoint, or
/// not readable, it is `401` and nothing changes. The body is read only
/// once the caller is authorised.
pub(crate) async fn signal(
    State(state): State<AppState>,
    IdAnd(id, name): IdAnd<SignalName>,
    ApiQuery(query): ApiQuery<TokenQuery>,
    request: axum::extract::Request,
) -> ApiResult<Json<SignalAnswer>> {
    authorise_signal(
        &state,
        request.headers(),
        query.token.as_deref(),
        &id,
        &name,
    )?;
    let ApiJson(body) =
        <ApiJson<SignalRequestBody> as axum::extract::FromRequest<AppState>>::from_request(
            request, &state,
        )
        .await?;
    let signal = body.into_signal(name)?;
    let outcome = state.backend().signal(&id, signal).await?;
    Ok(Json(SignalAnswer { outcome }))
}

fn authorise_signal(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    query_token: Option<&str>,
    id: &ExecutionId,
    name: &SignalName,
) -> ApiResult<()> {
    let mut presented: Vec<&str> = Vec::new();
    for value in headers.get_all(WAITPOINT_TOKEN_HEADER) {
        // A token that cannot be read cannot be valid.
        presented.push(
            value
                .to_str()
                .map_err(|_| ApiError::bad_waitpoint_token())?,
        );
    }
    presented.extend(query_token);
    if !presented.is_empty() {
        let keys = state
            .config()
            .waitpoint_keys
            .as_ref()
            .ok_or_else(ApiError::bad_waitpoint_token)?;
        let now = Timestamp::now_system();
        for token in presented {
            keys.verify(token, id, name, now).map_err(|refusal| {
                tracing::info!(execution = %id, waitpoint = %name, ?refusal, "waitpoint token refused");
                ApiError::bad_waitpoint_token()
            })?;
        }
        return Ok(());
    }
    if state.config().api_token.is_some() && !crate::bearer_matches(state, headers) {
        return Err(ApiError::unauthorized());
    }
    Ok(())
}

/// `GET /v1/executions/{id}/signals`: `{"items": […]}`, oldest first.
pub(crate) async fn signals(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<SignalsAnswer>> {
    let items = state.backend().signals(&id).await?;
    Ok(Json(SignalsAnswer {
        items: items.iter().map(SignalBody::from).collect(),
    }))
}
