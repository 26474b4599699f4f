-- complete, coalesced: completes every execution of the batch whose lease
-- is live, in one statement; answers the new rows. Executions not answered
-- were not live (or not running at that attempt) and are classified one by
-- one by their callers under a row lock.
--
-- $1..$6: partition, uuid, attempt, nonce, now (each caller's own clock
-- reading) and result per lease; at most one lease per execution.
--
-- $7 chooses the executions: without a parent or dependents (false; one
-- statement, autocommit) or children and executions with dependents only
-- (true; run in a transaction that then counts their parents down and
-- tells their dependents, so a complete and what it releases are one
-- atomic unit). $8: with true, the executions whose flow's root the
-- transaction locked; one with dependents not among them gained its first
-- dependent since, and is left to its caller.
--
-- The attempt closed is the running one, which lives in the execution row
-- (migration 0019): the same update closes it.
--
-- Each lease is found by its primary key, one probe per lease (the
-- combiner's connection leaves the planner no other plan: src/combine.rs,
-- `PLANNER`). The rows are running ones, yet the statement does not say
-- `state = 'running'`: that condition matches the predicate of
-- `executions_leases`, and a nested loop reading that index (every
-- running row of the partition, and the entries of rows that ended since
-- the last vacuum) for each lease would still be open to the planner. A
-- matching nonce says the same: `executions_valid` holds a nonce exactly
-- while running.
WITH req AS (
    SELECT *
    FROM UNNEST($1::smallint[], $2::uuid[], $3::integer[], $4::bigint[], $5::bigint[],
                $6::bytea[])
        AS r(partition, uuid, number, nonce, now, result)
),
done AS (
    UPDATE executions e
    SET state = 'completed', result = r.result, finished_at = r.now, updated_at = r.now,
        worker_id = NULL, lease_nonce = NULL, lease_expires_at = NULL,
        attempt_ended_at = r.now, attempt_outcome = 'completed'
    FROM req r
    WHERE e.partition = r.partition AND e.uuid = r.uuid
      AND e.attempts = r.number AND e.lease_nonce = r.nonce
      AND e.lease_expires_at > r.now
      AND (e.deadline IS NULL OR e.deadline > r.now)
      AND CASE WHEN $7
               THEN (e.parent IS NOT NULL OR e.has_dependents)
                    AND (NOT e.has_dependents OR e.uuid = ANY($8::uuid[]))
               ELSE e.parent IS NULL AND NOT e.has_dependents
          END
    RETURNING e.*
)
SELECT * FROM done
