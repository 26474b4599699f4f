-- cancel: cancels one execution the caller has locked (SELECT … FOR UPDATE
-- earlier in the same transaction) and found non-terminal; closes its open
-- attempt, if any. Answers the new row.
--
-- $1 partition, $2 uuid, $3 now, $4 reason.
WITH closed AS (
    UPDATE attempts
    SET ended_at = $3, outcome = 'cancelled'
    WHERE partition = $1 AND execution_uuid = $2 AND outcome IS NULL
)
UPDATE executions
SET state = 'cancelled', cancel_reason = $4, finished_at = $3, updated_at = $3,
    worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL
WHERE partition = $1 AND uuid = $2
RETURNING *
