-- create: inserts a batch of executions in one statement.
--
-- $1..$20: one array per column, one element per execution (the caller has
-- already dropped repeats of an idempotency key within the batch).
-- $21: the instant each execution was submitted (ms): the clock reading
-- of the call it came in, as concurrent calls may share the statement
-- (src/combine_create.rs). $22: the wake-up channel. $23: the root of each child
-- (NULL for executions without a parent). $24: the child key of each child
-- (NULL without one; the caller has already answered keys that exist and
-- dropped repeats within the batch, under a lock per parent and key).
-- $25..$30: dependency policy (NULL without dependencies), counters (total,
-- completed, finished otherwise), finished_at and last_error per execution
-- (a dependent whose upstreams already decided is written finished).
-- $31, $32: the edges (dependent, upstream) of the batch; an edge's ends
-- live in one partition (one flow).
-- $33, $34, $35: session, version and version sort key per execution (NULL
-- without).
--
-- Idempotency keys are taken first (ON CONFLICT DO NOTHING waits for a
-- concurrent inserter of the same key and then skips it); only executions
-- without a key or whose key was taken here are inserted. Answers the uuids
-- inserted; the caller looks up the owners of the keys it did not get.
-- Lanes that received waiting work are notified (delivered on commit).
-- Parents count their new unfinished children as open. An execution keeps
-- its event history if its namespace does now (`namespace_history`, read
-- once per namespace of the batch; migration 0011). Each is stamped with
-- the keep of the retention rule covering it now (`rules::keep_for`: its
-- lane's rule, else its namespace's, else NULL for the default; migration
-- 0012): the rules of the batch's namespaces are read once, and a row
-- looks among them only when there are any, so a deployment without rules
-- pays one read of an empty table per batch. A waiting row of a lane a
-- fair limit covers is marked with an empty `fair_key`, so that it calls
-- the fair-turn trigger, which gives its key and its turn (migration
-- 0016); the fair limits of the batch's namespaces are read once, and
-- without any no row calls it.
WITH input AS (
    SELECT *
    FROM UNNEST(
        $1::smallint[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
        $7::integer[], $8::bytea[], $9::text[], $10::text[], $11::integer[],
        $12::bigint[], $13::bigint[], $14::double precision[], $15::boolean[],
        $16::text[], $17::text[], $18::bigint[], $19::bigint[], $20::bigint[], $21::bigint[],
        $23::text[], $24::text[], $25::text[], $26::integer[], $27::integer[],
        $28::integer[], $29::bigint[], $30::text[], $33::text[], $34::text[], $35::text[]
    ) AS i(partition, uuid, namespace, lane, kind, state, priority, payload, tags,
           required_caps, max_attempts, backoff_initial_ms, backoff_max_ms,
           backoff_multiplier, backoff_jitter, idempotency_key, parent, run_at,
           ready_at, deadline, submitted_at, root, child_key, dep_policy, deps_total, deps_done,
           deps_bad, finished_at, last_error, session, version, version_key)
),
kept AS (
    SELECT h.namespace FROM namespace_history h
    WHERE h.namespace IN (SELECT i.namespace FROM input i)
),
retained AS MATERIALIZED (
    SELECT r.namespace, r.lane, r.keep_ms FROM retention_rules r
    WHERE r.namespace IN (SELECT i.namespace FROM input i)
),
fairs AS MATERIALIZED (
    SELECT l.namespace, l.lane FROM limits l
    WHERE l.fair AND l.namespace IN (SELECT i.namespace FROM input i)
),
taken AS (
    INSERT INTO idempotency_keys (namespace, lane, session, key, partition, uuid)
    SELECT namespace, lane, COALESCE(session, ''), idempotency_key, partition, uuid
    FROM input
    WHERE idempotency_key IS NOT NULL
    -- One lock order for every writer, so two batches never deadlock.
    ORDER BY namespace, lane, COALESCE(session, ''), idempotency_key
    ON CONFLICT DO NOTHING
    RETURNING uuid
),
inserted AS (
    INSERT INTO executions (
        partition, uuid, namespace, lane, kind, state, priority, payload, tags,
        required_caps, attempts, max_attempts, backoff_initial_ms, backoff_max_ms,
        backoff_multiplier, backoff_jitter, idempotency_key, parent, child_key, root,
        created_at, updated_at, run_at, ready_at, deadline, dep_policy, deps_total,
        deps_done, deps_bad, finished_at, last_error, history, keep_ms, session, version,
        version_key, fair_key)
    SELECT partition, uuid, namespace, lane, kind, state, priority, payload, tags::jsonb,
           required_caps::jsonb, 0, max_attempts, backoff_initial_ms, backoff_max_ms,
           backoff_multiplier, backoff_jitter, idempotency_key, parent, child_key, root,
           submitted_at, submitted_at, run_at, ready_at, deadline, dep_policy, deps_total, deps_done,
           deps_bad, finished_at, last_error, namespace IN (SELECT k.namespace FROM kept k),
           -- A lane's rule sorts after its namespace's ('', the empty lane).
           CASE WHEN EXISTS (SELECT 1 FROM retained) THEN
               (SELECT r.keep_ms FROM retained r
                WHERE r.namespace = input.namespace AND r.lane IN (input.lane, '')
                ORDER BY r.lane DESC LIMIT 1)
           END,
           session, version, version_key,
           CASE WHEN state = 'waiting' AND EXISTS (SELECT 1 FROM fairs) THEN
               (SELECT '' FROM fairs f
                WHERE f.namespace = input.namespace AND f.lane IN (input.lane, '')
                LIMIT 1)
           END
    FROM input
    WHERE idempotency_key IS NULL OR uuid IN (SELECT uuid FROM taken)
    RETURNING uuid, namespace, lane, state, partition, parent, finished_at
),
-- Every new unfinished child is open for its parent (in its partition)
-- until it finishes.
opened AS (
    UPDATE executions p
    SET open_children = p.open_children + c.n
    FROM (SELECT partition, parent, count(*) AS n FROM inserted
          WHERE parent IS NOT NULL AND finished_at IS NULL GROUP BY partition, parent) c
    WHERE p.partition = c.partition AND p.uuid = split_part(c.parent, '}-', 2)::uuid
),
-- An upstream already finished was counted by the create (it is locked
-- since it was read): walks from it pass the edge by.
edges AS (
    INSERT INTO dependencies (partition, downstream, upstream, counted)
    SELECT i.partition, e.downstream, e.upstream, u.finished_at IS NOT NULL
    FROM UNNEST($31::uuid[], $32::uuid[]) AS e(downstream, upstream)
    JOIN inserted i ON i.uuid = e.downstream
    JOIN executions u ON u.partition = i.partition AND u.uuid = e.upstream
),
woken AS (
    SELECT pg_notify($22, namespace || ' ' || lane)
    FROM (SELECT DISTINCT namespace, lane FROM inserted WHERE state = 'waiting') w
)
SELECT ARRAY(SELECT uuid FROM inserted) AS inserted,
       (SELECT count(*) FROM woken) AS woken
