//! `create`: submissions, idempotency keys, tags.

use std::collections::{HashMap, HashSet};

use baton_core::raw::rules::{DependencyStart, UpstreamFacts};
use baton_core::raw::{PreparedExecution, rules};
use baton_core::{CreateOutcome, EngineError, ExecutionId, NewExecution, Result, State, Timestamp};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::errors::map;
use crate::read::{self, col};
use crate::{PostgresBackend, finish, part, sql};

impl PostgresBackend {
    /// Runs the create statement for `rows`; answers the uuids inserted.
    pub(crate) async fn insert_batch(
        &self,
        conn: &mut PgConnection,
        rows: &[&PreparedExecution],
        roots: &HashMap<ExecutionId, ExecutionId>,
        starts: &HashMap<ExecutionId, DependencyStart>,
        now: Timestamp,
    ) -> Result<HashSet<Uuid>> {
        let mut a = CreateArrays::default();
        for r in rows {
            a.push(r, starts.get(&r.id), now);
            a.root.push(
                r.new
                    .parent
                    .as_ref()
                    .and_then(|p| roots.get(p))
                    .map(|r| r.to_string()),
            );
        }
        let inserted = run_create(conn, &self.inner.channel, a).await?;
        Ok(inserted.into_iter().collect())
    }

    /// Writes `rows` (none with a key, a parent or dependencies) in one
    /// statement shared with the concurrent calls of this instance
    /// (`combine_create.rs`); answers them back once committed.
    async fn create_combined(
        &self,
        rows: Vec<PreparedExecution>,
        now: Timestamp,
    ) -> Result<Vec<PreparedExecution>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let queued = self
            .inner
            .creator
            .send(crate::combine_create::Pending { rows, now, reply });
        if queued.is_err() {
            return Err(EngineError::unavailable(
                "the Postgres create queue has stopped; is the runtime shutting down?",
            ));
        }
        answer.await.map_err(|_| {
            EngineError::unavailable(
                "the Postgres create queue dropped a call; is the runtime shutting down?",
            )
        })?
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
        let mut sessions = Vec::with_capacity(rows.len());
        let mut keys = Vec::with_capacity(rows.len());
        for r in rows {
            namespaces.push(r.new.namespace.as_str());
            lanes.push(r.new.lane.as_str());
            sessions.push(stored_session(r));
            keys.push(r.new.idempotency_key.as_ref().map_or("", |k| k.as_str()));
        }
        let found = sqlx::query(sql::EXISTING_KEYS)
            .bind(namespaces)
            .bind(lanes)
            .bind(sessions)
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

