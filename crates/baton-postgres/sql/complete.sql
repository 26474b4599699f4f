-- complete: completes the execution if $3/$4 is its live lease, in one
-- statement; answers the new row, or nothing when the lease is not live
-- (the caller then classifies the lease under a row lock).
--
-- $1 partition, $2 uuid, $3 attempt, $4 nonce, $5 now, $6 result.
--
-- The attempt closed is the running one, which lives in the execution row
-- (migration 0019): the same update closes it.
WITH done AS (
    UPDATE executions
    SET state = 'completed', result = $6, finished_at = $5, updated_at = $5,
        worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL,
        attempt_ended_at = $5, attempt_outcome = 'completed'
    WHERE partition = $1 AND uuid = $2
      AND state = 'running' AND attempts = $3 AND lease_nonce = $4
      AND lease_expires_at > $5
      AND (deadline IS NULL OR deadline > $5)
    RETURNING *
)
SELECT * FROM done
