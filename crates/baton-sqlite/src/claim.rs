//! `claim` and `wait_for_work`.

use std::time::Duration;

use baton_core::raw::rules::{self, Admission};
use baton_core::{
    Claim, ClaimRequest, EngineError, Lane, LeaseToken, Namespace, Result, Timestamp,
};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite};

use crate::SqliteBackend;
use crate::errors::map;
use crate::read::{self, col};

pub(crate) async fn claim(b: &SqliteBackend, request: ClaimRequest) -> Result<Vec<Claim>> {
    request.validate(&b.inner.limits)?;
    let now = b.now();
    let expires = now.saturating_add(request.lease_ttl);
    crate::ops::saw_claim(b, &request, now).await;
    let caps: Vec<&str> = request.capabilities.iter().map(|c| c.as_str()).collect();
    let caps_json =
        serde_json::to_string(&caps).map_err(|e| EngineError::corruption(e.to_string()))?;

    // Run by the writer task, in a transaction shared with the writes
    // that queued with it (`combine.rs`).
    crate::combine::through_writer(b, |reply| {
        crate::combine::Job::Claim(crate::combine::ClaimJob {
            request,
            now,
            expires,
            caps_json,
            reply,
        })
    })
    .await
}

/// The body of a claim, in the writer task's transaction (not committed
/// here). Every error it answers is a database error (or a row the
/// database should not hold), after which the writer task rolls the whole
/// transaction back.
pub(crate) async fn claim_in(
    b: &SqliteBackend,
    tx: &mut sqlx::SqliteConnection,
    request: &ClaimRequest,
    now: Timestamp,
    expires: Timestamp,
    caps_json: &str,
) -> Result<Vec<Claim>> {
    let limits = crate::limits::of_namespace(&mut *tx, &request.namespace).await?;
    let admission = Admission::new(limits, &request.namespace, &request.lanes, now);
    // The chosen rows are numbered, and row n takes the nth nonce of a
    // blob of fixed-width fields drawn here: its lease and its attempt
    // carry the same nonce because both read one deterministic expression
    // (`random()` written twice would draw twice wherever the planner
    // flattens the subquery). Opening the attempt in the row archives the
    // attempt before it (the trigger `executions_attempt_archived`).
    let (chosen, held_back) = if admission.is_empty() {
        (None, false)
    } else {
        let (chosen, held_back) =
            crate::limits::admit(&mut *tx, admission, request, now, caps_json).await?;
        (Some(chosen), held_back)
    };
    if held_back {
        let lanes: Vec<&str> = request.lanes.iter().map(Lane::as_str).collect();
        b.inner.wake.held_back(request.namespace.as_str(), &lanes);
    }
    if chosen.as_ref().is_some_and(|c| c.is_empty()) {
        return Ok(Vec::new());
    }
    let slots = chosen.as_ref().map_or(request.max, Vec::len);
    let nonces = nonce_fields(slots);
    let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
        "UPDATE executions SET state = 'running', attempts = attempts + 1, \
         lease_nonce = c.nonce, attempt_nonce = c.nonce, worker_id = ",
    );
    qb.push_bind(request.worker_id.as_str())
        .push(", attempt_worker = ")
        .push_bind(request.worker_id.as_str())
        .push(", lease_expires_at = ")
        .push_bind(expires.as_millis())
        .push(", updated_at = ")
        .push_bind(now.as_millis())
        .push(", attempt_started_at = ")
        .push_bind(now.as_millis())
        .push(
            ", attempt_ended_at = NULL, attempt_outcome = NULL, attempt_error = NULL \
             FROM (SELECT picked.uuid AS picked_uuid, CAST(substr(",
        )
        .push_bind(nonces)
        .push(", row_number() OVER () * 20 - 19, 20) AS INTEGER) AS nonce FROM (");
    match chosen {
        None => {
            qb.push("SELECT e.uuid FROM executions e WHERE ");
            push_eligible(&mut qb, request, now, caps_json);
            qb.push(" ORDER BY e.priority DESC, e.ready_at, e.uuid LIMIT ")
                .push_bind(request.max as i64);
        }
        Some(chosen) => {
            // Read in this transaction (the one writer): still waiting.
            qb.push("SELECT e.uuid FROM executions e WHERE e.uuid IN (");
            let mut ids = qb.separated(", ");
            for uuid in chosen {
                ids.push_bind(uuid);
            }
            qb.push(")");
        }
    }
    qb.push(
        ") AS picked) AS c WHERE executions.uuid = c.picked_uuid \
         RETURNING uuid, partition, namespace, lane, kind, payload, attempts, lease_nonce, \
         deadline, tags, priority, ready_at, deps_total, wait_log, step_count, session, version",
    );

    let rows: Vec<SqliteRow> = qb.build().fetch_all(&mut *tx).await.map_err(map)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut claims = Vec::with_capacity(rows.len());
    let mut with_deps = std::collections::HashSet::new();
    let mut wait_logs = std::collections::HashMap::new();
    let mut with_steps = std::collections::HashSet::new();
    let mut sessions = std::collections::BTreeSet::new();
    for row in &rows {
        let id = read::execution_id(row, b.inner.partitions)?;
        let ctx = format!("execution {id}");
        let attempt: i64 = col(row, "attempts")?;
        let attempt = u32::try_from(attempt)
            .map_err(|_| EngineError::corruption(format!("{ctx}: attempts {attempt}")))?;
        let nonce: i64 = col(row, "lease_nonce")?;
        let priority: i64 = col(row, "priority")?;
        let ready_at: i64 = col(row, "ready_at")?;
        if col::<i64>(row, "deps_total")? > 0 {
            with_deps.insert(id.clone());
        }
        if col::<i64>(row, "step_count")? > 0 {
            with_steps.insert(id.clone());
        }
        let log: String = col(row, "wait_log")?;
        if !log.is_empty() {
            wait_logs.insert(id.clone(), log);
        }
        let session =
            rules::stored_session(&ctx, col::<Option<String>>(row, "session")?.as_deref())?;
        if let Some(s) = &session {
            sessions.insert(s.clone());
        }
        let claim = Claim {
            version: rules::stored_version(
                &ctx,
                col::<Option<String>>(row, "version")?.as_deref(),
            )?,
            session,
            namespace: request.namespace.clone(),
            lane: col::<String>(row, "lane")?
                .parse()
                .map_err(|_| EngineError::corruption(format!("{ctx}: lane")))?,
            kind: col::<String>(row, "kind")?
                .parse()
                .map_err(|_| EngineError::corruption(format!("{ctx}: kind")))?,
            payload: col(row, "payload")?,
            attempt,
            lease: LeaseToken::new(id.clone(), attempt, nonce as u64),
            lease_expires_at: expires,
            deadline: col::<Option<i64>>(row, "deadline")?.map(Timestamp::from_millis),
            tags: read::tags(&ctx, &col::<String>(row, "tags")?)?,
            upstream: Default::default(),
            waits: Vec::new(),
            signals: Vec::new(),
            steps: Default::default(),
            id,
        };
        claims.push((priority, ready_at, claim));
    }
    // RETURNING order is unspecified; hand work out in claim order.
    let mut claims = rules::order_claims(claims);
    crate::flow::upstream_results(b, &mut *tx, &mut claims, &with_deps).await?;
    if !wait_logs.is_empty() {
        crate::wait::claimed_waits(&mut *tx, &mut claims, &wait_logs).await?;
    }
    if !with_steps.is_empty() {
        crate::memory::claimed_steps(&mut *tx, &mut claims, &with_steps).await?;
    }

    if !sessions.is_empty() {
        take_sessions(b, &mut *tx, request, &sessions, now, expires).await?;
    }
    Ok(claims)
}

