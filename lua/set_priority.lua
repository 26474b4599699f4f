-- baton_set_priority: changes the priority of an execution that has not
-- finished. A waiting one is reordered among its lane at once: its member
-- in the waiting set is replaced by one with the new priority and the same
-- ready time, so it keeps its place in time among equal priorities. No
-- state change: `ua` does not move. In a lane a fair limit orders, it takes
-- a turn at its new priority instead (its ready time is its turn: see
-- fair_place in common.lua). A change is recorded in its history
-- (an event 'priority_changed').
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: uuid, ARGV[2]: the priority, ARGV[3]: now (ms), ARGV[4]: the
-- event's detail (baton_core::raw::rules::priority_detail)
-- Returns: { 'ok', woken, record } (woken: never any lane), { 'not_found' }
--   or { 'conflict', state, reason } for a finished execution. The priority
--   it already has changes nothing.
-- Its check mirrors baton_core::raw::rules::check_priority_edit.
redis.register_function('baton_set_priority', function(keys, args)
  local base, uuid = keys[1], args[1]
  local h = load(base, uuid)
  if not h then return { 'not_found' } end
  local why = priority_edit_refusal(h.st)
  if why then return { 'conflict', h.st, why } end
  local pri = tonumber(args[2])
  if tonumber(h.pri) == pri then return { 'ok', { 0 }, cmsgpack.pack(h) } end
  if h.st == 'waiting' then
    unqueue(base, uuid, h)
    h.pri = s(pri)
    queue(base, uuid, h, nil)
  else
    h.pri = s(pri)
  end
  append_event(base, uuid, h, { t = args[3], k = 'priority_changed', a = h.att or '0',
    d = args[4] })
  return { 'ok', { 0 }, save(base, uuid, h) }
end)
