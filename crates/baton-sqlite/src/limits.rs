//! `set_limit`, `remove_limit`, `limits`, `limit_usage`, and what a claim
//! in a lane a limit covers reads and writes (`admit`).
//!
//! Running executions are counted from `executions` in the claim's own
//! transaction (the one writer), so a run's slot is free as soon as the
//! transaction that moves it out of `running` commits, whichever way it
//! ends; rate windows live in `limit_windows`.

use std::collections::{BTreeMap, HashMap};

use baton_core::raw::rules::{self, Admission, Blocked};
use baton_core::{
    ClaimRequest, EngineError, ExecutionSnapshot, Kind, Lane, Limit, LimitKey, LimitName,
    LimitUsage, LimitedBy, Namespace, Page, Result, TagKey, Timestamp,
};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::SqliteBackend;
use crate::errors::map;
use crate::read::{self, col};

/// The most key values of one limit a candidate read names to pass over;
/// beyond them, work of keys without room is read and skipped one by one
/// (the verdict never depends on the list).
const MAX_PASSED_KEYS: usize = 500;

const LIMIT_COLUMNS: &str =
    "name, namespace, lane, key, max_running, rate_count, rate_per_ms, fair";

fn limit_from(row: &SqliteRow) -> Result<Limit> {
    rules::stored_limit(
        &col::<String>(row, "name")?,
        &col::<String>(row, "namespace")?,
        &col::<String>(row, "lane")?,
        &col::<String>(row, "key")?,
        col(row, "max_running")?,
        col(row, "rate_count")?,
        col(row, "rate_per_ms")?,
        col::<i64>(row, "fair")? != 0,
    )
}

