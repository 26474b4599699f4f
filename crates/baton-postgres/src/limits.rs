//! `set_limit`, `remove_limit`, `limits`, `limit_usage`, the limited path
//! of a claim, and the `limited` fact of `explain`.
//!
//! The verdicts are [`rules::Admission`]'s; this module reads the facts it
//! needs and writes what it decides. Running executions are counted from
//! `executions` (the `running` rows of the namespace, by key), never kept
//! in a counter, so a run's slot is free in the transaction that moves it
//! out of `running`, however it ends, and a limit set later counts what
//! already runs. Rate windows live in `limit_windows`.
//!
//! Fair limits order work rather than hold it back: the turns are given
//! by a trigger as work enters `waiting` (migration 0015), and claims
//! read work in turn order whichever path they take. A limit that is only
//! fair (neither cap nor rate) therefore never sends a claim down the
//! limited path below, nor is it locked by one.
//!
//! Locks. The claim statement (`sql/claim.sql`) reads `limits` and takes
//! nothing when a limit with a cap or a rate covers one of its lanes; the
//! claim then goes through [`claim`] here, one transaction that:
//! 1. locks the namespace's limits with a cap or a rate covering the
//!    claim's lanes `FOR UPDATE` in name order: limited claimers sharing a
//!    limit serialise on its row for the length of their transaction (one
//!    lock order for all of them, so they never deadlock), which is what
//!    makes a cap exact under concurrent claimers;
//! 2. counts the running executions per key and reads the windows, in
//!    statements whose snapshots (READ COMMITTED) are taken after the lock
//!    was granted, so they see every earlier claimer's commit;
//! 3. reads candidates in claim order in pages after the last one read,
//!    `FOR UPDATE SKIP LOCKED`, passing over the keys known to have no
//!    room, and admits them one by one in Rust;
//! 4. claims the chosen ones through the statement's shared tail
//!    (`sql/claim_chosen.sql`) and stores the windows it filled.
//!
//! Claims of lanes no limit covers never lock anything here; a run ending
//! takes no limit lock either (its state change is the release).
//! `set_limit` and `remove_limit` take `limits` in ACCESS EXCLUSIVE mode:
//! they wait for the claim statements and limited claims in flight (both
//! hold a lock on the table until they end), and every claim after them
//! judges by the new limits. That lock also stops every claim of the
//! deployment for the length of their short transaction, and every move of
//! work into `waiting` (the turn trigger reads `limits` too).

use std::collections::BTreeMap;

use baton_core::raw::rules::{self, Admission, Blocked};
use baton_core::raw::stored::parse as parsed;
use baton_core::{
    ClaimRequest, ExecutionSnapshot, Kind, Lane, Limit, LimitKey, LimitName, LimitUsage, LimitedBy,
    Namespace, Page, Result, Timestamp,
};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::errors::map;
use crate::read::{self, col};
use crate::{PostgresBackend, finish, sql};

const LIMIT_COLUMNS: &str =
    "name, namespace, lane, key, max_running, rate_count, rate_per_ms, fair";

fn limit_from(row: &PgRow) -> Result<Limit> {
    rules::stored_limit(
        &col::<String>(row, "name")?,
        &col::<String>(row, "namespace")?,
        &col::<String>(row, "lane")?,
        &col::<String>(row, "key")?,
        col::<Option<i32>>(row, "max_running")?.map(i64::from),
        col::<Option<i32>>(row, "rate_count")?.map(i64::from),
        col::<Option<i64>>(row, "rate_per_ms")?,
        col::<bool>(row, "fair")?,
    )
}

fn limits_from(rows: &[PgRow]) -> Result<Vec<Limit>> {
    let mut out = rows.iter().map(limit_from).collect::<Result<Vec<_>>>()?;
    rules::sort_limits(&mut out);
    Ok(out)
}

