-- baton_limit_define: writes (or removes) one limit's definition in its
-- namespace's limit slot and bumps the namespace's limit generation, so a
-- claim admitted before it and claiming after the partitions' copies were
-- rewritten is refused (see baton_limit_claim). With `forget` the runs
-- and window claims counted under the limit's keys go first (its key,
-- lane or namespace changed, or it is removed): the sets of every value its
-- value index names, which is every set it has.
-- KEYS[1]: the namespace's limit base B:{lim:<ns>}
-- ARGV[1]: the limit's name, ARGV[2]: its definition (a JSON object, see
-- the key schema; '': remove it), ARGV[3]: forget ('1' | '0')
-- Returns: the generation after it.
redis.register_function('baton_limit_define', function(keys, args)
  local lim = keys[1]
  local name = args[1]
  if args[3] == '1' then
    local index = lim .. ':v:' .. name
    local values = redis.call('ZRANGE', index, 0, -1)
    for i = 1, #values do
      local set = name .. '/' .. values[i]
      redis.call('DEL', lim .. ':r:' .. set, lim .. ':q:' .. set)
    end
    redis.call('DEL', index)
  end
  if args[2] == '' then
    redis.call('HDEL', lim .. ':def', name)
  else
    redis.call('HSET', lim .. ':def', name, args[2])
  end
  return redis.call('INCR', lim .. ':gen')
end)
