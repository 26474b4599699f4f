//! `claim` and `wait_for_work`.
//!
//! A claim is one statement (`sql/claim.sql`) unless a limit covers one of
//! its lanes: the statement then takes nothing and says so (`limited`),
//! and the claim goes through `limits::claim`, which chooses the work
//! under the limits and claims it through the statement's shared tail.
//! Either way, the executions taken are read back the same way here.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use baton_core::raw::rules;
use baton_core::{
    Claim, ClaimRequest, EngineError, ExecutionId, Lane, LeaseToken, Namespace, Result, Signal,
    Timestamp, Upstream,
};
use sqlx::Postgres;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;

use crate::errors::map;
use crate::read::{self, col};
use crate::{PostgresBackend, part, sql};

pub(crate) async fn claim(b: &PostgresBackend, request: ClaimRequest) -> Result<Vec<Claim>> {
    request.validate(&b.inner.limits)?;
    let now = b.now();
    let expires = now.saturating_add(request.lease_ttl);
    crate::ops::saw_claim(b, &request, now).await;
    let mut lanes: Vec<&str> = request.lanes.iter().map(Lane::as_str).collect();
    lanes.sort_unstable();
    lanes.dedup();
    let caps: Vec<&str> = request.capabilities.iter().map(|c| c.as_str()).collect();
    let caps_json =
        serde_json::to_string(&caps).map_err(|e| EngineError::corruption(e.to_string()))?;
    let (min, max) = rules::version_bounds(&request.versions);
    let rows = leasing(sql::CLAIM, &request, now, expires)
        .bind(request.namespace.as_str())
        .bind(&lanes)
        .bind(&caps_json)
        .bind(i64::try_from(request.max).unwrap_or(i64::MAX))
        .bind(min)
        .bind(max)
        .fetch_all(&b.inner.pool)
        .await
        .map_err(map)?;
    let limited = match rows.first() {
        Some(row) => col::<bool>(row, "limited")?,
        None => false,
    };
    let rows = if limited {
        crate::limits::claim(b, &request, &lanes, &caps_json, now, expires).await?
    } else {
        claimed_rows(rows)?
    };
    let mut upstream = upstreams(b, &rows).await?;
    let mut consumed = consumed_signals(b, &rows).await?;
    let mut claims = Vec::with_capacity(rows.len());
    for row in &rows {
        let snap = b.snapshot(row)?;
        let nonce = read::lease_nonce(row)?.ok_or_else(|| {
            EngineError::corruption(format!("execution {}: claimed without a nonce", snap.id))
        })?;
        let ready_at: i64 = col(row, "ready_at")?;
        let log = read::wait_log(row)?;
        let waits = if log.is_empty() {
            Vec::new()
        } else {
            rules::parse_wait_log(&format!("execution {}", snap.id), &log)?
        };
        let claim = Claim {
            session: snap.session,
            version: snap.version,
            namespace: snap.namespace,
            lane: snap.lane,
            kind: snap.kind,
            payload: snap.payload,
            attempt: snap.attempts,
            lease: LeaseToken::new(snap.id.clone(), snap.attempts, nonce),
            lease_expires_at: expires,
            deadline: snap.deadline,
            tags: snap.tags,
            upstream: upstream.remove(&snap.id).unwrap_or_default(),
            waits,
            signals: consumed.remove(&snap.id).unwrap_or_default(),
            steps: read::claimed_steps(row, &format!("execution {}", snap.id))?,
            id: snap.id,
        };
        claims.push((i64::from(snap.priority), ready_at, claim));
    }
    // RETURNING order is unspecified; hand work out in claim order.
    Ok(rules::order_claims(claims))
}

/// The claim statement `statement` (a head of `sql/` ending with
/// `sql/claim_tail.sql`) with the tail's parameters bound: the instant,
/// the worker, the lease's expiry, one fresh nonce per execution the
/// claim may take and the worker's session idle time. The head's
/// parameters follow.
pub(crate) fn leasing<'q>(
    statement: &'q str,
    request: &'q ClaimRequest,
    now: Timestamp,
    expires: Timestamp,
) -> Query<'q, Postgres, PgArguments> {
    let nonces: Vec<i64> = LeaseToken::random_nonces(request.max)
        .into_iter()
        .map(|n| n as i64)
        .collect();
    sqlx::query(statement)
        .bind(now.as_millis())
        .bind(request.worker_id.as_str())
        .bind(expires.as_millis())
        .bind(nonces)
        .bind(i64::try_from(request.session_idle.as_millis()).unwrap_or(i64::MAX))
}

