-- baton_limit_adopt: counts runs that already run under a limit set_limit
-- just set (found by baton_limit_running): each becomes a holder in its
-- key's set until its lapse (a later lapse it has is kept). set_limit then
-- marks them in their partitions (baton_limit_mark) and frees those that
-- ended meanwhile.
-- KEYS[1]: the namespace's limit base B:{lim:<ns>}
-- ARGV[1]: the limit's name,
-- then per run three values: holder (<uuid>:<attempt>), lapse (ms: its
-- lease's expiry plus the backend's grace), key value
-- Returns: how many runs it counted.
redis.register_function('baton_limit_adopt', function(keys, args)
  local lim = keys[1]
  local name = args[1]
  local n = 0
  for i = 2, #args - 2, 3 do
    local holder, lapse = args[i], args[i + 1]
    local set = hold_in(lim, name, args[i + 2], holder, lapse)
    redis.call('ZADD', lim .. ':hold', 'GT', lapse, holder)
    local held = redis.call('HGET', lim .. ':hk', holder)
    if not held then
      redis.call('HSET', lim .. ':hk', holder, set)
    else
      local found = false
      for entry in string.gmatch(held, '[^\n]+') do
        if entry == set then found = true end
      end
      if not found then redis.call('HSET', lim .. ':hk', holder, held .. '\n' .. set) end
    end
    n = n + 1
  end
  return n
end)
