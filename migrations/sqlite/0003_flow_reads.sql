-- Flows: a child's key among its parent's children (unique per parent), the
-- indexes that read a flow (children of a parent, members of a root, both in
-- creation order), and the queue of cancels whose subtree did not fit in
-- their own transaction (worked off by the scheduler's cascade pass).
--
-- Retention works on flows: a member (root set) is never trimmed on its own,
-- only with its root, so trim reads roots alone (`root IS NULL`); a root
-- whose flow still has an unfinished member is looked at again a retention
-- later, from `trim_at` (NULL: from `finished_at`).
ALTER TABLE executions ADD COLUMN child_key TEXT;
CREATE UNIQUE INDEX executions_child_key
    ON executions (parent, child_key) WHERE child_key IS NOT NULL;
CREATE INDEX executions_children ON executions (parent, uuid) WHERE parent IS NOT NULL;
CREATE INDEX executions_flow ON executions (root, uuid) WHERE root IS NOT NULL;
CREATE INDEX executions_flow_open ON executions (root) WHERE root IS NOT NULL AND finished_at IS NULL;
ALTER TABLE executions ADD COLUMN trim_at INTEGER;
DROP INDEX executions_retention;
CREATE INDEX executions_retention
    ON executions (partition, (COALESCE(trim_at, finished_at)), uuid)
    WHERE finished_at IS NOT NULL AND root IS NULL;

-- One place a cascade has still to visit: the children of `node` (text id)
-- above `after` (text id; NULL = all of them) and their subtrees.
CREATE TABLE cascades (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    partition INTEGER NOT NULL CHECK (partition BETWEEN 0 AND 1023),
    node      TEXT    NOT NULL,
    after     TEXT,
    reason    TEXT    NOT NULL
);
CREATE INDEX cascades_by_partition ON cascades (partition, seq);
