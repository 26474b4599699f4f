-- 0016: a submission calls the fair-turn function only in a lane a fair
-- limit covers.
--
-- Until now every row inserted as `waiting` called `baton_fair_turn()`,
-- which looked `limits` up for it: a plpgsql call and a probe per row,
-- paid by every namespace whether it had a fair limit or not (about a
-- sixth of the steady throughput). A subquery may not stand in a WHEN
-- clause, so the lookup moves into the inserting statement instead:
-- `create.sql` reads the fair limits of its batch's namespaces once and
-- marks a row of a covered lane with an empty `fair_key`, and only marked
-- rows call the function, which gives the real key and the turn.
--
-- The statement holds `limits` (ACCESS SHARE) from before its read until
-- its transaction ends, as the function's own read did, so a `set_limit`
-- either committed before the marks were read or waits for the rows to be
-- written: a new fair limit never misses a submission, and a removed one
-- is noticed by the function, which clears the mark.
--
-- Moves into `waiting` by update (a retry, a promotion, a release, a
-- resume, a replay, …) keep calling the function on every move: they are
-- spread over many statements and not on the steady path.
DROP TRIGGER executions_fair_created ON executions;

CREATE TRIGGER executions_fair_created
    BEFORE INSERT ON executions
    FOR EACH ROW
    WHEN (NEW.state = 'waiting' AND NEW.fair_key IS NOT NULL)
    EXECUTE FUNCTION baton_fair_turn();
