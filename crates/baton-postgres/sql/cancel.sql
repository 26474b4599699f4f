-- cancel: cancels one execution the caller has locked (SELECT … FOR UPDATE
-- earlier in the same transaction) and found non-terminal; closes its open
-- attempt, if any. Answers the new row.
--
-- $1 partition, $2 uuid, $3 now, $4 reason.
UPDATE executions
SET state = 'cancelled', cancel_reason = $4, finished_at = $3, updated_at = $3,
    worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL,
    attempt_ended_at = CASE WHEN attempt_started_at IS NOT NULL AND attempt_outcome IS NULL
                            THEN $3 ELSE attempt_ended_at END,
    attempt_outcome = CASE WHEN attempt_started_at IS NOT NULL AND attempt_outcome IS NULL
                           THEN 'cancelled' ELSE attempt_outcome END
WHERE partition = $1 AND uuid = $2
RETURNING *
