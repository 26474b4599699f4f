-- claim_chosen: leases and opens attempts for the executions a limited
-- claim chose (src/limits.rs), in its transaction, which read them waiting
-- and holds their row locks (`FOR UPDATE SKIP LOCKED`); this head, then
-- claim_tail.sql, so they are claimed exactly as claim.sql claims.
--
-- $1 now, $2 worker id, $3 lease expiry, $4 one fresh nonce per execution,
-- $5 the worker's session idle time in ms (see claim_tail.sql); $6 their
-- partitions, $7 their uuids.
WITH gate AS (
    SELECT false AS limited
),
picked AS (
    SELECT q.partition, q.uuid, e.namespace, e.session, e.attempts, e.attempt_worker,
           e.attempt_nonce, e.attempt_started_at, e.attempt_ended_at, e.attempt_outcome,
           e.attempt_error
    FROM UNNEST($6::int2[], $7::uuid[]) AS q(partition, uuid)
    JOIN executions e ON e.partition = q.partition AND e.uuid = q.uuid
),
