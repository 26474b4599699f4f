-- Pause, resume and replay (rfcs/0009). A paused execution remembers the
-- state resume returns it to (`paused_from`) and, when a tree pause
-- reached it, the ancestor whose pause it was (`paused_via`). They count
-- only while the execution is `paused` (one that finished while paused may
-- keep them). Attempts gain the outcome `paused` (an
-- attempt an operator stopped; it counts as no failure), which needs the
-- attempts table rebuilt, as SQLite cannot alter a CHECK constraint.
-- Paused lanes are rows of `paused_lanes`, read by every claim.
ALTER TABLE executions ADD COLUMN paused_from TEXT
    CHECK (paused_from IN ('waiting', 'delayed', 'blocked', 'suspended'));
ALTER TABLE executions ADD COLUMN paused_via TEXT;

CREATE TABLE attempts_v10 (
    execution_uuid   BLOB    NOT NULL,
    number           INTEGER NOT NULL CHECK (number >= 1),
    worker_id        TEXT    NOT NULL,
    nonce            INTEGER NOT NULL,
    started_at       INTEGER NOT NULL,
    ended_at         INTEGER,
    outcome          TEXT CHECK (outcome IN
                         ('completed', 'failed', 'lease_expired', 'cancelled', 'expired', 'released',
                          'paused')),
    error            TEXT,
    PRIMARY KEY (execution_uuid, number),
    CHECK ((outcome IS NULL) = (ended_at IS NULL))
) STRICT, WITHOUT ROWID;
INSERT INTO attempts_v10 SELECT * FROM attempts;
DROP TABLE attempts;
ALTER TABLE attempts_v10 RENAME TO attempts;

CREATE TABLE paused_lanes (
    namespace TEXT    NOT NULL,
    lane      TEXT    NOT NULL,
    paused_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, lane)
) STRICT, WITHOUT ROWID;

-- The cascade queue also holds tree pauses (`pause`, `reason` the pausing
-- ancestor's id) and tree resumes (`resume`, `reason` empty).
CREATE TABLE cascades_v10 (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    partition INTEGER NOT NULL CHECK (partition BETWEEN 0 AND 1023),
    node      TEXT    NOT NULL,
    after     TEXT,
    reason    TEXT    NOT NULL,
    kind      TEXT    NOT NULL DEFAULT 'cancel'
        CHECK (kind IN ('cancel', 'dependents', 'pause', 'resume'))
);
INSERT INTO cascades_v10 (seq, partition, node, after, reason, kind)
    SELECT seq, partition, node, after, reason, kind FROM cascades;
DROP TABLE cascades;
ALTER TABLE cascades_v10 RENAME TO cascades;
CREATE INDEX cascades_by_partition ON cascades (partition, seq);

-- A walk now marks each edge `counted` as it tells the dependent, so an
-- upstream that ends a second time (after a replay) tells only dependents
-- created since. Edges of upstreams that finished before this version were
-- told already, except those a queued walk of the upstream's dependents has
-- still to reach (above its `after`; all of them without one): that walk
-- marks them when it tells them.
UPDATE dependencies SET counted = 1
WHERE counted = 0
  AND upstream IN (SELECT uuid FROM executions WHERE finished_at IS NOT NULL)
  AND NOT EXISTS (
      SELECT 1 FROM cascades c
      WHERE c.kind = 'dependents'
        AND c.node = '{p:' || dependencies.partition || '}-' || lower(substr(hex(dependencies.upstream), 1, 8) || '-' || substr(hex(dependencies.upstream), 9, 4) || '-' || substr(hex(dependencies.upstream), 13, 4) || '-' || substr(hex(dependencies.upstream), 17, 4) || '-' || substr(hex(dependencies.upstream), 21, 12))
        AND (c.after IS NULL OR '{p:' || dependencies.partition || '}-' || lower(substr(hex(dependencies.downstream), 1, 8) || '-' || substr(hex(dependencies.downstream), 9, 4) || '-' || substr(hex(dependencies.downstream), 13, 4) || '-' || substr(hex(dependencies.downstream), 17, 4) || '-' || substr(hex(dependencies.downstream), 21, 12)) > c.after));
