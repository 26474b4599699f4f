-- The shared end of claim.sql and claim_chosen.sql: leases the `picked`
-- executions to worker $2 until $3 (at $1), each with a nonce of $4, opens
-- their attempts, and answers them with `gate.limited`. The answer always
-- has a row: a claim that took nothing answers one whose execution
-- columns are NULL, so the caller learns `limited` either way.
--
-- Each claimed row comes with the names and outputs of its done steps
-- (`step_names`, `step_outputs`, aligned by name; NULL without any). Only
-- rows whose `step_count` is not zero read `steps`: the condition names
-- only the outer row, so it gates the lateral subquery (a one-time filter)
-- and an execution without steps costs the claim nothing. The read sees
-- every step of the execution: steps are written only under a live lease,
-- under the row lock, and a row is claimable only once a later writer took
-- that lock to end the lease, so the statement's snapshot, in which the row
-- was already waiting, holds them all.
numbered AS (
    SELECT partition, uuid, row_number() OVER () AS n FROM picked
),
claimed AS (
    UPDATE executions e
    SET state = 'running',
        attempts = e.attempts + 1,
        worker_id = $2,
        lease_nonce = ($4::bigint[])[n.n],
        lease_expires_at = $3,
        updated_at = $1
    FROM numbered n
    WHERE e.partition = n.partition AND e.uuid = n.uuid
    RETURNING e.*
),
opened AS (
    INSERT INTO attempts (partition, execution_uuid, number, worker_id, nonce, started_at)
    SELECT partition, uuid, attempts, $2, lease_nonce, $1 FROM claimed
)
SELECT g.limited, c.*, st.step_names, st.step_outputs
FROM gate g
LEFT JOIN claimed c ON true
LEFT JOIN LATERAL (
    SELECT array_agg(s.name ORDER BY s.name) AS step_names,
           array_agg(s.output ORDER BY s.name) AS step_outputs
    FROM steps s
    WHERE c.step_count > 0
      AND s.partition = c.partition AND s.uuid = c.uuid AND s.status = 'done'
) st ON true