/// A limit's lane as stored: empty for every lane.
fn stored_lane(limit: &Limit) -> &str {
    limit.lane.as_ref().map_or("", Lane::as_str)
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The limits of `namespace` (every namespace's when `None`), sorted.
async fn read_limits(conn: &mut PgConnection, namespace: Option<&Namespace>) -> Result<Vec<Limit>> {
    let rows = match namespace {
        Some(ns) => {
            sqlx::query(&format!(
                "SELECT {LIMIT_COLUMNS} FROM limits WHERE namespace = $1"
            ))
            .bind(ns.as_str())
            .fetch_all(&mut *conn)
            .await
        }
        None => {
            sqlx::query(&format!("SELECT {LIMIT_COLUMNS} FROM limits"))
                .fetch_all(&mut *conn)
                .await
        }
    }
    .map_err(map)?;
    limits_from(&rows)
}

/// How a limit is handed to the counting statement: its name, lane (empty
/// for every lane), what it counts by (`kind`, `lane` or `tag`), the tag
/// key, and the one key value to count (`None`: every value).
#[derive(Default)]
struct CountedBy {
    names: Vec<String>,
    lanes: Vec<String>,
    by: Vec<&'static str>,
    tags: Vec<Option<String>>,
    only: Vec<Option<String>>,
}

impl CountedBy {
    fn push(&mut self, limit: &Limit, only: Option<&str>) {
        self.names.push(limit.name.to_string());
        self.lanes.push(stored_lane(limit).to_owned());
        let (by, tag) = match &limit.key {
            LimitKey::Kind => ("kind", None),
            LimitKey::Lane => ("lane", None),
            LimitKey::Tag(key) => ("tag", Some(key.to_string())),
        };
        self.by.push(by);
        self.tags.push(tag);
        self.only.push(only.map(str::to_owned));
    }
}

/// How many executions of `namespace` run now, per limit and key value,
/// for the limits in `counted`.
///
/// One statement over the `running` rows (read through the running-only
/// partial index `executions_leases` and filtered by namespace, never a
/// range of the namespace's other rows), each joined with the limits that
/// cover its lane and counted under the value each counts it by.
async fn count_running(
    conn: &mut PgConnection,
    namespace: &Namespace,
    counted: &CountedBy,
) -> Result<Vec<(String, String, u64)>> {
    if counted.names.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT m.name, v.value, count(*) \
         FROM executions e \
         JOIN UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) \
              AS m(name, lane, counts_by, tag, wanted) ON m.lane = '' OR m.lane = e.lane \
         CROSS JOIN LATERAL (SELECT CASE m.counts_by WHEN 'kind' THEN e.kind WHEN 'lane' THEN e.lane \
                             ELSE e.tags ->> m.tag END) AS v(value) \
         WHERE e.namespace = $1 AND e.state = 'running' AND v.value IS NOT NULL \
           AND (m.wanted IS NULL OR v.value = m.wanted) \
         GROUP BY m.name, v.value",
    )
    .bind(namespace.as_str())
    .bind(&counted.names)
    .bind(&counted.lanes)
    .bind(&counted.by)
    .bind(&counted.tags)
    .bind(&counted.only)
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    Ok(rows
        .into_iter()
        .map(|(name, value, n)| (name, value, u64::try_from(n).unwrap_or(0)))
        .collect())
}

/// Loads into `admission` how many executions of each key run now (only
/// the keys of `only`, by limit, when given).
async fn load_running(
    conn: &mut PgConnection,
    admission: &mut Admission,
    namespace: &Namespace,
    only: Option<(&Lane, &Kind, &BTreeMap<baton_core::TagKey, String>)>,
) -> Result<()> {
    let mut counted = CountedBy::default();
    for limit in admission.limits() {
        match only {
            None => counted.push(limit, None),
            Some((lane, kind, tags)) => {
                if let Some(value) = rules::limit_key_value(limit, lane, kind, tags) {
                    counted.push(limit, Some(value));
                }
            }
        }
    }
    for (name, value, n) in count_running(conn, namespace, &counted).await? {
        let name: LimitName = parsed("limit", "a running count", &name)?;
        admission.set_running(&name, &value, n);
    }
    Ok(())
}

