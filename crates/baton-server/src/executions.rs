//! Routes for callers: submit, describe, list, cancel, stats.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use baton_core::api::{counts_json, create_json, snapshot_json, snapshot_with_attempts_json};
use baton_core::{
    Backoff, CapabilityName, ExecutionId, IdempotencyKey, Kind, Lane, ListCursor, ListFilter,
    Namespace, NewExecution, Page, RetryPolicy, State as ExecState, TagKey, Timestamp,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, IdPath};
use crate::metrics::HttpMetrics;

/// The namespace or lane used when a request names none.
pub(crate) const DEFAULT_NAME: &str = "default";

/// A namespace from an optional field, `default` when absent.
pub(crate) fn namespace_or_default(ns: Option<Namespace>) -> ApiResult<Namespace> {
    match ns {
        Some(ns) => Ok(ns),
        None => Ok(Namespace::new(DEFAULT_NAME)?),
    }
}

/// JSON bytes of an optional raw value; absent is `null`.
pub(crate) fn raw_bytes(raw: Option<Box<RawValue>>) -> Vec<u8> {
    raw.map(|r| r.get().as_bytes().to_vec())
        .unwrap_or_else(|| b"null".to_vec())
}

fn default_attempts() -> u32 {
    RetryPolicy::default().max_attempts
}

/// One submission, as in `POST /v1/executions`. Only `kind` is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitBody {
    #[serde(default)]
    namespace: Option<Namespace>,
    #[serde(default)]
    lane: Option<Lane>,
    kind: Kind,
    #[serde(default)]
    payload: Option<Box<RawValue>>,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    delay_ms: i64,
    #[serde(default)]
    run_at: Option<Timestamp>,
    #[serde(default)]
    deadline: Option<Timestamp>,
    #[serde(default = "default_attempts")]
    max_attempts: u32,
    #[serde(default)]
    backoff: Option<BackoffBody>,
    #[serde(default)]
    idempotency_key: Option<IdempotencyKey>,
    #[serde(default)]
    tags: BTreeMap<TagKey, String>,
    #[serde(default)]
    capabilities: BTreeSet<CapabilityName>,
    #[serde(default)]
    parent: Option<ExecutionId>,
}

/// Backoff fields; each defaults to [`Backoff::default`], except that an
/// absent `max_ms` is at least `initial_ms`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackoffBody {
    initial_ms: Option<u64>,
    max_ms: Option<u64>,
    multiplier: Option<f64>,
    jitter: Option<bool>,
}

impl BackoffBody {
    fn resolve(self) -> Backoff {
        let d = Backoff::default();
        let initial_ms = self.initial_ms.unwrap_or(d.initial_ms);
        Backoff {
            initial_ms,
            max_ms: self.max_ms.unwrap_or(d.max_ms.max(initial_ms)),
            multiplier: self.multiplier.unwrap_or(d.multiplier),
            jitter: self.jitter.unwrap_or(d.jitter),
        }
    }
}

impl SubmitBody {
    /// The submission; field values are checked by the backend
    /// ([`NewExecution::validate`]) so every backend rejects the same input.
    pub(crate) fn into_new(self) -> ApiResult<NewExecution> {
        let retry = RetryPolicy {
            max_attempts: self.max_attempts,
            backoff: self.backoff.map(BackoffBody::resolve).unwrap_or_default(),
        };
        let lane = match self.lane {
            Some(lane) => lane,
            None => Lane::new(DEFAULT_NAME)?,
        };
        let mut new = NewExecution::new(
            namespace_or_default(self.namespace)?,
            lane,
            self.kind,
            raw_bytes(self.payload),
        )
        .with_priority(self.priority)
        .with_delay_ms(self.delay_ms)
        .with_retry(retry);
        if let Some(t) = self.run_at {
            new = new.with_run_at(t);
        }
        if let Some(t) = self.deadline {
            new = new.with_deadline(t);
        }
        if let Some(k) = self.idempotency_key {
            new = new.with_idempotency_key(k);
        }
        for (k, v) in self.tags {
            new = new.with_tag(k, v);
        }
        for c in self.capabilities {
            new = new.with_capability(c);
        }
        if let Some(p) = self.parent {
            new = new.with_parent(p);
        }
        Ok(new)
    }
}

/// `POST /v1/executions`: 201 when created, 200 for a repeated idempotency key.
pub(crate) async fn submit(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SubmitBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
    Ok((status, Json(create_json(&o))))
}

/// Body of `POST /v1/executions/batch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchBody {
    executions: Vec<SubmitBody>,
}

