-- baton_sync_ownership: one heartbeat of an engine node; keeps, releases
-- and takes partitions so every live node owns its fair share.
-- KEYS[1]: the control base B:{ctl}
-- ARGV[1]: node id, ARGV[2]: now (ms), ARGV[3]: new expiry (ms),
-- ARGV[4]: partition count
-- Returns: { live_nodes, target, owned partition... } (ascending)
redis.register_function('baton_sync_ownership', function(keys, args)
  local base = keys[1]
  local node, now, expires = args[1], tonumber(args[2]), args[3]
  local count = tonumber(args[4])
  local nodes, owners, oexp = base .. ':nodes', base .. ':owners', base .. ':oexp'
  redis.call('ZADD', nodes, expires, node)
  redis.call('ZREMRANGEBYSCORE', nodes, '-inf', args[2])
  local live = redis.call('ZCARD', nodes)
  local owner, exp = {}, {}
  local flat = redis.call('HGETALL', owners)
  for i = 1, #flat, 2 do owner[tonumber(flat[i])] = flat[i + 1] end
  flat = redis.call('HGETALL', oexp)
  for i = 1, #flat, 2 do exp[tonumber(flat[i])] = tonumber(flat[i + 1]) end
  local mine = {}
  for p = 0, count - 1 do
    if owner[p] == node and exp[p] and exp[p] > now then mine[#mine + 1] = p end
  end
  local target, owned, release, take = plan_ownership(count, live, mine)
  for _, q in ipairs(release) do
    redis.call('HDEL', owners, q)
    redis.call('HDEL', oexp, q)
  end
  local kept = {}
  for _, q in ipairs(owned) do kept[q] = true end
  local p = 0
  while take > 0 and p < count do
    if not kept[p] and (owner[p] == nil or exp[p] == nil or exp[p] <= now) then
      owned[#owned + 1] = p
      take = take - 1
    end
    p = p + 1
  end
  table.sort(owned)
  local reply = { live, target }
  for i = 1, #owned do
    redis.call('HSET', owners, owned[i], node)
    redis.call('HSET', oexp, owned[i], expires)
    reply[#reply + 1] = owned[i]
  end
  return reply
end)
