-- expire_deadlines: moves the executions $2 of partition $1, locked by the
-- caller earlier in the same transaction, to expired and closes their open
-- attempts; answers how many.
--
-- $1 partition, $2 uuids, $3 now.
WITH expired AS (
    UPDATE executions
    SET state = 'expired', finished_at = $3, updated_at = $3,
        worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL,
        attempt_ended_at = CASE WHEN attempt_started_at IS NOT NULL AND attempt_outcome IS NULL
                                THEN $3 ELSE attempt_ended_at END,
        attempt_outcome = CASE WHEN attempt_started_at IS NOT NULL AND attempt_outcome IS NULL
                               THEN 'expired' ELSE attempt_outcome END
    WHERE partition = $1 AND uuid = ANY($2::uuid[])
    RETURNING uuid
)
SELECT (SELECT count(*) FROM expired) AS processed
