-- baton_cancel_units: one unit of a bulk cancel
-- (AdminBackend::cancel_units). Each id, in order, is cancelled exactly as
-- baton_cancel with the same arguments would cancel it (cancel_one in
-- common.lua: the record, its indexes and counts, its history, the
-- dependents told, its tree with scope tree, what the walk did not reach
-- queued for baton_cascade), each with the whole cascade budget of a
-- single cancel, until the unit has spent `budget` (1 per id it acted on,
-- plus the children and dependents its walks visited, cancelled or not,
-- so a unit is bounded as a single cancel is); the ids after that answer
-- 'not_reached', untouched. An id refused (missing, or
-- finished otherwise than cancelled) is judged before anything is written
-- for it, so it changes nothing, and the ids after it go on. The lanes the
-- unit woke are answered once, for all its ids.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: now (ms), ARGV[2]: has reason (1|0), ARGV[3]: reason,
-- ARGV[4]: scope tree (1|0), ARGV[5]: cascade budget (children a walk
-- visits; what the unit spends before it stops),
-- then per id: its uuid, and the reason stored on the descendants its
-- cancel reaches (it names the id)
-- Returns: { woken, part... } with woken as woken_reply and one part per
--   id, in order: { 'ok', 1 } (it had not finished; now cancelled),
--   { 'ok', 0 } (already cancelled: kept as it is), { 'not_reached' },
--   { 'not_found' } or { 'conflict', state, reason }.
-- Its verdict per id mirrors baton_core::raw::rules::cancel_acts.
redis.register_function('baton_cancel_units', function(keys, args)
  local base = keys[1]
  local snow = s(tonumber(args[1]))
  local why = nil
  if args[2] == '1' then why = args[3] end
  local tree = args[4] == '1'
  local budget = tonumber(args[5])
  local limit = math.max(budget, 1)
  local spent = 0
  local woken = {}
  local reply = { false }
  for i = 6, #args - 1, 2 do
    local part
    if spent >= limit then
      part = { 'not_reached' }
    else
      local refused, _, _, _, acted, visited = cancel_one(base, args[i], why, tree, args[i + 1],
        budget, snow, woken)
      if refused then
        part = refused
      elseif acted then
        spent = spent + 1 + visited
        part = { 'ok', 1 }
      else
        spent = spent + visited
        part = { 'ok', 0 }
      end
    end
    reply[#reply + 1] = part
  end
  reply[1] = woken_reply(base, woken)
  return reply
end)
