-- Fairness (rfcs/0011): a fair limit shares claims out between its keys.
-- The same schema version as migrations/postgres/0015_fairness.sql.
ALTER TABLE limits ADD COLUMN fair INTEGER NOT NULL DEFAULT 0 CHECK (fair IN (0, 1));

-- The key an execution takes turns under, stamped when it enters
-- `waiting` in a lane a fair limit orders (NULL otherwise).
ALTER TABLE executions ADD COLUMN fair_key TEXT;

-- A key's latest turn at a priority in a lane: one probe from the end.
CREATE INDEX executions_fair_turns
    ON executions (namespace, lane, priority, fair_key, ready_at)
    WHERE state = 'waiting' AND fair_key IS NOT NULL;

-- Every way into `waiting` (a submission, a retry, a promotion, a release,
-- a resume, a signal, a dependency or children settling, a replay) and
-- a change of priority while waiting give the execution its turn, as
-- baton_core::raw::rules::fair_turn says: `ready_at` — the claim order
-- within a priority — becomes the turn. Triggers, so that no path that
-- moves work into `waiting`, now or later, can forget it. A namespace
-- without fair limits pays one probe of `limits` per move.
--
-- The key: the first fair limit by name covering the lane; its tag's
-- value ('' without the tag), the kind or the lane.
-- The turn: after the key's latest waiting turn at the priority, never
-- before the lane's head at the priority; in an empty lane, ready_at as
-- the move set it.
CREATE TRIGGER executions_fair_created AFTER INSERT ON executions
WHEN NEW.state = 'waiting' AND EXISTS (
    SELECT 1 FROM limits l WHERE l.fair = 1 AND l.namespace = NEW.namespace
        AND (l.lane = '' OR l.lane = NEW.lane))
BEGIN
    UPDATE executions SET fair_key = (
        SELECT CASE l.key WHEN 'kind' THEN NEW.kind WHEN 'lane' THEN NEW.lane
            ELSE COALESCE(json_extract(NEW.tags, '$."' || substr(l.key, 5) || '"'), '') END
        FROM limits l WHERE l.fair = 1 AND l.namespace = NEW.namespace
            AND (l.lane = '' OR l.lane = NEW.lane)
        ORDER BY l.name LIMIT 1)
    WHERE uuid = NEW.uuid;
    UPDATE executions SET ready_at = (
        SELECT CASE WHEN t.last IS NOT NULL THEN MAX(t.last + 1, COALESCE(t.head, t.last + 1))
            ELSE COALESCE(t.head, NEW.ready_at) END
        FROM (SELECT
            (SELECT o.ready_at FROM executions o
                WHERE o.namespace = e.namespace AND o.lane = e.lane AND o.priority = e.priority
                    AND o.fair_key = e.fair_key AND o.fair_key IS NOT NULL
                    AND o.state = 'waiting' AND o.uuid <> e.uuid
                ORDER BY o.ready_at DESC LIMIT 1) AS last,
            (SELECT o.ready_at FROM executions o
                WHERE o.namespace = e.namespace AND o.lane = e.lane AND o.priority = e.priority
                    AND o.state = 'waiting' AND o.uuid <> e.uuid
                ORDER BY o.ready_at LIMIT 1) AS head
            FROM executions e WHERE e.uuid = NEW.uuid) AS t)
    WHERE uuid = NEW.uuid;
END;

CREATE TRIGGER executions_fair_moved AFTER UPDATE OF state, priority ON executions
WHEN NEW.state = 'waiting' AND (OLD.state <> 'waiting' OR OLD.priority <> NEW.priority)
    AND EXISTS (
    SELECT 1 FROM limits l WHERE l.fair = 1 AND l.namespace = NEW.namespace
        AND (l.lane = '' OR l.lane = NEW.lane))
BEGIN
    UPDATE executions SET fair_key = (
        SELECT CASE l.key WHEN 'kind' THEN NEW.kind WHEN 'lane' THEN NEW.lane
            ELSE COALESCE(json_extract(NEW.tags, '$."' || substr(l.key, 5) || '"'), '') END
        FROM limits l WHERE l.fair = 1 AND l.namespace = NEW.namespace
            AND (l.lane = '' OR l.lane = NEW.lane)
        ORDER BY l.name LIMIT 1)
    WHERE uuid = NEW.uuid;
    UPDATE executions SET ready_at = (
        SELECT CASE WHEN t.last IS NOT NULL THEN MAX(t.last + 1, COALESCE(t.head, t.last + 1))
            ELSE COALESCE(t.head, NEW.ready_at) END
        FROM (SELECT
            (SELECT o.ready_at FROM executions o
                WHERE o.namespace = e.namespace AND o.lane = e.lane AND o.priority = e.priority
                    AND o.fair_key = e.fair_key AND o.fair_key IS NOT NULL
                    AND o.state = 'waiting' AND o.uuid <> e.uuid
                ORDER BY o.ready_at DESC LIMIT 1) AS last,
            (SELECT o.ready_at FROM executions o
                WHERE o.namespace = e.namespace AND o.lane = e.lane AND o.priority = e.priority
                    AND o.state = 'waiting' AND o.uuid <> e.uuid
                ORDER BY o.ready_at LIMIT 1) AS head
            FROM executions e WHERE e.uuid = NEW.uuid) AS t)
    WHERE uuid = NEW.uuid;
END;
