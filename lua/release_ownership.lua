-- baton_release_ownership: a node leaves; its partitions are freed at once.
-- KEYS[1]: the control base B:{ctl}
-- ARGV[1]: node id, ARGV[2]: partition count
-- Returns: the number of partitions freed.
redis.register_function('baton_release_ownership', function(keys, args)
  local base = keys[1]
  local node = args[1]
  local owners, oexp = base .. ':owners', base .. ':oexp'
  local flat = redis.call('HGETALL', owners)
  local freed = 0
  for i = 1, #flat, 2 do
    if flat[i + 1] == node then
      redis.call('HDEL', owners, flat[i])
      redis.call('HDEL', oexp, flat[i])
      freed = freed + 1
    end
  end
  redis.call('ZREM', base .. ':nodes', node)
  return freed
end)