/// Loads into `admission` the recent claims of the keys of its rate
/// limits (windows written within the rate's length of `now`).
async fn load_windows(
    conn: &mut PgConnection,
    admission: &mut Admission,
    now: Timestamp,
) -> Result<()> {
    let (names, since): (Vec<String>, Vec<i64>) = admission
        .limits()
        .iter()
        .filter_map(|l| {
            l.rate.map(|r| {
                (
                    l.name.to_string(),
                    now.as_millis().saturating_sub(millis(r.per)),
                )
            })
        })
        .unzip();
    if names.is_empty() {
        return Ok(());
    }
    let rows: Vec<(String, String, Vec<i64>)> = sqlx::query_as(
        "SELECT w.name, w.key_value, w.claims \
         FROM UNNEST($1::text[], $2::bigint[]) AS r(name, since) \
         JOIN limit_windows w ON w.name = r.name AND w.last_ms > r.since",
    )
    .bind(names)
    .bind(since)
    .fetch_all(&mut *conn)
    .await
    .map_err(map)?;
    for (name, value, claims) in rows {
        let name: LimitName = parsed("limit", "a rate window", &name)?;
        admission.set_window(&name, &value, claims);
    }
    Ok(())
}

/// Stores the rate windows `admission` added to, in one statement.
async fn write_windows(conn: &mut PgConnection, admission: &Admission) -> Result<()> {
    let windows = admission.windows();
    if windows.is_empty() {
        return Ok(());
    }
    let mut names = Vec::with_capacity(windows.len());
    let mut values = Vec::with_capacity(windows.len());
    let mut claims = Vec::with_capacity(windows.len());
    let mut last = Vec::with_capacity(windows.len());
    for (name, value, window) in windows {
        names.push(name.as_str());
        values.push(value);
        claims.push(rules::encode_window(window));
        last.push(window.last().copied().unwrap_or(0));
    }
    sqlx::query(
        "INSERT INTO limit_windows (name, key_value, claims, last_ms) \
         SELECT w.name, w.key_value, string_to_array(w.claims, ',')::bigint[], w.last_ms \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[]) \
              AS w(name, key_value, claims, last_ms) \
         ON CONFLICT (name, key_value) DO UPDATE SET \
             claims = excluded.claims, last_ms = excluded.last_ms",
    )
    .bind(names)
    .bind(values)
    .bind(claims)
    .bind(last)
    .execute(&mut *conn)
    .await
    .map_err(map)?;
    // Windows with nothing inside any more go as new ones are stored, so
    // the table holds the keys claimed recently, not every key ever.
    let (floor_names, floors): (Vec<&str>, Vec<i64>) = admission
        .window_floors()
        .into_iter()
        .map(|(n, f)| (n.as_str(), f))
        .unzip();
    sqlx::query(
        "DELETE FROM limit_windows w USING UNNEST($1::text[], $2::bigint[]) AS f(name, floor) \
         WHERE w.name = f.name AND w.last_ms <= f.floor",
    )
    .bind(floor_names)
    .bind(floors)
    .execute(&mut *conn)
    .await
    .map_err(map)?;
    Ok(())
}

/// Pushes the value `limit` counts a row `e` under (NULL when the row has
/// no such tag).
fn push_key<'a>(qb: &mut QueryBuilder<'a, Postgres>, limit: &'a Limit) {
    match &limit.key {
        LimitKey::Kind => {
            qb.push("e.kind");
        }
        LimitKey::Lane => {
            qb.push("e.lane");
        }
        LimitKey::Tag(key) => {
            qb.push("(e.tags ->> ").push_bind(key.as_str()).push(")");
        }
    }
}

/// The last candidate read: where the next page starts.
struct After {
    priority: i32,
    ready_at: i64,
    uuid: Uuid,
}

/// The claim of `request` when limits cover its lanes (see the module's
/// summary): one transaction, answering the rows the claim's shared tail
/// answers for the executions taken (none when nothing had room).
pub(crate) async fn claim(
    b: &PostgresBackend,
    request: &ClaimRequest,
    lanes: &[&str],
    caps_json: &str,
    now: Timestamp,
    expires: Timestamp,
) -> Result<Vec<PgRow>> {
    let mut tx = b.begin().await?;
    let mut held_back = false;
    let outcome = claim_in(
        &mut tx,
        request,
        lanes,
        caps_json,
        now,
        expires,
        &mut held_back,
    )
    .await;
    if held_back {
        b.inner.wake.held_back(request.namespace.as_str(), lanes);
    }
    finish(tx, outcome).await
}

