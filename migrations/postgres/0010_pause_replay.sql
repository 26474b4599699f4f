-- Pause, resume and replay (rfcs/0009), the same schema version as
-- migrations/sqlite/0010_pause_replay.sql. A paused execution remembers the
-- state resume returns it to (`paused_from`) and, when a tree pause reached
-- it, the ancestor whose pause it was (`paused_via`, the text form of its
-- id). They count only while the execution is `paused` (a state migration
-- 0004 already allows); one that finished while paused (cancelled, expired,
-- skipped by an upstream) may keep them. A paused execution always knows
-- the state it left.
ALTER TABLE executions
    ADD COLUMN paused_from text
        CHECK (paused_from IN ('waiting', 'delayed', 'blocked', 'suspended')),
    ADD COLUMN paused_via text,
    ADD CONSTRAINT executions_paused_knows_from CHECK (state <> 'paused' OR paused_from IS NOT NULL);

-- Attempts gain the outcome `paused`: an attempt an operator stopped, which
-- counts as no failure.
ALTER TABLE attempts DROP CONSTRAINT attempts_outcome_known;
ALTER TABLE attempts
    ADD CONSTRAINT attempts_outcome_known CHECK (outcome IN
        ('completed', 'failed', 'lease_expired', 'cancelled', 'expired', 'released', 'paused'));

-- The cascade queue also holds tree pauses (`pause`, `reason` the pausing
-- ancestor's id) and tree resumes (`resume`, `reason` empty). Migration
-- 0005's CHECK on `kind` has a generated name, so it is found by what it
-- says.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT conname
        FROM pg_constraint
        WHERE contype = 'c'
          AND conrelid = 'cascades'::regclass
          AND pg_get_constraintdef(oid) LIKE '%''dependents''%'
    LOOP
        EXECUTE format('ALTER TABLE cascades DROP CONSTRAINT %I', c.conname);
    END LOOP;
END
$$;
ALTER TABLE cascades
    ADD CONSTRAINT cascades_kind_known CHECK (kind IN ('cancel', 'dependents', 'pause', 'resume'));

-- Paused lanes, per namespace: every claim probes this table by primary
-- key once per lane it asks for (empty in the common case), so a paused
-- lane is skipped on every partition by the same statement. Small and
-- rarely written, so not partitioned.
CREATE TABLE paused_lanes (
    namespace text   NOT NULL,
    lane      text   NOT NULL,
    paused_at bigint NOT NULL,
    PRIMARY KEY (namespace, lane)
);

-- A walk now marks each edge `counted` as it tells the dependent, so an
-- upstream that ends a second time (after a replay) tells only dependents
-- created since. Edges of upstreams that finished before this version were
-- told already, except those a queued walk of the upstream's dependents has
-- still to reach (above its `after`; all of them without one): that walk
-- marks them when it tells them.
UPDATE dependencies d SET counted = true
FROM executions e
WHERE NOT d.counted
  AND e.partition = d.partition AND e.uuid = d.upstream AND e.finished_at IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM cascades c
      WHERE c.kind = 'dependents'
        AND c.node = '{p:' || d.partition || '}-' || d.upstream::text
        AND (c.after IS NULL OR '{p:' || d.partition || '}-' || d.downstream::text > c.after));
