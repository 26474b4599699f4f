-- baton_replay_units: one unit of a bulk replay
-- (AdminBackend::replay_units). Each id, in order, is replayed exactly as
-- baton_replay would replay it (replay_one in common.lua). An id refused
-- (missing, not failed, cancelled, expired or skipped, or 'contention'
-- while the partition's cascade queue holds work) is judged before
-- anything is written for it, so it changes nothing, and the ids after it
-- go on. A replay queues no cascade work, so every id meets the queue as
-- the unit found it. The lanes the unit woke are answered once, for all
-- its ids.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: now (ms), then the uuids
-- Returns: { woken, part... } with woken as woken_reply and one part per
--   id, in order: { 'ok' }, { 'not_found' }, { 'conflict', state, reason }
--   or { 'contention' }.
-- Its check mirrors baton_core::raw::rules::check_replay.
redis.register_function('baton_replay_units', function(keys, args)
  local base = keys[1]
  local now = tonumber(args[1])
  local woken = {}
  local reply = { false }
  for i = 2, #args do
    local refused = replay_one(base, args[i], now, woken)
    reply[#reply + 1] = refused or { 'ok' }
  end
  reply[1] = woken_reply(base, woken)
  return reply
end)
