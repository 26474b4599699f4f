-- baton_replay: a failed, cancelled, expired or skipped execution runs
-- again (a dead-letter requeue): waiting, eligible now, with a fresh
-- attempt budget; a flow member re-opens its flow, a root leaves `done` or
-- `kept`, its dependents are not told again, and while the partition's
-- cascade queue holds work it answers 'contention' (see replay_one in
-- common.lua, shared with baton_replay_units, for every change it makes).
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: uuid, ARGV[2]: now (ms)
-- Returns: { 'ok', woken, record }, { 'not_found' },
--   { 'conflict', state, reason } for any other state, or
--   { 'contention' } while the cascade queue holds work.
-- Its check mirrors baton_core::raw::rules::check_replay, the deadline it
-- keeps baton_core::raw::rules::replay_deadline.

redis.register_function('baton_replay', function(keys, args)
  local base = keys[1]
  local woken = {}
  local refused, record = replay_one(base, args[1], tonumber(args[2]), woken)
  if refused then return refused end
  return { 'ok', woken_reply(base, woken), record }
end)
