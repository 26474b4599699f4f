-- baton_promote: scheduler pass; delayed executions whose run_at has come
-- become waiting, earliest run_at first.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: now (ms), ARGV[2]: limit
-- Returns: { processed, next_due|'', woken }; woken also hands out up to 100
--   limit releases recorded in `lrel` that their caller never applied (it
--   stopped between its call and applying them), for the backend to apply.
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
  local pending = redis.call('HSCAN', base .. ':lrel', 0, 'COUNT', 100)[2]
  if #pending > 0 then
    local released = {}
    for i = 1, #pending, 2 do released[#released + 1] = '!' .. pending[i + 1] .. ' ' .. pending[i] end
    woken.released = released
  end
  return { #due, first_score(base .. ':delayed'), woken_reply(base, woken) }
end)
