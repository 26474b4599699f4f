-- baton_cascade: scheduler pass; continues cascades whose subtree did not
-- fit in their cancel's call, oldest queued first, visiting at most `limit`
-- children in all (each queued place counts at least one).
-- Mirrors baton_core::raw::cascade::pass_step (the SQL backends' cascade_due).
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: limit, ARGV[2]: now (ms)
-- Returns: { cancelled, places still queued, woken } (woken: the lanes of
--   parents released by the cancels, as woken_reply)
redis.register_function('baton_cascade', function(keys, args)
  local base = keys[1]
  local limit = tonumber(args[1])
  local snow = s(tonumber(args[2]))
  local entries = redis.call('LRANGE', base .. ':cq', 0, limit - 1)
  local visited, cancelled, done = 0, 0, 0
  local requeue, woken = {}, {}
  for _, raw in ipairs(entries) do
    if visited >= limit then break end
    local e = cmsgpack.unpack(raw)
    local stack = { { e[1], e[2] } }
    local v, c = cascade_walk(base, stack, limit - visited, e[3], snow, woken)
    visited = visited + math.max(v, 1)
    cancelled = cancelled + c
    done = done + 1
    for i = 1, #stack do
      requeue[#requeue + 1] = cmsgpack.pack({ stack[i][1], stack[i][2], e[3] })
    end
  end
  if done > 0 then redis.call('LTRIM', base .. ':cq', done, -1) end
  for i = 1, #requeue do redis.call('RPUSH', base .. ':cq', requeue[i]) end
  return { cancelled, redis.call('LLEN', base .. ':cq'), woken_reply(base, woken) }
end)
