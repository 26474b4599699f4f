-- 0018: one admin index instead of two, and none of it for running rows.
--
-- `list` (id order within a namespace) and `counts` (per lane and state)
-- read `executions_by_namespace (namespace, uuid)` and
-- `executions_by_lane_state (namespace, lane, state)`. Neither is read on
-- the hot path, yet every claim and every completion wrote an entry into
-- both: those updates change `state`, which partial indexes test, so
-- Postgres can never make them HOT and inserts the new row version into
-- every index whose predicate it meets. That was 6 of the 13 index
-- entries an execution costs from submission to completion.
--
-- Now one index serves both readers: keyed by (namespace, uuid) for the
-- list's order, carrying lane and state for the counts and the list's
-- filters, and holding no running rows. A running execution is a leased
-- one, so there are at most as many as the workers hold; `list`, `counts`
-- and `namespaces` read those from `executions_leases` (running rows
-- only) and merge them in. An execution now costs this index two entries
-- (submitted, finished) instead of six across both.
--
-- Building an index on a partitioned table cannot be done CONCURRENTLY, so
-- this migration holds writes on `executions` while it builds, for about
-- as long as reading the table once. On a large table, first build an
-- index with the definition below on each partition child CONCURRENTLY
-- (`CREATE INDEX CONCURRENTLY ... ON executions_0 ...`), then run this
-- migration: Postgres attaches a child's matching index instead of
-- building another.
DROP INDEX IF EXISTS executions_by_lane_state;
DROP INDEX IF EXISTS executions_by_namespace;
CREATE INDEX executions_by_namespace ON executions (namespace, uuid) INCLUDE (lane, state)
    WHERE state <> 'running';