    /// The stored children that hold the (parent, child key) pairs of
    /// `rows`, as (id, current state).
    ///
    /// Each pair is first locked for the rest of the transaction (an
    /// advisory lock, taken in one order by every writer), so that of two
    /// concurrent creates of one pair the second reads the first's child
    /// here instead of inserting another one (which the unique index would
    /// refuse).
    async fn existing_children<'r>(
        &self,
        conn: &mut PgConnection,
        rows: &'r [PreparedExecution],
    ) -> Result<HashMap<(&'r ExecutionId, &'r str), (ExecutionId, State)>> {
        let mut pairs: Vec<(&ExecutionId, &str)> = rows.iter().filter_map(child_key_of).collect();
        pairs.sort_unstable();
        pairs.dedup();
        if pairs.is_empty() {
            return Ok(HashMap::new());
        }
        let locks: Vec<String> = pairs
            .iter()
            .map(|(parent, key)| format!("baton child key {parent} {key}"))
            .collect();
        sqlx::query(
            "SELECT count(pg_advisory_xact_lock(h)) FROM \
             (SELECT DISTINCT hashtextextended(k, 0) AS h FROM UNNEST($1::text[]) AS k ORDER BY h) l",
        )
        .bind(locks)
        .execute(&mut *conn)
        .await
        .map_err(map)?;
        let found = sqlx::query(
            "SELECT q.ord, e.uuid, e.partition, e.state \
             FROM UNNEST($1::smallint[], $2::text[], $3::text[]) WITH ORDINALITY \
                  AS q(partition, parent, child_key, ord) \
             JOIN executions e ON e.partition = q.partition AND e.parent = q.parent \
                  AND e.child_key = q.child_key",
        )
        .bind(
            pairs
                .iter()
                .map(|(parent, _)| part(parent.partition()))
                .collect::<Vec<i16>>(),
        )
        .bind(
            pairs
                .iter()
                .map(|(parent, _)| parent.to_string())
                .collect::<Vec<String>>(),
        )
        .bind(pairs.iter().map(|(_, key)| *key).collect::<Vec<&str>>())
        .fetch_all(&mut *conn)
        .await
        .map_err(map)?;
        let mut out = HashMap::with_capacity(found.len());
        for row in &found {
            let ord: i64 = col(row, "ord")?;
            let id = read::execution_id(row, self.inner.partitions)?;
            let state = read::state(&format!("execution {id}"), &col::<String>(row, "state")?)?;
            let pair = usize::try_from(ord - 1)
                .ok()
                .and_then(|j| pairs.get(j).copied())
                .ok_or_else(|| {
                    EngineError::corruption(format!(
                        "child key lookup answered ordinality {ord} for execution {id}"
                    ))
                })?;
            out.insert(pair, (id, state));
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
    let mut rows = PreparedExecution::prepare_batch(executions, limits, now, b.inner.partitions)?;
    place(b, &mut rows)?;
    // Items with keys to deduplicate, or parents to check, are written in
    // a transaction: a parent is read under a row lock, so it cannot be
    // trimmed between the check and the insert of its child.
    let keyed = rows.iter().any(|r| {
        r.new.idempotency_key.is_some() || child_key_of(r).is_some() || r.new.parent.is_some()
    });
    let (plan, starts) = if keyed {
        let mut tx = b.begin().await?;
        let outcome = async {
            let roots = check_parents(b, &mut tx, &rows).await?;
            let starts = check_upstreams(b, &mut tx, &rows, &roots).await?;
            let plan = create_keyed(b, &mut tx, &rows, &roots, &starts, now).await?;
            Ok((plan, starts))
        }
        .await;
        finish(tx, outcome).await?
    } else {
        // Nothing to deduplicate: one statement, atomic by construction,
        // shared with the concurrent calls of this instance that queued
        // meanwhile.
        rows = b.create_combined(rows, now).await?;
        let plan = Plan {
            repeat_of: vec![None; rows.len()],
            answers: HashMap::new(),
            created: (0..rows.len()).collect(),
        };
        (plan, HashMap::new())
    };
    let Plan {
        repeat_of,
        mut answers,
        created,
    } = plan;
    for &i in &created {
        let r = &rows[i];
        let state = starts.get(&r.id).map_or(r.state, DependencyStart::state);
        answers.insert(
            i,
            CreateOutcome {
                id: r.id.clone(),
                state,
                created: true,
            },
        );
        if state == State::Waiting {
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

/// Places the executions of one call that belong to no flow and no
/// session in one partition, the next of this instance's rotation (a
/// child, and so every dependent, stays in its parent's partition, and
/// work of a session in the session's partition, as `prepare_batch` made
/// them; an item naming upstreams without a parent is left as it is, for
/// the create to refuse).
///
/// Postgres pays per statement for every partition child a statement
/// writes (it opens the child's indexes and builds its constraint and
/// trigger expressions), and the work of one call is claimed and
/// completed together, in claim order: kept in one child, the call's
/// create, and most claims and completes of its work, write one child
/// instead of all eight. The rotation spreads calls over the partitions
/// as the random ids spread executions.
fn place(b: &PostgresBackend, rows: &mut [PreparedExecution]) -> Result<()> {
    let count = b.inner.partitions;
    let together = b.inner.placement.next(count);
    for r in rows.iter_mut() {
        let free = r.new.parent.is_none() && r.new.session.is_none() && r.new.depends_on.is_empty();
        if free && r.id.partition() != together {
            r.id = ExecutionId::generate_in(together, count)?;
        }
    }
    Ok(())
}

/// What a create decided for each item of its batch (by index).
struct Plan {
    /// The earlier item a repeat answers as (created: false).
    repeat_of: Vec<Option<usize>>,
    /// Items answered by an execution that already existed.
    answers: HashMap<usize, CreateOutcome>,
    /// Items inserted.
    created: Vec<usize>,
}

/// The session an item's idempotency key is scoped by, as
/// `idempotency_keys` stores it: empty for no session.
fn stored_session(r: &PreparedExecution) -> &str {
    r.new.session.as_ref().map_or("", |s| s.as_str())
}

/// The parent and child key of an item, when it has both.
fn child_key_of(r: &PreparedExecution) -> Option<(&ExecutionId, &str)> {
    match (&r.new.parent, &r.new.child_key) {
        (Some(parent), Some(key)) => Some((parent, key.as_str())),
        _ => None,
    }
}

/// The body of a create whose items carry idempotency or child keys or
/// parents, in the caller's transaction (not committed here).
async fn create_keyed(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    rows: &[PreparedExecution],
    roots: &HashMap<ExecutionId, ExecutionId>,
    starts: &HashMap<ExecutionId, DependencyStart>,
    now: Timestamp,
) -> Result<Plan> {
    let existing_children = b.existing_children(tx, rows).await?;
    // In request order, as SQLite decides: a child key seen earlier in the
    // batch answers its first item, one already stored answers its
    // execution; then an idempotency key seen earlier answers its first
    // item. Stored idempotency keys are found by the insert below.
    let mut first_child: HashMap<(&ExecutionId, &str), usize> = HashMap::new();
    let mut first_of: HashMap<(&str, &str, &str, &str), usize> = HashMap::new();
    let mut repeat_of: Vec<Option<usize>> = Vec::with_capacity(rows.len());
    let mut answers: HashMap<usize, CreateOutcome> = HashMap::with_capacity(rows.len());
    let mut pending: Vec<usize> = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        if let Some(k) = child_key_of(r) {
            if let Some(&first) = first_child.get(&k) {
                repeat_of.push(Some(first));
                continue;
            }
            first_child.insert(k, i);
            if let Some((id, state)) = existing_children.get(&k) {
                answers.insert(
                    i,
                    CreateOutcome {
                        id: id.clone(),
                        state: *state,
                        created: false,
                    },
                );
                repeat_of.push(None);
                continue;
            }
        }
        if let Some(key) = &r.new.idempotency_key {
            let k = (
                r.new.namespace.as_str(),
                r.new.lane.as_str(),
                stored_session(r),
                key.as_str(),
            );
            if let Some(&first) = first_of.get(&k) {
                repeat_of.push(Some(first));
                continue;
            }
            first_of.insert(k, i);
        }
        repeat_of.push(None);
        pending.push(i);
    }

    let mut created: Vec<usize> = Vec::new();
    // A key taken by another transaction whose execution is trimmed
    // before we read it is free again: retry those items.
    for _round in 0..4 {
        if pending.is_empty() {
            break;
        }
        let batch: Vec<&PreparedExecution> = pending.iter().map(|&i| &rows[i]).collect();
        let inserted = b.insert_batch(tx, &batch, roots, starts, now).await?;
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
        let existing = b.existing_keys(tx, &lost_rows).await?;
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
    Ok(Plan {
        repeat_of,
        answers,
        created,
    })
}

/// Runs `sql/create.sql` over the column arrays `a`; answers the uuids
/// inserted.
async fn run_create(
    conn: &mut PgConnection,
    channel: &str,
    a: CreateArrays<'_>,
) -> Result<Vec<Uuid>> {
    sqlx::query_scalar(sql::CREATE)
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
        .bind(a.submitted_at)
        .bind(channel)
        .bind(a.root)
        .bind(a.child_key)
        .bind(a.dep_policy)
        .bind(a.deps_total)
        .bind(a.deps_done)
        .bind(a.deps_bad)
        .bind(a.finished_at)
        .bind(a.last_error)
        .bind(a.downstream)
        .bind(a.upstream)
        .bind(a.session)
        .bind(a.version)
        .bind(a.version_key)
        .fetch_one(&mut *conn)
        .await
        .map_err(map)
}

/// Inserts the executions of several `create` calls without keys, parents
/// or dependencies in one statement, each with its call's clock reading
/// (see `combine_create.rs`).
pub(crate) async fn insert_unkeyed(
    conn: &mut PgConnection,
    channel: &str,
    calls: &[(&[PreparedExecution], Timestamp)],
) -> Result<()> {
    let mut a = CreateArrays::default();
    for (rows, now) in calls {
        for r in rows.iter() {
            a.push(r, None, *now);
            a.root.push(None);
        }
    }
    run_create(conn, channel, a).await.map(drop)
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
    child_key: Vec<Option<&'a str>>,
    root: Vec<Option<String>>,
    run_at: Vec<Option<i64>>,
    ready_at: Vec<i64>,
    deadline: Vec<Option<i64>>,
    submitted_at: Vec<i64>,
    dep_policy: Vec<Option<String>>,
    deps_total: Vec<i32>,
    deps_done: Vec<i32>,
    deps_bad: Vec<i32>,
    finished_at: Vec<Option<i64>>,
    last_error: Vec<Option<String>>,
    downstream: Vec<Uuid>,
    upstream: Vec<Uuid>,
    session: Vec<Option<&'a str>>,
    version: Vec<Option<&'a str>>,
    version_key: Vec<Option<String>>,
}

impl<'a> CreateArrays<'a> {
    fn push(&mut self, r: &'a PreparedExecution, start: Option<&DependencyStart>, now: Timestamp) {
        let n = &r.new;
        let state = start.map_or(r.state, DependencyStart::state);
        self.partition.push(part(r.id.partition()));
        self.uuid.push(r.id.uuid());
        self.namespace.push(n.namespace.as_str());
        self.lane.push(n.lane.as_str());
        self.kind.push(n.kind.as_str());
        self.state.push(state.as_str());
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
        self.child_key
            .push(n.child_key.as_ref().map(|k| k.as_str()));
        self.run_at.push(r.run_at.map(Timestamp::as_millis));
        self.session.push(n.session.as_ref().map(|s| s.as_str()));
        self.version.push(n.version.as_ref().map(|v| v.as_str()));
        self.version_key
            .push(n.version.as_ref().map(baton_core::Version::sort_key));
        // Eligible at once: ready now; else when the start time comes.
        self.ready_at.push(r.run_at.unwrap_or(now).as_millis());
        self.deadline.push(n.deadline.map(Timestamp::as_millis));
        self.submitted_at.push(now.as_millis());
        let count = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        match start {
            Some(s) => {
                self.dep_policy.push(Some(n.dependency_policy.to_string()));
                self.deps_total.push(count(s.total));
                self.deps_done.push(count(s.done));
                self.deps_bad.push(count(s.bad));
                for up in &n.depends_on {
                    self.downstream.push(r.id.uuid());
                    self.upstream.push(up.uuid());
                }
            }
            None => {
                self.dep_policy.push(None);
                self.deps_total.push(0);
                self.deps_done.push(0);
                self.deps_bad.push(0);
            }
        }
        // Decided at create: finished now, a failed one saying why.
        self.finished_at
            .push(state.is_terminal().then_some(now.as_millis()));
        self.last_error.push(match (start, state) {
            (Some(s), State::Failed) => Some(rules::dependency_failure(
                n.dependency_policy,
                s.total,
                s.bad,
            )),
            _ => None,
        });
    }
}

/// Reads the parents the batch names, locked until the create commits
/// (trim takes its rows with `SKIP LOCKED`, so a parent cannot vanish
/// before its child is written; the insert updates each parent's count of
/// open children anyway, so concurrent creates of one parent's children
/// queue here, in one lock order, before any other lock), and checks them
/// ([`rules::check_parents`]) before anything is written; answers the root
/// each parent's children belong to.
async fn check_parents(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    rows: &[PreparedExecution],
) -> Result<HashMap<ExecutionId, ExecutionId>> {
    let parents = rules::parents_named(rows);
    if parents.is_empty() {
        return Ok(HashMap::new());
    }
    // The parents and the roots of their flows are locked together, in the
    // one order every writer of flows locks in (`flow::lock_order`: roots
    // first): trim skips a locked root, so it never trims a flow a child is
    // being added to; a trim already holding the root is waited for, and a
    // parent it removed is then missing. (A parent's root never changes, so
    // it is read first without a lock.)
    let select = "SELECT e.uuid, e.partition, e.namespace, e.root FROM executions e \
         JOIN UNNEST($1::int2[], $2::uuid[]) WITH ORDINALITY AS p(partition, uuid, ord) \
         ON e.partition = p.partition AND e.uuid = p.uuid";
    let named: Vec<ExecutionId> = parents.iter().map(|p| (*p).clone()).collect();
    let unlocked = sqlx::query(select)
        .bind(
            named
                .iter()
                .map(|p| part(p.partition()))
                .collect::<Vec<i16>>(),
        )
        .bind(named.iter().map(|p| p.uuid()).collect::<Vec<Uuid>>())
        .fetch_all(&mut *tx)
        .await
        .map_err(map)?;
    let mut lock = Vec::with_capacity(unlocked.len() * 2);
    for row in &unlocked {
        let id = read::execution_id(row, b.inner.partitions)?;
        match read::parent_facts(row, &id)?.root {
            Some(root) => {
                lock.push((false, part(id.partition()), id.uuid()));
                lock.push((true, part(root.partition()), root.uuid()));
            }
            None => lock.push((true, part(id.partition()), id.uuid())),
        }
    }
    let order = crate::flow::lock_order(lock);
    let locked = sqlx::query(&format!("{select} ORDER BY p.ord FOR NO KEY UPDATE OF e"))
        .bind(order.iter().map(|r| r.0).collect::<Vec<i16>>())
        .bind(order.iter().map(|r| r.1).collect::<Vec<Uuid>>())
        .fetch_all(&mut *tx)
        .await
        .map_err(map)?;
    let found_rows: Vec<_> = locked
        .into_iter()
        .filter(|row| {
            read::execution_id(row, b.inner.partitions).is_ok_and(|id| named.contains(&id))
        })
        .collect();
    let mut found = HashMap::with_capacity(found_rows.len());
    for row in &found_rows {
        let id = read::execution_id(row, b.inner.partitions)?;
        let facts = read::parent_facts(row, &id)?;
        found.insert(id, facts);
    }
    rules::check_parents(rows, &found)
}

/// Reads the upstream executions the batch names, locked until the create
/// commits (in id order, as combined completes lock executions), and marks
/// each as having dependents in the same statement: an
/// upstream that finishes concurrently either finished before (its state
/// here says so) or waits for this lock and then sees its new dependent
/// (every writer that finishes an execution locks it first and reads
/// `has_dependents` under that lock). The flows' roots are locked already
/// (`check_parents`), so this runs after every writer that tells
/// dependents in these flows. Checks them ([`rules::check_dependencies`]);
/// answers how each new dependent starts, by its id.
async fn check_upstreams(
    b: &PostgresBackend,
    tx: &mut PgConnection,
    rows: &[PreparedExecution],
    roots: &HashMap<ExecutionId, ExecutionId>,
) -> Result<HashMap<ExecutionId, DependencyStart>> {
    let named = rules::upstreams_named(rows);
    if named.is_empty() {
        return Ok(HashMap::new());
    }
    let marked = sqlx::query(
        "WITH locked AS MATERIALIZED ( \
             SELECT e.partition, e.uuid FROM executions e \
             JOIN UNNEST($1::int2[], $2::uuid[]) AS q(partition, uuid) \
             ON e.partition = q.partition AND e.uuid = q.uuid \
             ORDER BY e.partition, e.uuid FOR NO KEY UPDATE OF e) \
         UPDATE executions e SET has_dependents = true FROM locked l \
         WHERE e.partition = l.partition AND e.uuid = l.uuid \
         RETURNING e.partition, e.uuid, e.namespace, e.root, e.state",
    )
    .bind(
        named
            .iter()
            .map(|id| part(id.partition()))
            .collect::<Vec<i16>>(),
    )
    .bind(named.iter().map(|id| id.uuid()).collect::<Vec<Uuid>>())
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let mut found = HashMap::with_capacity(marked.len());
    for row in &marked {
        let id = read::execution_id(row, b.inner.partitions)?;
        let ctx = format!("execution {id}");
        let facts = UpstreamFacts {
            namespace: baton_core::raw::stored::parse(
                "namespace",
                &ctx,
                &col::<String>(row, "namespace")?,
            )?,
            root: col::<Option<String>>(row, "root")?
                .map(|r| baton_core::raw::stored::parse::<ExecutionId>("root", &ctx, &r))
                .transpose()?,
            state: read::state(&ctx, &col::<String>(row, "state")?)?,
        };
        found.insert(id, facts);
    }
    let starts = rules::check_dependencies(rows, roots, &found)?;
    // The flows now have dependencies: their writers lock the root first
    // from here on (see `flow::deps`). The roots are locked already.
    let mut flows: Vec<&ExecutionId> = rows
        .iter()
        .filter(|r| !r.new.depends_on.is_empty())
        .filter_map(|r| r.new.parent.as_ref().and_then(|p| roots.get(p)))
        .collect();
    flows.sort();
    flows.dedup();
    sqlx::query(
        "UPDATE executions e SET deps_in_flow = true \
         FROM UNNEST($1::int2[], $2::uuid[]) AS q(partition, uuid) \
         WHERE e.partition = q.partition AND e.uuid = q.uuid AND NOT e.deps_in_flow",
    )
    .bind(
        flows
            .iter()
            .map(|id| part(id.partition()))
            .collect::<Vec<i16>>(),
    )
    .bind(flows.iter().map(|id| id.uuid()).collect::<Vec<Uuid>>())
    .execute(&mut *tx)
    .await
    .map_err(map)?;
    Ok(rows
        .iter()
        .zip(starts)
        .filter_map(|(r, start)| start.map(|s| (r.id.clone(), s)))
        .collect())
}