/// The limits of `namespace` (every namespace's when `None`).
async fn read_limits(
    conn: &mut SqliteConnection,
    namespace: Option<&Namespace>,
) -> Result<Vec<Limit>> {
    let rows = match namespace {
        Some(ns) => {
            sqlx::query(&format!(
                "SELECT {LIMIT_COLUMNS} FROM limits WHERE namespace = ?"
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
    let mut out = rows.iter().map(limit_from).collect::<Result<Vec<_>>>()?;
    rules::sort_limits(&mut out);
    Ok(out)
}

/// The limits of `namespace`, read in a claim's transaction (usually an
/// empty index range).
pub(crate) async fn of_namespace(
    conn: &mut SqliteConnection,
    namespace: &Namespace,
) -> Result<Vec<Limit>> {
    read_limits(conn, Some(namespace)).await
}

/// The SQL value of what `limit` counts a row `e` under (the tag path
/// bound as a parameter).
fn push_key<'a>(qb: &mut QueryBuilder<'a, Sqlite>, limit: &'a Limit) {
    match &limit.key {
        LimitKey::Kind => {
            qb.push("e.kind");
        }
        LimitKey::Lane => {
            qb.push("e.lane");
        }
        LimitKey::Tag(key) => {
            qb.push("json_extract(e.tags, ")
                .push_bind(format!("$.\"{key}\""))
                .push(")");
        }
    }
}

/// The running executions of `namespace` that `limits` may count (of
/// their lanes when every one names a lane): every running execution of
/// the deployment, read through the partial index of running executions
/// (as many rows as run, never the namespace's finished history) and
/// filtered.
async fn running_rows(
    conn: &mut SqliteConnection,
    namespace: &Namespace,
    limits: &[Limit],
) -> Result<Vec<SqliteRow>> {
    let lanes: Option<Vec<&Lane>> = limits.iter().map(|l| l.lane.as_ref()).collect();
    let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
        "SELECT uuid, lane, kind, tags FROM executions INDEXED BY executions_leases \
         WHERE state = 'running' AND namespace = ",
    );
    qb.push_bind(namespace.as_str());
    if let Some(lanes) = lanes.filter(|l| !l.is_empty()) {
        qb.push(" AND lane IN (");
        let mut list = qb.separated(", ");
        for lane in lanes {
            list.push_bind(lane.as_str());
        }
        qb.push(")");
    }
    qb.build().fetch_all(&mut *conn).await.map_err(map)
}

/// Loads into `admission` how many executions of each key run now, read
/// from the running executions of the namespace.
async fn load_running(
    conn: &mut SqliteConnection,
    admission: &mut Admission,
    namespace: &Namespace,
    only: Option<(&Lane, &Kind, &BTreeMap<TagKey, String>)>,
) -> Result<()> {
    let rows = running_rows(conn, namespace, admission.limits()).await?;
    let mut counts: HashMap<(LimitName, String), u64> = HashMap::new();
    let wanted: Option<Vec<(LimitName, &str)>> = only.map(|(lane, kind, tags)| {
        admission
            .limits()
            .iter()
            .filter_map(|l| {
                rules::limit_key_value(l, lane, kind, tags).map(|v| (l.name.clone(), v))
            })
            .collect()
    });
    for row in &rows {
        let ctx = format!("running execution {:?}", col::<Vec<u8>>(row, "uuid")?);
        let lane: Lane = col::<String>(row, "lane")?
            .parse()
            .map_err(|_| EngineError::corruption(format!("{ctx}: lane")))?;
        let kind: Kind = col::<String>(row, "kind")?
            .parse()
            .map_err(|_| EngineError::corruption(format!("{ctx}: kind")))?;
        let tags = read::tags(&ctx, &col::<String>(row, "tags")?)?;
        for limit in admission.limits() {
            if let Some(value) = rules::limit_key_value(limit, &lane, &kind, &tags) {
                if let Some(w) = &wanted
                    && !w.iter().any(|(n, v)| n == &limit.name && *v == value)
                {
                    continue;
                }
                *counts
                    .entry((limit.name.clone(), value.to_owned()))
                    .or_default() += 1;
            }
        }
    }
    for ((name, value), n) in counts {
        admission.set_running(&name, &value, n);
    }
    Ok(())
}

/// Loads into `admission` the recent claims of the keys of its rate limits.
async fn load_windows(
    conn: &mut SqliteConnection,
    admission: &mut Admission,
    now: Timestamp,
) -> Result<()> {
    let rated: Vec<(String, i64)> = admission
        .limits()
        .iter()
        .filter_map(|l| {
            l.rate.map(|r| {
                let per = i64::try_from(r.per.as_millis()).unwrap_or(i64::MAX);
                (l.name.to_string(), now.as_millis().saturating_sub(per))
            })
        })
        .collect();
    for (name, since) in rated {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT key_value, claims FROM limit_windows WHERE name = ? AND last_ms > ?",
        )
        .bind(&name)
        .bind(since)
        .fetch_all(&mut *conn)
        .await
        .map_err(map)?;
        let limit: LimitName = name
            .parse()
            .map_err(|_| EngineError::corruption(format!("limit window of {name:?}")))?;
        for (value, claims) in rows {
            let window = rules::parse_window(&format!("limit {name} key {value:?}"), &claims)?;
            admission.set_window(&limit, &value, window);
        }
    }
    Ok(())
}

/// Chooses, in claim order, the executions a claim of `request` takes
/// under the limits of `admission`, and stores the rate windows it fills;
/// answers their uuids, and whether it passed over work a limit held back
/// while taking fewer than asked. Reads candidates in pages after the last one read
/// (a candidate skipped once stays skipped: the claim only takes room),
/// passing over the keys known to have none.
pub(crate) async fn admit(
    conn: &mut SqliteConnection,
    mut admission: Admission,
    request: &ClaimRequest,
    now: Timestamp,
    caps_json: &str,
) -> Result<(Vec<Vec<u8>>, bool)> {
    load_running(conn, &mut admission, &request.namespace, None).await?;
    load_windows(conn, &mut admission, now).await?;
    let want = request.max;
    let mut chosen: Vec<Vec<u8>> = Vec::with_capacity(want);
    let mut after: Option<(i64, i64, Vec<u8>)> = None;
    let mut passed = 0u64;
    loop {
        let fetch = (want - chosen.len())
            .saturating_mul(2)
            .clamp(32, Page::MAX_LIMIT);
        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "SELECT e.uuid, e.lane, e.kind, e.tags, e.priority, e.ready_at FROM executions e WHERE ",
        );
        crate::claim::push_eligible(&mut qb, request, now, caps_json);
        if let Some((priority, ready_at, uuid)) = &after {
            qb.push(" AND (e.priority < ")
                .push_bind(*priority)
                .push(" OR (e.priority = ")
                .push_bind(*priority)
                .push(" AND (e.ready_at > ")
                .push_bind(*ready_at)
                .push(" OR (e.ready_at = ")
                .push_bind(*ready_at)
                .push(" AND e.uuid > ")
                .push_bind(uuid.clone())
                .push("))))");
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
                    qb.push(" IN (");
                    let mut list = qb.separated(", ");
                    for v in values.into_iter().take(MAX_PASSED_KEYS) {
                        list.push_bind(v.to_owned());
                    }
                    qb.push(")");
                }
            }
            qb.push(", 0)");
        }
        qb.push(" ORDER BY e.priority DESC, e.ready_at, e.uuid LIMIT ")
            .push_bind(fetch as i64);
        let rows = qb.build().fetch_all(&mut *conn).await.map_err(map)?;
        for row in &rows {
            let uuid: Vec<u8> = col(row, "uuid")?;
            let ctx = format!("waiting execution {uuid:?}");
            let lane: Lane = col::<String>(row, "lane")?
                .parse()
                .map_err(|_| EngineError::corruption(format!("{ctx}: lane")))?;
            let kind: Kind = col::<String>(row, "kind")?
                .parse()
                .map_err(|_| EngineError::corruption(format!("{ctx}: kind")))?;
            let tags = read::tags(&ctx, &col::<String>(row, "tags")?)?;
            after = Some((col(row, "priority")?, col(row, "ready_at")?, uuid.clone()));
            if admission.admit(&lane, &kind, &tags).is_none() {
                chosen.push(uuid);
                if chosen.len() == want {
                    break;
                }
            } else {
                passed += 1;
            }
        }
        if chosen.len() == want || rows.len() < fetch {
            break;
        }
    }
    baton_core::raw::counters::passed_by_limits(passed);
    store_windows(conn, &admission, now).await?;
    // Keys already without room were passed over by the read itself, so
    // `passed` alone misses them.
    let held_back = chosen.len() < want && (passed > 0 || !admission.blocked().is_empty());
    Ok((chosen, held_back))
}

