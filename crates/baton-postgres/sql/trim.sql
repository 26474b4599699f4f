-- trim_terminal: deletes the terminal executions $2 of partition $1, locked
-- by the caller earlier in the same transaction, with their attempts and
-- idempotency keys; answers how many, and the oldest finished_at among the
-- terminal executions left.
--
-- $1 partition, $2 uuids.
WITH gone_attempts AS (
    DELETE FROM attempts WHERE partition = $1 AND execution_uuid = ANY($2::uuid[])
),
gone AS (
    DELETE FROM executions
    WHERE partition = $1 AND uuid = ANY($2::uuid[])
    RETURNING uuid, namespace, lane, idempotency_key
),
gone_keys AS (
    DELETE FROM idempotency_keys k
    USING gone g
    WHERE k.namespace = g.namespace AND k.lane = g.lane AND k.key = g.idempotency_key
      AND k.uuid = g.uuid
)
SELECT (SELECT count(*) FROM gone) AS processed,
       (SELECT finished_at FROM executions
        WHERE partition = $1 AND finished_at IS NOT NULL AND uuid <> ALL($2::uuid[])
        ORDER BY finished_at
        LIMIT 1) AS oldest
