-- cascade: cancels descendants of a cancelled execution that the caller has
-- locked (SELECT … FOR UPDATE earlier in the same transaction) and found
-- non-terminal, all in one partition (a flow lives in its root's
-- partition); closes their open attempts. The caller checks the row count.
--
-- $1 partition, $2 uuids, $3 now, $4 reason.
WITH closed AS (
    UPDATE attempts
    SET ended_at = $3, outcome = 'cancelled'
    WHERE partition = $1 AND execution_uuid = ANY($2::uuid[]) AND outcome IS NULL
)
UPDATE executions
SET state = 'cancelled', cancel_reason = $4, finished_at = $3, updated_at = $3,
    worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL
WHERE partition = $1 AND uuid = ANY($2::uuid[]) AND finished_at IS NULL
