-- cascade: cancels descendants of a cancelled execution that the caller has
-- locked (SELECT … FOR UPDATE earlier in the same transaction) and found
-- non-terminal, all in one partition (a flow lives in its root's
-- partition); closes their open attempts. The caller checks the row count.
--
-- $1 partition, $2 uuids, $3 now, $4 reason.
UPDATE executions
SET state = 'cancelled', cancel_reason = $4, finished_at = $3, updated_at = $3,
    worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL,
    attempt_ended_at = CASE WHEN attempt_started_at IS NOT NULL AND attempt_outcome IS NULL
                            THEN $3 ELSE attempt_ended_at END,
    attempt_outcome = CASE WHEN attempt_started_at IS NOT NULL AND attempt_outcome IS NULL
                           THEN 'cancelled' ELSE attempt_outcome END
WHERE partition = $1 AND uuid = ANY($2::uuid[]) AND finished_at IS NULL