/// `n` fresh lease nonces as 20-byte fields of one blob (a signed 64-bit
/// integer in ASCII decimal, right-aligned), for a statement to cut the
/// nth out with `substr` and read it back with `CAST(… AS INTEGER)`. A
/// blob rather than a text: `substr` of a blob counts bytes, where one of
/// a text walks its characters from the start for every row.
fn nonce_fields(n: usize) -> Vec<u8> {
    use std::io::Write;
    let mut fields = Vec::with_capacity(n * 20);
    for nonce in LeaseToken::random_nonces(n) {
        // Writing into a Vec cannot fail.
        let _ = write!(fields, "{:>20}", nonce as i64);
    }
    fields
}

/// Releases the session of the running execution `snap` when its worker
/// holds the session's lock (a reclaim or a revoke ends the run: the
/// worker is taken for dead or wedged, and the next claimer takes the
/// session).
pub(crate) async fn release_session(
    tx: &mut sqlx::SqliteConnection,
    snap: &baton_core::ExecutionSnapshot,
) -> Result<()> {
    if let (Some(session), Some(worker)) = (&snap.session, &snap.worker_id) {
        sqlx::query("DELETE FROM sessions WHERE namespace = ? AND session = ? AND worker_id = ?")
            .bind(snap.namespace.as_str())
            .bind(session.as_str())
            .bind(worker.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map)?;
    }
    Ok(())
}

