-- Fair limits (rfcs/0011), the same schema version as
-- migrations/sqlite/0015_fairness.sql: a fair limit shares claims out
-- between its keys. Adding the columns with a constant default (or none)
-- rewrites no row.
ALTER TABLE limits ADD COLUMN fair boolean NOT NULL DEFAULT false;

-- The key an execution takes turns under, stamped when it enters
-- `waiting` in a lane a fair limit orders (NULL otherwise).
ALTER TABLE executions ADD COLUMN fair_key text;

-- A key's latest turn at a priority in a lane: one probe from the end of
-- each child. Only rows a fair limit ordered are in it, so a deployment
-- without fair limits keeps it empty and pays nothing for it.
CREATE INDEX executions_fair_turns
    ON executions (namespace, lane, priority, fair_key, ready_at)
    WHERE state = 'waiting' AND fair_key IS NOT NULL;

-- Every way into `waiting` (a submission, a retry, a promotion, a release,
-- a resume, a signal, a dependency or children settling, a replay) and a
-- change of priority while waiting give the execution its turn, as
-- baton_core::raw::rules::fair_turn says: `ready_at` — the claim order
-- within a priority — becomes the turn. A trigger, so that no statement
-- that moves work into `waiting`, now or later, can forget it; BEFORE the
-- row is written, so the turn costs no second write of the row.
--
-- The key: the first fair limit by name covering the lane; its tag's
-- value ('' without the tag), the kind or the lane. The turn: after the
-- key's latest waiting turn at the priority, never before the lane's head
-- at the priority; in an empty lane, ready_at as the move set it. Both
-- probes read the whole lane (every child, merged), as claims do, so turns
-- are the lane's, not a partition's.
--
-- A statement moving several rows into `waiting` gives them successive
-- turns: the function is volatile, so each of its queries sees the rows
-- the same statement wrote before (in the order the statement visits
-- them). Two transactions moving work of one key at once may compute the
-- same turn (neither sees the other's uncommitted rows); the tie is broken
-- by id as every tie of `ready_at` is, so no lock is taken for it.
--
-- Cost without fair limits: the WHEN clauses (evaluated before a call is
-- queued) keep every other write — claims, renewals, completions — from
-- calling the function at all; a move into `waiting` pays one call and one
-- probe of `limits_by_namespace` (the table holds at most 100 rows). A
-- subquery may not stand in a WHEN clause, so that probe cannot move
-- there. Reading `limits` takes its ACCESS SHARE lock until the moving
-- transaction ends: `set_limit` (ACCESS EXCLUSIVE, 3 s at most) waits for
-- those in flight, and moves after it wait for it and see the new limits.
--
-- The function names tables unqualified: they resolve in the session's
-- search_path, the deployment's schema (see migration 0011).
CREATE FUNCTION baton_fair_turn() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    fair_by text;
    head bigint;
    last bigint;
BEGIN
    SELECT l.key INTO fair_by
    FROM limits l
    WHERE l.namespace = NEW.namespace AND l.fair AND (l.lane = '' OR l.lane = NEW.lane)
    ORDER BY l.name
    LIMIT 1;
    IF NOT FOUND THEN
        -- A key stamped under a fair limit since removed means nothing
        -- now. Assigned only then: a row left as it came is written
        -- without being formed again.
        IF NEW.fair_key IS NOT NULL THEN
            NEW.fair_key := NULL;
        END IF;
        RETURN NEW;
    END IF;
    NEW.fair_key := CASE fair_by
        WHEN 'kind' THEN NEW.kind
        WHEN 'lane' THEN NEW.lane
        ELSE COALESCE(NEW.tags ->> substr(fair_by, 5), '')
    END;
    SELECT o.ready_at INTO last
    FROM executions o
    WHERE o.namespace = NEW.namespace AND o.lane = NEW.lane AND o.priority = NEW.priority
      AND o.fair_key = NEW.fair_key AND o.state = 'waiting' AND o.fair_key IS NOT NULL
      AND o.uuid <> NEW.uuid
    ORDER BY o.ready_at DESC
    LIMIT 1;
    SELECT o.ready_at INTO head
    FROM executions o
    WHERE o.namespace = NEW.namespace AND o.lane = NEW.lane AND o.priority = NEW.priority
      AND o.state = 'waiting' AND o.uuid <> NEW.uuid
    ORDER BY o.ready_at
    LIMIT 1;
    NEW.ready_at := CASE
        WHEN last IS NOT NULL THEN GREATEST(last + 1, head)
        ELSE COALESCE(head, NEW.ready_at)
    END;
    RETURN NEW;
END
$$;

-- Row triggers on the partitioned parent are cloned to every child.
CREATE TRIGGER executions_fair_created
    BEFORE INSERT ON executions
    FOR EACH ROW
    WHEN (NEW.state = 'waiting')
    EXECUTE FUNCTION baton_fair_turn();

CREATE TRIGGER executions_fair_moved
    BEFORE UPDATE OF state, priority ON executions
    FOR EACH ROW
    WHEN (NEW.state = 'waiting' AND (OLD.state <> 'waiting' OR OLD.priority <> NEW.priority))
    EXECUTE FUNCTION baton_fair_turn();
