-- pause: pauses executions of partition $1 that the caller has locked
-- (SELECT … FOR UPDATE earlier in the same transaction) and found neither
-- finished nor paused, each remembering the state resume returns it to
-- ($3, aligned with $2) and the ancestor whose tree pause reached it ($5,
-- NULL for one paused itself). A running one's open attempt ends `paused`
-- and counts as no failure (`released` grows with it, as a release's
-- does); its lease is cleared, so its worker's renew, complete and fail
-- find it dead. The caller checks the row count.
--
-- $1 partition, $2 uuids, $3 the states they leave, $4 now, $5 via.
--
-- Only a running execution has an open attempt; the SET expressions read
-- the row as it was before this statement, so `released` grows exactly for
-- the running ones.
UPDATE executions e
SET state = 'paused', paused_from = v.paused_from, paused_via = $5, updated_at = $4,
    released = e.released + CASE WHEN e.state = 'running' THEN 1 ELSE 0 END,
    worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL,
    attempt_ended_at = CASE WHEN e.attempt_started_at IS NOT NULL AND e.attempt_outcome IS NULL
                            THEN $4 ELSE e.attempt_ended_at END,
    attempt_outcome = CASE WHEN e.attempt_started_at IS NOT NULL AND e.attempt_outcome IS NULL
                           THEN 'paused' ELSE e.attempt_outcome END
FROM UNNEST($2::uuid[], $3::text[]) AS v(uuid, paused_from)
WHERE e.partition = $1 AND e.uuid = ANY($2::uuid[]) AND e.uuid = v.uuid
  AND e.finished_at IS NULL AND e.state <> 'paused'