/// `POST /v1/executions/batch`: one backend call, answers in request order.
pub(crate) async fn submit_batch(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<BatchBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut batch = Vec::with_capacity(body.executions.len());
    for (i, item) in body.executions.into_iter().enumerate() {
        batch.push(
            item.into_new()
                .map_err(|e| e.at(format!("executions[{i}]")))?,
        );
    }
    for new in &batch {
        state.metrics().saw_namespace(&new.namespace);
    }
    let out = state.backend().create(batch).await?;
    let created = out.iter().filter(|o| o.created).count();
    HttpMetrics::add(&state.metrics().submitted, created);
    let results: Vec<Value> = out.iter().map(create_json).collect();
    Ok((StatusCode::CREATED, Json(json!({"results": results}))))
}

/// Query of `GET /v1/executions/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DescribeQuery {
    #[serde(default)]
    attempts: bool,
}

/// `GET /v1/executions/{id}`; `?attempts=true` adds `attempt_history`.
pub(crate) async fn describe(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiQuery(q): ApiQuery<DescribeQuery>,
) -> ApiResult<Json<Value>> {
    let snap = state.backend().describe(&id).await?;
    if q.attempts {
        let history = state.backend().attempts(&id).await?;
        return Ok(Json(snapshot_with_attempts_json(&snap, &history)));
    }
    Ok(Json(snapshot_json(&snap)))
}

/// Query of `GET /v1/executions`. Values arrive as text and are parsed here
/// so that each error names its parameter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    namespace: Option<String>,
    lane: Option<String>,
    state: Option<String>,
    kind: Option<String>,
    tag: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

impl ListQuery {
    fn into_request(self) -> ApiResult<(ListFilter, Page)> {
        let ns = self.namespace.map(Namespace::new).transpose()?;
        let mut filter = ListFilter::namespace(namespace_or_default(ns)?);
        if let Some(l) = self.lane {
            filter = filter.with_lane(Lane::new(l)?);
        }
        if let Some(s) = self.state {
            filter = filter.with_state(s.parse::<ExecState>()?);
        }
        if let Some(k) = self.kind {
            filter = filter.with_kind(Kind::new(k)?);
        }
        if let Some(t) = self.tag {
            // Tag values are free text, keys cannot hold a colon in this
            // form: split at the first one.
            let Some((k, v)) = t.split_once(':') else {
                return Err(ApiError::invalid(format!(
                    "invalid tag {t:?}: write it as KEY:VALUE, for example tag=customer:42"
                )));
            };
            filter = filter.with_tag(TagKey::new(k)?, v);
        }
        let limit = match self.limit {
            None => Page::DEFAULT_LIMIT,
            Some(l) => l.parse::<usize>().map_err(|_| {
                ApiError::invalid(format!(
                    "invalid limit {l:?}: must be a whole number between 1 and {}",
                    Page::MAX_LIMIT
                ))
            })?,
        };
        let cursor = self
            .cursor
            .filter(|c| !c.is_empty())
            .map(|c| c.parse::<ListCursor>())
            .transpose()?;
        let page = Page { limit, cursor };
        page.validate()?;
        Ok((filter, page))
    }
}

/// `GET /v1/executions`: `{"items": [...], "next_cursor": "..." | null}`.
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let (filter, page) = q.into_request()?;
    state.metrics().saw_namespace(&filter.namespace);
    let out = state.backend().list(&filter, page).await?;
    let items: Vec<Value> = out.items.iter().map(snapshot_json).collect();
    Ok(Json(json!({
        "items": items,
        "next_cursor": out.next_cursor.map(|c| c.to_string()),
    })))
}

/// Body of `POST /v1/executions/{id}/cancel`; may be empty.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelBody {
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /v1/executions/{id}/cancel`: the snapshot; cancelling a cancelled
/// execution again is a no-op, any other terminal state a `409 conflict`.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<CancelBody>,
) -> ApiResult<Json<Value>> {
    let snap = state.backend().cancel(&id, body.reason).await?;
    Ok(Json(snapshot_json(&snap)))
}

/// Query of `GET /v1/stats`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatsQuery {
    namespace: Option<String>,
}

/// `GET /v1/stats?namespace=`: `{"lanes": {"<lane>": {<state>: n, …}}}`.
pub(crate) async fn stats(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<Json<Value>> {
    let ns = namespace_or_default(q.namespace.map(Namespace::new).transpose()?)?;
    state.metrics().saw_namespace(&ns);
    let counts = state.backend().counts(&ns).await?;
    let lanes: serde_json::Map<String, Value> = counts
        .iter()
        .map(|(lane, c)| (lane.to_string(), counts_json(c)))
        .collect();
    Ok(Json(json!({"lanes": lanes})))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::extract::parse_json;

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
            q.into_request()
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