async fn claim_in(
    tx: &mut PgConnection,
    request: &ClaimRequest,
    lanes: &[&str],
    caps_json: &str,
    now: Timestamp,
    expires: Timestamp,
    held_back: &mut bool,
) -> Result<Vec<PgRow>> {
    let locked = sqlx::query(&format!(
        "SELECT {LIMIT_COLUMNS} FROM limits \
         WHERE namespace = $1 AND (lane = '' OR lane = ANY($2::text[])) \
         AND (max_running IS NOT NULL OR rate_count IS NOT NULL) \
         ORDER BY name FOR UPDATE"
    ))
    .bind(request.namespace.as_str())
    .bind(lanes)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    // Every limit found covers a lane of the claim; one removed since the
    // claim statement read it leaves the others (or none: the claim then
    // takes work as without limits, in claim order all the same).
    let mut admission = Admission::new(
        limits_from(&locked)?,
        &request.namespace,
        &request.lanes,
        now,
    );
    load_running(tx, &mut admission, &request.namespace, None).await?;
    load_windows(tx, &mut admission, now).await?;
    let (chosen, passed) = admit(tx, &mut admission, request, lanes, caps_json, now).await?;
    baton_core::raw::counters::passed_by_limits(passed);
    // Keys already without room were passed over by the read itself, so
    // `passed` alone misses them.
    *held_back = chosen.len() < request.max && (passed > 0 || !admission.blocked().is_empty());
    if chosen.is_empty() {
        return Ok(Vec::new());
    }
    let partitions: Vec<i16> = chosen.iter().map(|c| c.partition).collect();
    let uuids: Vec<Uuid> = chosen.iter().map(|c| c.uuid).collect();
    let rows = crate::claim::leasing(sql::CLAIM_CHOSEN, request, now, expires)
        .bind(partitions)
        .bind(uuids)
        .fetch_all(&mut *tx)
        .await
        .map_err(map)?;
    let rows = crate::claim::claimed_rows(rows)?;
    // A chosen execution whose session another claimer took after the
    // candidate read stays waiting: its admission is given back, so the
    // stored windows count only the claims that happened.
    if rows.len() < chosen.len() {
        let taken = rows
            .iter()
            .map(|r| col::<Uuid>(r, "uuid"))
            .collect::<Result<std::collections::HashSet<Uuid>>>()?;
        for c in chosen.iter().filter(|c| !taken.contains(&c.uuid)) {
            admission.give_back(&c.lane, &c.kind, &c.tags);
        }
    }
    write_windows(tx, &admission).await?;
    Ok(rows)
}

/// An execution a limited claim chose: where it lives, and what its
/// admission counted it under.
struct Chosen {
    partition: i16,
    uuid: Uuid,
    lane: Lane,
    kind: Kind,
    tags: std::collections::BTreeMap<baton_core::TagKey, String>,
}

/// Chooses, in claim order, the executions the claim takes under
/// `admission`: reads candidates in pages after the last one read (a
/// candidate skipped once stays skipped: the claim only takes room),
/// locking them `SKIP LOCKED`, and passes over the keys known to have
/// none. Answers them (with what their admission counted them under),
/// and how many candidates it passed over for want of room.
async fn admit(
    tx: &mut PgConnection,
    admission: &mut Admission,
    request: &ClaimRequest,
    lanes: &[&str],
    caps_json: &str,
    now: Timestamp,
) -> Result<(Vec<Chosen>, u64)> {
    let want = request.max;
    let mut chosen = Vec::with_capacity(want);
    let mut passed = 0u64;
    let mut after: Option<After> = None;
    loop {
        let fetch = (want - chosen.len())
            .saturating_mul(2)
            .clamp(32, Page::MAX_LIMIT);
        let rows = {
            let mut qb = candidates(admission, request, lanes, caps_json, now, &after, fetch);
            qb.build().fetch_all(&mut *tx).await.map_err(map)?
        };
        for row in &rows {
            let uuid: Uuid = col(row, "uuid")?;
            let ctx = format!("waiting execution {uuid}");
            let lane: Lane = parsed("lane", &ctx, &col::<String>(row, "lane")?)?;
            let kind: Kind = parsed("kind", &ctx, &col::<String>(row, "kind")?)?;
            let tags = read::tags(row, &ctx)?;
            after = Some(After {
                priority: col(row, "priority")?,
                ready_at: col(row, "ready_at")?,
                uuid,
            });
            if admission.admit(&lane, &kind, &tags).is_none() {
                chosen.push(Chosen {
                    partition: col::<i16>(row, "partition")?,
                    uuid,
                    lane,
                    kind,
                    tags,
                });
                if chosen.len() == want {
                    return Ok((chosen, passed));
                }
            } else {
                passed += 1;
            }
        }
        if rows.len() < fetch {
            return Ok((chosen, passed));
        }
    }
}

