-- baton_promote: scheduler pass; delayed executions whose run_at has come
-- become waiting, earliest run_at first.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: now (ms), ARGV[2]: limit
-- Returns: { processed, next_due|'', woken }
redis.register_function('baton_promote', function(keys, args)
  local base = keys[1]
  local now = tonumber(args[1])
  local due = redis.call('ZRANGEBYSCORE', base .. ':delayed', '-inf', args[1], 'LIMIT', 0, args[2])
  local woken = {}
  for _, uuid in ipairs(due) do
    local h = load(base, uuid)
    if h and h.st == 'delayed' then
      h.ua = s(now)
      move(base, uuid, h, 'waiting', woken)
      save(base, uuid, h)
    else
      redis.call('ZREM', base .. ':delayed', uuid)
    end
  end
  return { #due, first_score(base .. ':delayed'), woken_reply(base, woken) }
end)
