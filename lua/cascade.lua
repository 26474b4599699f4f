-- baton_cascade: scheduler pass; continues the walks that did not fit in
-- the call that started them, oldest queued first, visiting at most `limit`
-- children and dependents in all (each queued place counts at least one):
-- cancels below a node (telling the dependents of what they cancel), the
-- dependents of a finished node, and pauses and resumes below a node
-- (nothing finishes in those, so no dependents are told).
-- Mirrors baton_core::raw::cascade::pass_step (the SQL backends' cascade_due).
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: limit, ARGV[2]: now (ms)
-- Returns: { cancelled, places still queued, woken } (cancelled: the
--   executions cancelled, released, skipped, failed, paused or resumed;
--   woken: the lanes of the executions that became waiting, as woken_reply)
redis.register_function('baton_cascade', function(keys, args)
  local base = keys[1]
  local limit = tonumber(args[1])
  local snow = s(tonumber(args[2]))
  local entries = redis.call('LRANGE', base .. ':cq', 0, limit - 1)
  local visited, cancelled, done = 0, 0, 0
  local requeue, woken = {}, {}
  local function left_dependents(stack)
    for i = 1, #stack do
      local text = 'unmet'
      if stack[i][3] then text = 'completed' end
      requeue[#requeue + 1] = cmsgpack.pack({ stack[i][1], stack[i][2], text, 'dependents' })
    end
  end
  for _, raw in ipairs(entries) do
    if visited >= limit then break end
    local e = cmsgpack.unpack(raw)
    local budget = limit - visited
    local kind = e[4] or 'cancel'
    if kind == 'cancel' then
      local stack = { { e[1], e[2] } }
      local v, c = cascade_walk(base, stack, budget, e[3], snow, woken)
      for i = 1, #stack do
        requeue[#requeue + 1] = cmsgpack.pack({ stack[i][1], stack[i][2], e[3] })
      end
      local told = woken.told or {}
      woken.told = nil
      local tv, settled = dependents_walk(base, told, budget - v, snow, woken)
      left_dependents(told)
      visited = visited + math.max(v + tv, 1)
      cancelled = cancelled + c + settled
    elseif (kind == 'pause' and e[3] ~= '') or (kind == 'resume' and e[3] == '') then
      local stack = { { e[1], e[2] } }
      local v, c = tree_walk(base, stack, budget, kind, e[3], snow, woken)
      for i = 1, #stack do
        requeue[#requeue + 1] = cmsgpack.pack({ stack[i][1], stack[i][2], e[3], kind })
      end
      visited = visited + math.max(v, 1)
      cancelled = cancelled + c
    elseif kind == 'dependents' and (e[3] == 'completed' or e[3] == 'unmet') then
      local stack = { { e[1], e[2], e[3] == 'completed' } }
      local v, settled = dependents_walk(base, stack, budget, snow, woken)
      left_dependents(stack)
      visited = visited + math.max(v, 1)
      cancelled = cancelled + settled
    else
      error('a queued cascade of kind ' .. tostring(kind) .. ' with ' .. tostring(e[3]) ..
        ' is not one Baton writes')
    end
    done = done + 1
  end
  if done > 0 then redis.call('LTRIM', base .. ':cq', done, -1) end
  for i = 1, #requeue do redis.call('RPUSH', base .. ':cq', requeue[i]) end
  return { cancelled, redis.call('LLEN', base .. ':cq'), woken_reply(base, woken) }
end)