/// The candidate read of a limited claim: the waiting work `sql/claim.sql`
/// would pick (its lanes not paused, before its deadline, every capability
/// it requires offered, its version accepted, its session not held by
/// another worker), per lane through the claim index and merged in
/// claim order, after `after`, without the work of keys `admission` knows
/// to have no room; at most `fetch` rows, locked `SKIP LOCKED`.
fn candidates<'a>(
    admission: &'a Admission,
    request: &'a ClaimRequest,
    lanes: &'a [&'a str],
    caps_json: &'a str,
    now: Timestamp,
    after: &Option<After>,
    fetch: usize,
) -> QueryBuilder<'a, Postgres> {
    let fetch = i64::try_from(fetch).unwrap_or(i64::MAX);
    let ns = request.namespace.as_str();
    let mut qb: QueryBuilder<'a, Postgres> = QueryBuilder::new(
        "SELECT c.partition, c.uuid, c.lane, c.kind, c.tags, c.priority, c.ready_at \
         FROM (SELECT u.lane FROM UNNEST(",
    );
    qb.push_bind(lanes)
        .push("::text[]) AS u(lane) WHERE NOT EXISTS (SELECT 1 FROM paused_lanes p WHERE p.namespace = ")
        .push_bind(ns)
        .push(" AND p.lane = u.lane)) l CROSS JOIN LATERAL (")
        .push("SELECT e.partition, e.uuid, e.lane, e.kind, e.tags, e.priority, e.ready_at ")
        .push("FROM executions e WHERE e.namespace = ")
        .push_bind(ns)
        .push(" AND e.lane = l.lane AND e.state = 'waiting' AND (e.deadline IS NULL OR e.deadline > ")
        .push_bind(now.as_millis())
        .push(") AND e.required_caps <@ ")
        .push_bind(caps_json)
        .push("::jsonb");
    let (min, max) = rules::version_bounds(&request.versions);
    if min.is_some() || max.is_some() {
        qb.push(" AND (e.version_key IS NULL OR (");
        match &min {
            Some(min) => qb.push("e.version_key >= ").push_bind(min.clone()),
            None => qb.push("true"),
        };
        qb.push(" AND ");
        match &max {
            Some(max) => qb.push("e.version_key <= ").push_bind(max.clone()),
            None => qb.push("true"),
        };
        qb.push("))");
    }
    // Work of a session another worker holds by this snapshot is passed
    // over; the claim's tail takes the locks and claims only the work of
    // the sessions it got.
    qb.push(
        " AND (e.session IS NULL OR NOT EXISTS (SELECT 1 FROM sessions s \
         WHERE s.namespace = e.namespace AND s.session = e.session AND s.worker_id <> ",
    )
    .push_bind(request.worker_id.as_str())
    .push(" AND s.expires_at > ")
    .push_bind(now.as_millis())
    .push("))");
    if let Some(after) = after {
        // The first bound is a range of the claim index; the second places
        // the row after the last one read within its priority.
        qb.push(" AND e.priority <= ")
            .push_bind(after.priority)
            .push(" AND (e.priority < ")
            .push_bind(after.priority)
            .push(" OR (e.ready_at, e.uuid) > (")
            .push_bind(after.ready_at)
            .push(", ")
            .push_bind(after.uuid)
            .push("))");
    }
    for (limit, blocked) in admission.blocked() {
        qb.push(" AND NOT COALESCE(");
        if let Some(lane) = &limit.lane {
            qb.push("e.lane = ").push_bind(lane.as_str()).push(" AND ");
        }
        push_key(&mut qb, limit);
        match blocked {
            Blocked::Every => {
                qb.push(" IS NOT NULL");
            }
            Blocked::Keys(values) => {
                // One bound array, however many keys: every key known to
                // be without room is passed over in the index scan (and
                // never locked).
                let values: Vec<String> = values.into_iter().map(str::to_owned).collect();
                qb.push(" = ANY(").push_bind(values).push("::text[])");
            }
        }
        qb.push(", false)");
    }
    qb.push(" ORDER BY e.priority DESC, e.ready_at, e.uuid LIMIT ")
        .push_bind(fetch)
        .push(" FOR UPDATE OF e SKIP LOCKED) c ORDER BY c.priority DESC, c.ready_at, c.uuid LIMIT ")
        .push_bind(fetch);
    qb
}