/// The rows of the executions a claim statement took: its answer without
/// the row that only carries `limited` when it took nothing.
pub(crate) fn claimed_rows(rows: Vec<PgRow>) -> Result<Vec<PgRow>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        if col::<Option<uuid::Uuid>>(&row, "uuid")?.is_some() {
            out.push(row);
        }
    }
    Ok(out)
}

/// The upstream executions of the claimed executions that have
/// dependencies, with their states and results now, by dependent; one
/// statement, and none when no claimed execution has dependencies (the hot
/// path stays one round trip).
async fn upstreams(
    b: &PostgresBackend,
    claimed: &[PgRow],
) -> Result<HashMap<ExecutionId, BTreeMap<ExecutionId, Upstream>>> {
    let (mut partitions, mut uuids) = (Vec::new(), Vec::new());
    for row in claimed {
        if col::<i32>(row, "deps_total")? > 0 {
            let id = read::execution_id(row, b.inner.partitions)?;
            partitions.push(part(id.partition()));
            uuids.push(id.uuid());
        }
    }
    let mut out: HashMap<ExecutionId, BTreeMap<ExecutionId, Upstream>> = HashMap::new();
    if uuids.is_empty() {
        return Ok(out);
    }
    let rows = sqlx::query(
        "SELECT d.downstream, e.partition, e.uuid, e.state, e.result \
         FROM UNNEST($1::int2[], $2::uuid[]) AS q(partition, uuid) \
         JOIN dependencies d ON d.partition = q.partition AND d.downstream = q.uuid \
         JOIN executions e ON e.partition = d.partition AND e.uuid = d.upstream",
    )
    .bind(partitions)
    .bind(uuids)
    .fetch_all(&b.inner.pool)
    .await
    .map_err(map)?;
    for row in &rows {
        let dependent = read::id_from(row, "downstream", b.inner.partitions)?;
        let id = read::execution_id(row, b.inner.partitions)?;
        let state = read::state(&format!("execution {id}"), &col::<String>(row, "state")?)?;
        let result: Option<Vec<u8>> = col(row, "result")?;
        out.entry(dependent)
            .or_default()
            .insert(id, Upstream { state, result });
    }
    Ok(out)
}

/// The signals the ended waits of the claimed executions consumed, oldest
/// first, by execution; one statement by primary key, and none when no
/// claimed execution ever waited (its wait log is empty), so the hot path
/// stays one round trip.
async fn consumed_signals(
    b: &PostgresBackend,
    claimed: &[PgRow],
) -> Result<HashMap<ExecutionId, Vec<Signal>>> {
    let (mut partitions, mut uuids) = (Vec::new(), Vec::new());
    for row in claimed {
        if !read::wait_log(row)?.is_empty() {
            let id = read::execution_id(row, b.inner.partitions)?;
            partitions.push(part(id.partition()));
            uuids.push(id.uuid());
        }
    }
    let mut out: HashMap<ExecutionId, Vec<Signal>> = HashMap::new();
    if uuids.is_empty() {
        return Ok(out);
    }
    let rows = sqlx::query(
        "SELECT s.* FROM UNNEST($1::int2[], $2::uuid[]) AS q(partition, uuid) \
         JOIN signals s ON s.partition = q.partition AND s.uuid = q.uuid \
         WHERE s.wait IS NOT NULL ORDER BY s.partition, s.uuid, s.seq",
    )
    .bind(partitions)
    .bind(uuids)
    .fetch_all(&b.inner.pool)
    .await
    .map_err(map)?;
    for row in &rows {
        let id = read::execution_id(row, b.inner.partitions)?;
        let signal = read::signal(row, &format!("execution {id}"))?;
        out.entry(id).or_default().push(signal);
    }
    Ok(out)
}

pub(crate) async fn wait_for_work(
    b: &PostgresBackend,
    namespace: &Namespace,
    lanes: &[Lane],
    timeout: Duration,
) -> Result<()> {
    b.inner.listener.ensure().await?;
    b.inner.wake.wait_for(namespace, lanes, timeout).await;
    Ok(())
}
