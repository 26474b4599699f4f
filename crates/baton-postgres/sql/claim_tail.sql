-- The shared end of claim.sql and claim_chosen.sql: leases the `picked`
-- executions (partition, uuid, namespace, session, and their last attempt
-- as read under the row lock) to worker $2 until $3 (at $1), each with a
-- nonce of $4, opens their attempts, and answers them with `gate.limited`.
-- The answer always has a row: a claim that took nothing answers one whose
-- execution columns are NULL, so the caller learns `limited` either way.
--
-- An execution's last attempt lives in its row (migration 0019): opening
-- attempt n + 1 overwrites the row's `attempt_*` columns, so attempt n,
-- ended before the execution could wait again, is first copied into
-- `attempts` (`archived`). A first attempt copies nothing.
--
-- Sessions (`locks`): the lock of every session among the picked rows is
-- taken or extended for $2, in session order (one lock order for every
-- claimer, so two never deadlock), until the later of the lease expiry
-- and $5 ms from now, never shrinking a lock $2 holds
-- (`rules::session_lock_until`). The upsert's conflict clause waits for a
-- concurrent claimer that inserted or updated the lock and then judges the
-- latest row, not the statement's snapshot: it takes the lock only when
-- $2 holds it or it lapsed (`rules::session_claimable`). A picked row
-- whose session it did not get stays waiting (its row lock goes with the
-- statement); rows without a session never read `sessions`.
--
-- Each claimed row comes with the names and outputs of its done steps
-- (`step_names`, `step_outputs`, aligned by name; NULL without any). Only
-- rows whose `step_count` is not zero read `steps`: the condition names
-- only the outer row, so it gates the lateral subquery (a one-time filter)
-- and an execution without steps costs the claim nothing. The read sees
-- every step of the execution: steps are written only under a live lease,
-- under the row lock, and a row is claimable only once a later writer took
-- that lock to end the lease, so the statement's snapshot, in which the row
-- was already waiting, holds them all.
locks AS (
    INSERT INTO sessions AS s (namespace, session, partition, worker_id, expires_at, idle_ms)
    SELECT w.namespace, w.session, w.partition, $2, GREATEST($1 + $5, $3), $5
    FROM (SELECT DISTINCT namespace, session, partition FROM picked
          WHERE session IS NOT NULL) w
    ORDER BY w.namespace, w.session
    ON CONFLICT (namespace, session) DO UPDATE
    SET worker_id = excluded.worker_id,
        expires_at = CASE WHEN s.worker_id = excluded.worker_id
                          THEN GREATEST(s.expires_at, excluded.expires_at)
                          ELSE excluded.expires_at END,
        idle_ms = excluded.idle_ms
    WHERE s.worker_id = excluded.worker_id OR s.expires_at <= $1
    RETURNING s.namespace, s.session
),
numbered AS (
    SELECT p.partition, p.uuid, row_number() OVER () AS n
    FROM picked p
    WHERE p.session IS NULL
       OR EXISTS (SELECT 1 FROM locks k WHERE k.namespace = p.namespace AND k.session = p.session)
),
claimed AS (
    UPDATE executions e
    SET state = 'running',
        attempts = e.attempts + 1,
        worker_id = $2,
        lease_nonce = ($4::bigint[])[n.n],
        lease_expires_at = $3,
        updated_at = $1,
        attempt_worker = $2,
        attempt_nonce = ($4::bigint[])[n.n],
        attempt_started_at = $1,
        attempt_ended_at = NULL,
        attempt_outcome = NULL,
        attempt_error = NULL
    FROM numbered n
    WHERE e.partition = n.partition AND e.uuid = n.uuid
    RETURNING e.*
),
archived AS (
    INSERT INTO attempts (partition, execution_uuid, number, worker_id, nonce, started_at,
                          ended_at, outcome, error)
    SELECT p.partition, p.uuid, p.attempts, p.attempt_worker, p.attempt_nonce,
           p.attempt_started_at, p.attempt_ended_at, p.attempt_outcome, p.attempt_error
    FROM picked p
    WHERE p.attempt_started_at IS NOT NULL
      AND EXISTS (SELECT 1 FROM claimed c WHERE c.partition = p.partition AND c.uuid = p.uuid)
)
SELECT g.limited, c.*, st.step_names, st.step_outputs
FROM gate g
LEFT JOIN claimed c ON true
LEFT JOIN LATERAL (
    SELECT array_agg(s.name ORDER BY s.name) AS step_names,
           array_agg(s.output ORDER BY s.name) AS step_outputs
    FROM steps s
    WHERE c.step_count > 0
      AND s.partition = c.partition AND s.uuid = c.uuid AND s.status = 'done'
) st ON true