/// The limit holding a waiting execution back now, if any (`explain`):
/// what a claim starting now would judge, read without its locks.
pub(crate) async fn limited(
    b: &PostgresBackend,
    snap: &ExecutionSnapshot,
    now: Timestamp,
) -> Result<Option<LimitedBy>> {
    let mut conn = b.inner.pool.acquire().await.map_err(map)?;
    let limits = read_limits(&mut conn, Some(&snap.namespace)).await?;
    let lanes = [snap.lane.clone()];
    let mut admission = Admission::new(limits, &snap.namespace, &lanes, now);
    if admission.is_empty() {
        return Ok(None);
    }
    let only = Some((&snap.lane, &snap.kind, &snap.tags));
    load_running(&mut conn, &mut admission, &snap.namespace, only).await?;
    load_windows(&mut conn, &mut admission, now).await?;
    Ok(admission.check(&snap.lane, &snap.kind, &snap.tags))
}

/// Takes `limits` for a writer of limits: waits for every claim reading
/// it, and holds off every claim until the writer commits.
///
/// Every claim queues behind a waiting writer (the claim statement reads
/// `limits`), so the writer gives up after a few seconds (`Contention`:
/// retry) rather than hold every claim behind a long transaction that read
/// the table.
async fn lock_limits(tx: &mut PgConnection) -> Result<()> {
    sqlx::query("SET LOCAL lock_timeout = '3s'")
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    sqlx::query("LOCK TABLE limits IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    Ok(())
}

/// Notifies, at commit, the claimers of every process waiting on the work
/// `limit` covers: `namespace lane`, or the namespace alone for every lane
/// of it (see `wake`).
async fn announce(tx: &mut PgConnection, channel: &str, limit: &Limit) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(scope(limit))
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    Ok(())
}

fn scope(limit: &Limit) -> String {
    match &limit.lane {
        Some(lane) => format!("{} {lane}", limit.namespace),
        None => limit.namespace.to_string(),
    }
}

/// Wakes this process's claimers waiting on the work `limit` covers.
fn wake(b: &PostgresBackend, limit: &Limit) {
    match &limit.lane {
        Some(lane) => b.inner.wake.notify(limit.namespace.as_str(), lane.as_str()),
        None => b.inner.wake.notify_all(),
    }
}

async fn forget_windows(tx: &mut PgConnection, name: &LimitName) -> Result<()> {
    sqlx::query("DELETE FROM limit_windows WHERE name = $1")
        .bind(name.as_str())
        .execute(&mut *tx)
        .await
        .map_err(map)?;
    Ok(())
}

/// One transaction under the table's lock (see the module's summary).
/// The claimers of what the limit covered before and covers now are woken:
/// a limit raised, moved or removed may leave room for work they skipped.
pub(crate) async fn set_limit(b: &PostgresBackend, limit: &Limit) -> Result<Option<Limit>> {
    limit.check()?;
    let mut tx = b.begin().await?;
    let outcome = set_limit_in(&mut tx, &b.inner.channel, limit).await;
    let previous = finish(tx, outcome).await?;
    if let Some(p) = &previous {
        wake(b, p);
    }
    wake(b, limit);
    Ok(previous)
}

