-- baton_trim: scheduler pass; deletes terminal executions that finished at
-- or before the cutoff, with their attempts, index entries and idempotency
-- key, earliest finished first.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: cutoff (ms; now - retention), ARGV[2]: limit
-- Returns: { processed, oldest remaining finished_at|'' }
redis.register_function('baton_trim', function(keys, args)
  local base = keys[1]
  local doomed = redis.call('ZRANGEBYSCORE', base .. ':done', '-inf', args[1], 'LIMIT', 0, args[2])
  for _, uuid in ipairs(doomed) do
    local h = load(base, uuid)
    if h then
      if h.ik then
        local field = h.ns .. '/' .. h.lane .. '/' .. h.ik
        if redis.call('HGET', base .. ':idem', field) == uuid then
          redis.call('HDEL', base .. ':idem', field)
        end
      end
      redis.call('ZREM', base .. ':ns:' .. h.ns, uuid)
      redis.call('ZREM', base .. ':deadlines', uuid)
      count(base, h, h.st, -1)
      redis.call('DEL', base .. ':e:' .. uuid, base .. ':p:' .. uuid)
    end
    redis.call('ZREM', base .. ':done', uuid)
  end
  return { #doomed, first_score(base .. ':done') }
end)
