-- baton_expire: scheduler pass; non-terminal executions whose deadline has
-- passed become expired (a running attempt ends as expired), earliest
-- deadline first (a paused one too: it stays in `deadlines` while paused).
-- The non-terminal descendants of each are cancelled in the
-- same call (a shared budget of children visited; the rest is queued for
-- baton_cascade), with the reason ARGV[3] .. <hyphenated uuid> .. ARGV[4];
-- their dependents, and those of what the walks cancel, are told within
-- the same budget.
-- Mirrors the SQL backends' expire_deadlines and baton_core::raw::cascade::expired.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: now (ms), ARGV[2]: limit, ARGV[3]: reason before the ancestor's
-- uuid, ARGV[4]: reason after it, ARGV[5]: cascade budget
-- Returns: { processed, next_due|'', woken } (woken: lanes of parents
--   released by what finished, as woken_reply)
redis.register_function('baton_expire', function(keys, args)
  local base = keys[1]
  local now = tonumber(args[1])
  local snow = s(now)
  local due = redis.call('ZRANGEBYSCORE', base .. ':deadlines', '-inf', args[1], 'LIMIT', 0, args[2])
  local woken, expired = {}, {}
  for _, uuid in ipairs(due) do
    local h = load(base, uuid)
    if h and not TERMINAL[h.st] then
      if h.st == 'running' then
        local a = 'a' .. h.att
        h[a .. 'e'], h[a .. 'o'] = snow, 'expired'
      end
      h.fa, h.ua = snow, snow
      drop_lease(h)
      move(base, uuid, h, 'expired', woken)
      save(base, uuid, h)
      expired[#expired + 1] = uuid
    else
      redis.call('ZREM', base .. ':deadlines', uuid)
    end
  end
  local budget = tonumber(args[5])
  -- Their dependents first (an expired upstream did not complete), then
  -- their descendants, each walk telling the dependents of what it cancelled.
  budget = budget - tell_dependents(base, budget, snow, woken)
  for _, uuid in ipairs(expired) do
    local why = args[3] .. hyphenated(uuid) .. args[4]
    local stack = { { uuid, '' } }
    local visited = cascade_walk(base, stack, budget, why, snow, woken)
    cascade_queue(base, stack, why)
    budget = budget - visited
    budget = budget - tell_dependents(base, budget, snow, woken)
  end
  return { #due, first_score(base .. ':deadlines'), woken_reply(base, woken) }
end)
