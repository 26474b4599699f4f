-- expire_deadlines: moves the executions $2 of partition $1, locked by the
-- caller earlier in the same transaction, to expired and closes their open
-- attempts; answers how many.
--
-- $1 partition, $2 uuids, $3 now.
WITH closed AS (
    UPDATE attempts
    SET ended_at = $3, outcome = 'expired'
    WHERE partition = $1 AND execution_uuid = ANY($2::uuid[]) AND outcome IS NULL
),
expired AS (
    UPDATE executions
    SET state = 'expired', finished_at = $3, updated_at = $3,
        worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL
    WHERE partition = $1 AND uuid = ANY($2::uuid[])
    RETURNING uuid
)
SELECT (SELECT count(*) FROM expired) AS processed
