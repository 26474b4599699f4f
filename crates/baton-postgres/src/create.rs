//! `create`: submissions, idempotency keys, tags.

use std::collections::{HashMap, HashSet};

use baton_core::raw::{PreparedExecution, rules};
use baton_core::{CreateOutcome, EngineError, ExecutionId, NewExecution, Result, State, Timestamp};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::errors::map;
use crate::read::{self, col};
use crate::{PostgresBackend, part, sql};

impl PostgresBackend {
    /// Runs the create statement for `rows`; answers the uuids inserted.
    pub(crate) async fn insert_batch(
        &self,
        conn: &mut PgConnection,
        rows: &[&PreparedExecution],
        roots: &HashMap<ExecutionId, ExecutionId>,
        now: Timestamp,
    ) -> Result<HashSet<Uuid>> {
        let mut a = CreateArrays::default();
        for r in rows {
            a.push(r, now);
            a.root.push(
                r.new
                    .parent
                    .as_ref()
                    .and_then(|p| roots.get(p))
                    .map(|r| r.to_string()),
            );
        }
        let inserted: Vec<Uuid> = sqlx::query_scalar(sql::CREATE)
            .bind(a.partition)
            .bind(a.uuid)
            .bind(a.namespace)
            .bind(a.lane)
            .bind(a.kind)
            .bind(a.state)
            .bind(a.priority)
            .bind(a.payload)
            .bind(a.tags)
            .bind(a.caps)
            .bind(a.max_attempts)
            .bind(a.backoff_initial_ms)
            .bind(a.backoff_max_ms)
            .bind(a.backoff_multiplier)
            .bind(a.backoff_jitter)
            .bind(a.idempotency_key)
            .bind(a.parent)
            .bind(a.run_at)
            .bind(a.ready_at)
            .bind(a.deadline)
            .bind(now.as_millis())
            .bind(&self.inner.channel)
            .bind(a.root)
            .fetch_one(&mut *conn)
            .await
            .map_err(map)?;
        Ok(inserted.into_iter().collect())
    }

    /// The executions owning the idempotency keys of `rows`, by index into
    /// `rows`; keys whose execution is gone are absent.
    pub(crate) async fn existing_keys(
        &self,
        conn: &mut PgConnection,
        rows: &[&PreparedExecution],
    ) -> Result<HashMap<usize, (ExecutionId, State)>> {
        let mut namespaces = Vec::with_capacity(rows.len());
        let mut lanes = Vec::with_capacity(rows.len());
        let mut keys = Vec::with_capacity(rows.len());
        for r in rows {
            namespaces.push(r.new.namespace.as_str());
            lanes.push(r.new.lane.as_str());
            keys.push(r.new.idempotency_key.as_ref().map_or("", |k| k.as_str()));
        }
        let found = sqlx::query(sql::EXISTING_KEYS)
            .bind(namespaces)
            .bind(lanes)
            .bind(keys)
            .fetch_all(&mut *conn)
            .await
            .map_err(map)?;
        let mut out = HashMap::with_capacity(found.len());
        for row in &found {
            let ord: i64 = col(row, "ord")?;
            let id = read::execution_id(row, self.inner.partitions)?;
            let state = col::<Option<String>>(row, "state")?.ok_or_else(|| {
                EngineError::corruption(format!(
                    "an idempotency key points at execution {id}, which does not exist"
                ))
            })?;
            let state = read::state(&format!("execution {id}"), &state)?;
            let index = usize::try_from(ord - 1)
                .map_err(|_| EngineError::corruption(format!("ordinality {ord}")))?;
            out.insert(index, (id, state));
        }
        Ok(out)
    }
}

pub(crate) async fn create(
    b: &PostgresBackend,
    executions: Vec<NewExecution>,
) -> Result<Vec<CreateOutcome>> {
    let limits = &b.inner.limits;
    let now = b.now();
    let rows = PreparedExecution::prepare_batch(executions, limits, now, b.inner.partitions)?;
    let roots = check_parents(b, &rows).await?;
    // Repeats of a key within the batch answer the first occurrence.
    let mut first_of: HashMap<(&str, &str, &str), usize> = HashMap::new();
    let mut repeat_of: Vec<Option<usize>> = Vec::with_capacity(rows.len());
    let mut candidates: Vec<usize> = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let repeat = r.new.idempotency_key.as_ref().and_then(|k| {
            let key = (r.new.namespace.as_str(), r.new.lane.as_str(), k.as_str());
            match first_of.get(&key) {
                Some(&first) => Some(first),
                None => {
                    first_of.insert(key, i);
                    None
                }
            }
        });
        if repeat.is_none() {
            candidates.push(i);
        }
        repeat_of.push(repeat);
    }

    let keyed = first_of.len();
    let mut answers: HashMap<usize, CreateOutcome> = HashMap::with_capacity(rows.len());
    let mut created: Vec<usize> = Vec::new();
    if keyed == 0 {
        let batch: Vec<&PreparedExecution> = candidates.iter().map(|&i| &rows[i]).collect();
        let mut conn = b.inner.pool.acquire().await.map_err(map)?;
        b.insert_batch(&mut conn, &batch, &roots, now).await?;
        created = candidates;
    } else {
        let mut tx = b.begin().await?;
        let mut pending = candidates;
        // A key taken by another transaction whose execution is trimmed
        // before we read it is free again: retry those items.
        for _round in 0..4 {
            if pending.is_empty() {
                break;
            }
            let batch: Vec<&PreparedExecution> = pending.iter().map(|&i| &rows[i]).collect();
            let inserted = b.insert_batch(&mut tx, &batch, &roots, now).await?;
            let mut lost = Vec::new();
            for &i in &pending {
                if inserted.contains(&rows[i].id.uuid()) {
                    created.push(i);
                } else {
                    lost.push(i);
                }
            }
            if lost.is_empty() {
                pending = lost;
                break;
            }
            let lost_rows: Vec<&PreparedExecution> = lost.iter().map(|&i| &rows[i]).collect();
            let existing = b.existing_keys(&mut tx, &lost_rows).await?;
            let mut again = Vec::new();
            for (j, &i) in lost.iter().enumerate() {
                match existing.get(&j) {
                    Some((id, state)) => {
                        answers.insert(
                            i,
                            CreateOutcome {
                                id: id.clone(),
                                state: *state,
                                created: false,
                            },
                        );
                    }
                    None => again.push(i),
                }
            }
            pending = again;
        }
        if !pending.is_empty() {
            return Err(EngineError::Contention {
                message: "idempotency keys of this batch kept changing owner; retry".into(),
            });
        }
        tx.commit().await.map_err(map)?;
    }
    for &i in &created {
        let r = &rows[i];
        answers.insert(
            i,
            CreateOutcome {
                id: r.id.clone(),
                state: r.state,
                created: true,
            },
        );
        if r.state == State::Waiting {
            b.inner
                .wake
                .notify(r.new.namespace.as_str(), r.new.lane.as_str());
        }
    }
    let mut outcomes = Vec::with_capacity(rows.len());
    for (i, repeat) in repeat_of.iter().enumerate() {
        let source = repeat.unwrap_or(i);
        let answer = answers.get(&source).ok_or_else(|| {
            EngineError::corruption(format!("create left item {source} of the batch unanswered"))
        })?;
        outcomes.push(CreateOutcome {
            created: answer.created && repeat.is_none(),
            ..answer.clone()
        });
    }
    Ok(outcomes)
}

