-- promote_due: delayed → waiting for up to $3 executions of partition $1
-- whose run_at has come, earliest first, in one statement.
--
-- $1 partition, $2 now, $3 limit, $4 the wake-up channel.
--
-- Rows another transaction holds are skipped; they stay in next_due, which
-- is then at or before now ("run again"). next_due excludes the rows promoted
-- here because the statement's snapshot still shows them delayed.
WITH due AS (
    SELECT uuid
    FROM executions
    WHERE partition = $1 AND state = 'delayed' AND run_at <= $2
    ORDER BY run_at, uuid
    LIMIT $3
    FOR UPDATE SKIP LOCKED
),
promoted AS (
    UPDATE executions e
    SET state = 'waiting', updated_at = $2
    FROM due d
    WHERE e.partition = $1 AND e.uuid = d.uuid
    RETURNING e.namespace, e.lane
),
lanes AS (
    SELECT DISTINCT namespace, lane FROM promoted
),
woken AS (
    SELECT pg_notify($4, namespace || ' ' || lane) FROM lanes
)
SELECT (SELECT count(*) FROM promoted) AS processed,
       (SELECT count(*) FROM woken) AS woken,
       ARRAY(SELECT namespace || ' ' || lane FROM lanes) AS lanes,
       (SELECT run_at FROM executions
        WHERE partition = $1 AND state = 'delayed' AND uuid NOT IN (SELECT uuid FROM due)
        ORDER BY run_at
        LIMIT 1) AS next_due
