-- Schemas `probe_record`, `probe_lean` and `probe_queue` were migrated by
-- `baton migrate` (run.sh does it); this shapes the two that differ.

-- lean: today's layout without the admin list index and the retention
-- indexes, to price what keeping those costs.
DROP INDEX probe_lean.executions_by_namespace;
DROP INDEX probe_lean.executions_retention;
DROP INDEX probe_lean.executions_retention_kept;

-- queue: waiting and running kept in tables of their own, partitioned as
-- `executions` is (8 children, child k holding the partitions p % 8 = k).
DROP INDEX probe_queue.executions_claim;
CREATE TABLE probe_queue.queue (
    partition smallint NOT NULL,
    uuid      uuid     NOT NULL,
    namespace text     NOT NULL,
    lane      text     NOT NULL,
    priority  integer  NOT NULL,
    ready_at  bigint   NOT NULL,
    PRIMARY KEY (partition, uuid)
) PARTITION BY LIST (partition);
CREATE INDEX queue_claim ON probe_queue.queue (namespace, lane, priority DESC, ready_at, uuid);
CREATE TABLE probe_queue.leases (
    partition  smallint NOT NULL,
    uuid       uuid     NOT NULL,
    worker_id  text     NOT NULL,
    nonce      bigint   NOT NULL,
    expires_at bigint   NOT NULL,
    started_at bigint   NOT NULL,
    PRIMARY KEY (partition, uuid)
) PARTITION BY LIST (partition);
CREATE INDEX leases_expiry ON probe_queue.leases (partition, expires_at, uuid);
DO $$
DECLARE k integer; parts text;
BEGIN
    FOR k IN 0..7 LOOP
        SELECT string_agg(p::text, ',') INTO parts FROM generate_series(k, 1023, 8) p;
        EXECUTE format('CREATE TABLE probe_queue.queue_%s PARTITION OF probe_queue.queue FOR VALUES IN (%s)', k, parts);
        EXECUTE format('CREATE TABLE probe_queue.leases_%s PARTITION OF probe_queue.leases FOR VALUES IN (%s)', k, parts);
    END LOOP;
END
$$;
