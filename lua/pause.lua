-- baton_pause: pauses an execution and, with scope tree, every descendant
-- that has neither finished nor been paused (bounded; the rest is queued
-- for baton_cascade as kind 'pause'). A paused execution remembers the
-- state resume returns it to (pf) and, reached by a tree pause, the
-- ancestor whose pause it was (pv); it leaves every index that would
-- claim, promote or time it out. A running one's attempt ends 'paused'
-- (its lease dead at once, no attempt spent).
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: uuid, ARGV[2]: now (ms), ARGV[3]: its id text (what the
-- descendants it reaches remember as the pausing ancestor), ARGV[4]: scope
-- tree (1|0), ARGV[5]: cascade budget (children visited)
-- Returns: { 'ok', woken, record, paused descendants, pending (1|0) },
--   { 'not_found' } or { 'conflict', state, reason } for a finished
--   execution with scope execution (with scope tree it stays as it is and
--   its descendants are reached). Pausing a paused execution keeps it
--   unchanged (its descendants are still reached with scope tree).
-- Its verdict mirrors baton_core::raw::rules::pause_in_scope.
redis.register_function('baton_pause', function(keys, args)
  local base, uuid = keys[1], args[1]
  local snow = s(tonumber(args[2]))
  local h = load(base, uuid)
  if not h then return { 'not_found' } end
  local from, why = pause_verdict(h.st)
  if from == nil then
    -- With scope tree a finished execution stays as it is and its live
    -- descendants are still reached (rules::pause_in_scope).
    if args[4] ~= '1' then return { 'conflict', h.st, why } end
    from = false
  end
  local woken = {}
  local record
  if from then
    record = pause_record(base, uuid, h, from, nil, snow, woken)
  else
    record = cmsgpack.pack(h)
  end
  local cascaded, pending = 0, 0
  if args[4] == '1' then
    local stack = { { uuid, '' } }
    local _, c = tree_walk(base, stack, tonumber(args[5]), 'pause', args[3], snow, woken)
    cascaded = c
    if #stack > 0 then
      tree_queue(base, stack, 'pause', args[3])
      pending = 1
    end
  end
  return { 'ok', woken_reply(base, woken), record, cascaded, pending }
end)