/// Column arrays of a create batch, bound to `sql/create.sql`.
#[derive(Default)]
struct CreateArrays<'a> {
    partition: Vec<i16>,
    uuid: Vec<Uuid>,
    namespace: Vec<&'a str>,
    lane: Vec<&'a str>,
    kind: Vec<&'a str>,
    state: Vec<&'static str>,
    priority: Vec<i32>,
    payload: Vec<&'a [u8]>,
    tags: Vec<&'a str>,
    caps: Vec<&'a str>,
    max_attempts: Vec<i32>,
    backoff_initial_ms: Vec<i64>,
    backoff_max_ms: Vec<i64>,
    backoff_multiplier: Vec<f64>,
    backoff_jitter: Vec<bool>,
    idempotency_key: Vec<Option<&'a str>>,
    parent: Vec<Option<String>>,
    root: Vec<Option<String>>,
    run_at: Vec<Option<i64>>,
    ready_at: Vec<i64>,
    deadline: Vec<Option<i64>>,
}

impl<'a> CreateArrays<'a> {
    fn push(&mut self, r: &'a PreparedExecution, now: Timestamp) {
        let n = &r.new;
        self.partition.push(part(r.id.partition()));
        self.uuid.push(r.id.uuid());
        self.namespace.push(n.namespace.as_str());
        self.lane.push(n.lane.as_str());
        self.kind.push(n.kind.as_str());
        self.state.push(r.state.as_str());
        self.priority.push(n.priority);
        self.payload.push(&n.payload);
        self.tags.push(&r.tags_json);
        self.caps.push(&r.caps_json);
        self.max_attempts
            .push(i32::try_from(n.retry.max_attempts).unwrap_or(i32::MAX));
        self.backoff_initial_ms
            .push(i64::try_from(n.retry.backoff.initial_ms).unwrap_or(i64::MAX));
        self.backoff_max_ms
            .push(i64::try_from(n.retry.backoff.max_ms).unwrap_or(i64::MAX));
        self.backoff_multiplier.push(n.retry.backoff.multiplier);
        self.backoff_jitter.push(n.retry.backoff.jitter);
        self.idempotency_key
            .push(n.idempotency_key.as_ref().map(|k| k.as_str()));
        self.parent.push(n.parent.as_ref().map(|p| p.to_string()));
        self.run_at.push(r.run_at.map(Timestamp::as_millis));
        // Eligible at once: ready now; else when the start time comes.
        self.ready_at.push(r.run_at.unwrap_or(now).as_millis());
        self.deadline.push(n.deadline.map(Timestamp::as_millis));
    }
}

/// Reads the parents the batch names and checks them
/// ([`rules::check_parents`]) before anything is written (a parent is only
/// ever removed by trim, long after it finished, so the gap between this
/// read and the insert does not matter in practice); answers the root each
/// parent's children belong to.
async fn check_parents(
    b: &PostgresBackend,
    rows: &[PreparedExecution],
) -> Result<HashMap<ExecutionId, ExecutionId>> {
    let parents = rules::parents_named(rows);
    if parents.is_empty() {
        return Ok(HashMap::new());
    }
    let found_rows = sqlx::query(
        "SELECT e.uuid, e.partition, e.namespace, e.root FROM executions e \
         JOIN UNNEST($1::int2[], $2::uuid[]) AS p(partition, uuid) \
         ON e.partition = p.partition AND e.uuid = p.uuid",
    )
    .bind(
        parents
            .iter()
            .map(|p| part(p.partition()))
            .collect::<Vec<i16>>(),
    )
    .bind(parents.iter().map(|p| p.uuid()).collect::<Vec<Uuid>>())
    .fetch_all(&b.inner.pool)
    .await
    .map_err(map)?;
    let mut found = HashMap::with_capacity(found_rows.len());
    for row in &found_rows {
        let id = read::execution_id(row, b.inner.partitions)?;
        let facts = read::parent_facts(row, &id)?;
        found.insert(id, facts);
    }
    rules::check_parents(rows, &found)
}