/// Stores the rate windows an admission filled.
async fn store_windows(
    conn: &mut SqliteConnection,
    admission: &Admission,
    now: Timestamp,
) -> Result<()> {
    for (name, value, window) in admission.windows() {
        sqlx::query(
            "INSERT INTO limit_windows (name, key_value, claims, last_ms) VALUES (?, ?, ?, ?) \
             ON CONFLICT (name, key_value) DO UPDATE SET claims = excluded.claims, \
             last_ms = excluded.last_ms",
        )
        .bind(name.as_str())
        .bind(value)
        .bind(rules::encode_window(window))
        .bind(window.last().copied().unwrap_or(now.as_millis()))
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    }
    if !admission.windows().is_empty() {
        for (name, floor) in admission.window_floors() {
            sqlx::query("DELETE FROM limit_windows WHERE name = ? AND last_ms <= ?")
                .bind(name.as_str())
                .bind(floor)
                .execute(&mut *conn)
                .await
                .map_err(map)?;
        }
    }
    Ok(())
}

/// The limit holding a waiting execution back now, if any (`explain`).
pub(crate) async fn limited(
    conn: &mut SqliteConnection,
    snap: &ExecutionSnapshot,
    now: Timestamp,
) -> Result<Option<LimitedBy>> {
    let limits = of_namespace(conn, &snap.namespace).await?;
    let lanes = [snap.lane.clone()];
    let mut admission = Admission::new(limits, &snap.namespace, &lanes, now);
    if admission.is_empty() {
        return Ok(None);
    }
    let only = Some((&snap.lane, &snap.kind, &snap.tags));
    load_running(conn, &mut admission, &snap.namespace, only).await?;
    load_windows(conn, &mut admission, now).await?;
    Ok(admission.check(&snap.lane, &snap.kind, &snap.tags))
}

