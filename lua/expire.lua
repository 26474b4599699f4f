-- baton_expire: scheduler pass; non-terminal executions whose deadline has
-- passed become expired (a running attempt ends as expired), earliest
-- deadline first.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: now (ms), ARGV[2]: limit
-- Returns: { processed, next_due|'' }
redis.register_function('baton_expire', function(keys, args)
  local base = keys[1]
  local now = tonumber(args[1])
  local due = redis.call('ZRANGEBYSCORE', base .. ':deadlines', '-inf', args[1], 'LIMIT', 0, args[2])
  local woken = {}
  for _, uuid in ipairs(due) do
    local h = load(base, uuid)
    if h and not TERMINAL[h.st] then
      local snow = s(now)
      if h.st == 'running' then
        local a = 'a' .. h.att
        h[a .. 'e'], h[a .. 'o'] = snow, 'expired'
      end
      h.fa, h.ua = snow, snow
      drop_lease(h)
      move(base, uuid, h, 'expired', woken)
      save(base, uuid, h)
    else
      redis.call('ZREM', base .. ':deadlines', uuid)
    end
  end
  return { #due, first_score(base .. ':deadlines') }
end)