async fn set_limit_in(
    tx: &mut PgConnection,
    channel: &str,
    limit: &Limit,
) -> Result<Option<Limit>> {
    lock_limits(tx).await?;
    let previous = sqlx::query(&format!(
        "SELECT {LIMIT_COLUMNS} FROM limits WHERE name = $1"
    ))
    .bind(limit.name.as_str())
    .fetch_optional(&mut *tx)
    .await
    .map_err(map)?
    .as_ref()
    .map(limit_from)
    .transpose()?;
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM limits")
        .fetch_one(&mut *tx)
        .await
        .map_err(map)?;
    rules::check_limit_room(
        usize::try_from(held).unwrap_or(usize::MAX),
        previous.is_some(),
        &limit.name,
    )?;
    if previous.as_ref().is_some_and(|p| {
        p.namespace != limit.namespace || p.key != limit.key || p.lane != limit.lane
    }) {
        // The keys counted before mean something else now.
        forget_windows(tx, &limit.name).await?;
    }
    sqlx::query(
        "INSERT INTO limits (name, namespace, lane, key, max_running, rate_count, rate_per_ms, \
         fair) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO UPDATE SET \
         namespace = excluded.namespace, lane = excluded.lane, key = excluded.key, \
         max_running = excluded.max_running, rate_count = excluded.rate_count, \
         rate_per_ms = excluded.rate_per_ms, fair = excluded.fair",
    )
    .bind(limit.name.as_str())
    .bind(limit.namespace.as_str())
    .bind(stored_lane(limit))
    .bind(limit.key.to_string())
    .bind(
        limit
            .max_running
            .map(|m| i32::try_from(m).unwrap_or(i32::MAX)),
    )
    .bind(
        limit
            .rate
            .map(|r| i32::try_from(r.count).unwrap_or(i32::MAX)),
    )
    .bind(limit.rate.map(|r| millis(r.per)))
    .bind(limit.fair)
    .execute(&mut *tx)
    .await
    .map_err(map)?;
    if let Some(p) = &previous {
        announce(tx, channel, p).await?;
    }
    announce(tx, channel, limit).await?;
    Ok(previous)
}

/// One transaction under the table's lock, as [`set_limit`].
pub(crate) async fn remove_limit(b: &PostgresBackend, name: &LimitName) -> Result<Option<Limit>> {
    let mut tx = b.begin().await?;
    let outcome = remove_limit_in(&mut tx, &b.inner.channel, name).await;
    let removed = finish(tx, outcome).await?;
    if let Some(r) = &removed {
        wake(b, r);
    }
    Ok(removed)
}

async fn remove_limit_in(
    tx: &mut PgConnection,
    channel: &str,
    name: &LimitName,
) -> Result<Option<Limit>> {
    lock_limits(tx).await?;
    let removed = sqlx::query(&format!(
        "DELETE FROM limits WHERE name = $1 RETURNING {LIMIT_COLUMNS}"
    ))
    .bind(name.as_str())
    .fetch_optional(&mut *tx)
    .await
    .map_err(map)?
    .as_ref()
    .map(limit_from)
    .transpose()?;
    forget_windows(tx, name).await?;
    if let Some(r) = &removed {
        announce(tx, channel, r).await?;
    }
    Ok(removed)
}

pub(crate) async fn limits(
    b: &PostgresBackend,
    namespace: Option<&Namespace>,
) -> Result<Vec<Limit>> {
    let mut conn = b.inner.pool.acquire().await.map_err(map)?;
    read_limits(&mut conn, namespace).await
}

/// Every key of the limit with runs or claims in its rate's window now, by
/// key value; two reads, each of its own snapshot (a claim committing
/// between them may show in one only).
pub(crate) async fn limit_usage(
    b: &PostgresBackend,
    name: &LimitName,
    limit: usize,
) -> Result<Vec<LimitUsage>> {
    Page::first(limit).validate()?;
    let now = b.now();
    let mut conn = b.inner.pool.acquire().await.map_err(map)?;
    let found = sqlx::query(&format!(
        "SELECT {LIMIT_COLUMNS} FROM limits WHERE name = $1"
    ))
    .bind(name.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(map)?
    .as_ref()
    .map(limit_from)
    .transpose()?;
    let Some(found) = found else {
        return Err(rules::no_such_limit(name));
    };
    let mut counted = CountedBy::default();
    counted.push(&found, None);
    let running = count_running(&mut conn, &found.namespace, &counted)
        .await?
        .into_iter()
        .map(|(_, value, n)| (value, n));
    let windows: Vec<(String, Vec<i64>)> = if found.rate.is_some() {
        sqlx::query_as("SELECT key_value, claims FROM limit_windows WHERE name = $1")
            .bind(found.name.as_str())
            .fetch_all(&mut *conn)
            .await
            .map_err(map)?
    } else {
        Vec::new()
    };
    let usage = rules::limit_usage(&found, running, windows, now);
    Ok(usage.into_iter().take(limit).collect())
}