pub(crate) async fn set_limit(b: &SqliteBackend, limit: &Limit) -> Result<Option<Limit>> {
    limit.check()?;
    let mut tx = b.begin().await?;
    let previous = sqlx::query(&format!(
        "SELECT {LIMIT_COLUMNS} FROM limits WHERE name = ?"
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
        forget_windows(&mut tx, &limit.name).await?;
    }
    sqlx::query(
        "INSERT INTO limits (name, namespace, lane, key, max_running, rate_count, rate_per_ms, \
         fair) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET \
         namespace = excluded.namespace, lane = excluded.lane, key = excluded.key, \
         max_running = excluded.max_running, rate_count = excluded.rate_count, \
         rate_per_ms = excluded.rate_per_ms, fair = excluded.fair",
    )
    .bind(limit.name.as_str())
    .bind(limit.namespace.as_str())
    .bind(limit.lane.as_ref().map_or("", Lane::as_str))
    .bind(limit.key.to_string())
    .bind(limit.max_running.map(i64::from))
    .bind(limit.rate.map(|r| i64::from(r.count)))
    .bind(
        limit
            .rate
            .map(|r| i64::try_from(r.per.as_millis()).unwrap_or(i64::MAX)),
    )
    .bind(i64::from(limit.fair))
    .execute(&mut *tx)
    .await
    .map_err(map)?;
    tx.commit().await.map_err(map)?;
    // A limit raised or moved may let waiting work be claimed now.
    b.inner.wake.notify_all();
    Ok(previous)
}

async fn forget_windows(conn: &mut SqliteConnection, name: &LimitName) -> Result<()> {
    sqlx::query("DELETE FROM limit_windows WHERE name = ?")
        .bind(name.as_str())
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    Ok(())
}

pub(crate) async fn remove_limit(b: &SqliteBackend, name: &LimitName) -> Result<Option<Limit>> {
    let mut tx = b.begin().await?;
    let removed = sqlx::query(&format!(
        "DELETE FROM limits WHERE name = ? RETURNING {LIMIT_COLUMNS}"
    ))
    .bind(name.as_str())
    .fetch_optional(&mut *tx)
    .await
    .map_err(map)?
    .as_ref()
    .map(limit_from)
    .transpose()?;
    forget_windows(&mut tx, name).await?;
    tx.commit().await.map_err(map)?;
    if removed.is_some() {
        b.inner.wake.notify_all();
    }
    Ok(removed)
}

pub(crate) async fn limits(b: &SqliteBackend, namespace: Option<&Namespace>) -> Result<Vec<Limit>> {
    let mut conn = b.inner.reader.acquire().await.map_err(map)?;
    read_limits(&mut conn, namespace).await
}

pub(crate) async fn limit_usage(
    b: &SqliteBackend,
    name: &LimitName,
    limit: usize,
) -> Result<Vec<LimitUsage>> {
    Page::first(limit).validate()?;
    let now = b.now();
    let mut conn = b.inner.reader.acquire().await.map_err(map)?;
    let found = sqlx::query(&format!(
        "SELECT {LIMIT_COLUMNS} FROM limits WHERE name = ?"
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
    let usage = read_usage(&mut conn, found, now).await?;
    Ok(usage.into_iter().take(limit).collect())
}

/// Every key of `limit` with runs or recent claims, by key value.
async fn read_usage(
    conn: &mut SqliteConnection,
    limit: Limit,
    now: Timestamp,
) -> Result<Vec<LimitUsage>> {
    let rows = running_rows(conn, &limit.namespace, std::slice::from_ref(&limit)).await?;
    let mut running = Vec::with_capacity(rows.len());
    for row in &rows {
        let ctx = "a running execution";
        let lane: Lane = col::<String>(row, "lane")?
            .parse()
            .map_err(|_| EngineError::corruption(format!("{ctx}: lane")))?;
        let kind: Kind = col::<String>(row, "kind")?
            .parse()
            .map_err(|_| EngineError::corruption(format!("{ctx}: kind")))?;
        let tags = read::tags(ctx, &col::<String>(row, "tags")?)?;
        if let Some(value) = rules::limit_key_value(&limit, &lane, &kind, &tags) {
            running.push((value.to_owned(), 1));
        }
    }
    let mut windows = Vec::new();
    if limit.rate.is_some() {
        let stored: Vec<(String, String)> =
            sqlx::query_as("SELECT key_value, claims FROM limit_windows WHERE name = ?")
                .bind(limit.name.as_str())
                .fetch_all(&mut *conn)
                .await
                .map_err(map)?;
        for (value, claims) in stored {
            let ctx = format!("limit {} key {value:?}", limit.name);
            windows.push((value, rules::parse_window(&ctx, &claims)?));
        }
    }
    Ok(rules::limit_usage(&limit, running, windows, now))
}