/// Takes (or extends) the locks of `sessions` for the claiming worker:
/// the claim chose only work of sessions free, lapsed or already its own,
/// in this transaction (the one writer), so the lock is the worker's.
async fn take_sessions(
    b: &SqliteBackend,
    tx: &mut sqlx::SqliteConnection,
    request: &ClaimRequest,
    sessions: &std::collections::BTreeSet<baton_core::SessionName>,
    now: Timestamp,
    lease_expires: Timestamp,
) -> Result<()> {
    let until = rules::session_lock_until(None, now, lease_expires, request.session_idle);
    let idle = request.session_idle.as_millis() as i64;
    let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
        "INSERT INTO sessions (namespace, session, partition, worker_id, expires_at, idle_ms) ",
    );
    qb.push_values(sessions, |mut v, s| {
        let p = rules::session_partition(&request.namespace, s, b.inner.partitions);
        v.push_bind(request.namespace.as_str())
            .push_bind(s.as_str())
            .push_bind(i64::from(p.get()))
            .push_bind(request.worker_id.as_str())
            .push_bind(until.as_millis())
            .push_bind(idle);
    });
    // The same worker's lock never shrinks; another's (lapsed) is replaced.
    qb.push(
        " ON CONFLICT (namespace, session) DO UPDATE SET \
         expires_at = CASE WHEN sessions.worker_id = excluded.worker_id \
         THEN MAX(sessions.expires_at, excluded.expires_at) ELSE excluded.expires_at END, \
         worker_id = excluded.worker_id, idle_ms = excluded.idle_ms",
    );
    qb.build().execute(&mut *tx).await.map_err(map)?;
    Ok(())
}

/// Pushes the conditions that make an execution `e` claimable by
/// `request` now: waiting in its namespace and one of its lanes, the lane
/// not paused, before its deadline, every capability it requires offered
/// (`caps_json`: the request's capabilities as a JSON array), its version
/// in the request's range, and its session (if any) not held by another
/// worker.
pub(crate) fn push_eligible<'a>(
    qb: &mut QueryBuilder<'a, Sqlite>,
    request: &'a ClaimRequest,
    now: Timestamp,
    caps_json: &'a str,
) {
    qb.push("e.state = 'waiting' AND e.namespace = ")
        .push_bind(request.namespace.as_str())
        .push(" AND e.lane IN (");
    let mut lanes = qb.separated(", ");
    for lane in &request.lanes {
        lanes.push_bind(lane.as_str());
    }
    // A paused lane is skipped; the subquery reads an empty table in the
    // common case.
    qb.push(") AND e.lane NOT IN (SELECT p.lane FROM paused_lanes p WHERE p.namespace = ")
        .push_bind(request.namespace.as_str())
        .push(") AND (e.deadline IS NULL OR e.deadline > ")
        .push_bind(now.as_millis())
        .push(
            ") AND (e.required_caps = '[]' OR NOT EXISTS (SELECT 1 FROM json_each(e.required_caps) r \
             WHERE r.value NOT IN (SELECT value FROM json_each(",
        )
        .push_bind(caps_json)
        .push("))))");
    let (min, max) = rules::version_bounds(&request.versions);
    if let Some(min) = min {
        qb.push(" AND (e.version_key IS NULL OR e.version_key >= ")
            .push_bind(min)
            .push(")");
    }
    if let Some(max) = max {
        qb.push(" AND (e.version_key IS NULL OR e.version_key <= ")
            .push_bind(max)
            .push(")");
    }
    // Work of a session another worker holds is passed over; a lapsed lock
    // is nobody's.
    qb.push(
        " AND (e.session IS NULL OR NOT EXISTS (SELECT 1 FROM sessions s \
         WHERE s.namespace = e.namespace AND s.session = e.session AND s.worker_id <> ",
    )
    .push_bind(request.worker_id.as_str())
    .push(" AND s.expires_at > ")
    .push_bind(now.as_millis())
    .push("))");
}

pub(crate) async fn wait_for_work(
    b: &SqliteBackend,
    namespace: &Namespace,
    lanes: &[Lane],
    timeout: Duration,
) -> Result<()> {
    b.inner.wake.wait_for(namespace, lanes, timeout).await;
    Ok(())
}
