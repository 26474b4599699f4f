-- baton_cancel: cancels a non-terminal execution.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: uuid, ARGV[2]: has reason (1|0), ARGV[3]: reason, ARGV[4]: now (ms)
-- Returns: as baton_complete. Cancelling a cancelled execution answers its
--   snapshot unchanged; any other terminal state is a 'conflict'.
redis.register_function('baton_cancel', function(keys, args)
  local base, uuid = keys[1], args[1]
  local now = tonumber(args[4])
  local h = load(base, uuid)
  if not h then return { 'not_found' } end
  if h.st == 'cancelled' then return { 'ok', { seq(base) }, snapshot(base, uuid) } end
  if TERMINAL[h.st] then return { 'conflict', h.st, 'it already finished' } end
  local key = base .. ':e:' .. uuid
  if h.st == 'running' then
    local a = 'a' .. h.att
    redis.call('HSET', key, a .. 'e', s(now), a .. 'o', 'cancelled')
  end
  if args[2] == '1' then redis.call('HSET', key, 'cr', args[3]) end
  h.fa = now
  redis.call('HSET', key, 'fa', s(now), 'ua', s(now))
  drop_lease(base, uuid, h)
  local woken = {}
  move(base, uuid, h, 'cancelled', woken)
  return { 'ok', woken_reply(base, woken), snapshot(base, uuid) }
end)
