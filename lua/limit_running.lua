-- baton_limit_running: the running executions of a namespace in one
-- partition, for set_limit to count what already runs under a new limit
-- (it reads every lease of the partition: a limit is set rarely).
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: namespace, ARGV[2]: lane ('' every lane)
-- Returns: per running execution six values: uuid, attempt, lane, kind, tags
--   (a JSON object), lease expiry (ms).
redis.register_function {
  function_name = 'baton_limit_running',
  callback = function(keys, args)
    local base = keys[1]
    local ns, lane = args[1], args[2]
    local out = {}
    local start = 0
    while true do
      local uuids = redis.call('ZRANGE', base .. ':leases', start, start + 499)
      if #uuids == 0 then break end
      local rkeys = {}
      for i = 1, #uuids do rkeys[i] = base .. ':e:' .. uuids[i] end
      local records = redis.call('MGET', unpack(rkeys))
      for i = 1, #uuids do
        local h = records[i] and cmsgpack.unpack(records[i])
        if h and h.st == 'running' and h.ns == ns and (lane == '' or h.lane == lane) then
          local r = #out
          out[r + 1], out[r + 2], out[r + 3] = uuids[i], h.att, h.lane
          out[r + 4], out[r + 5], out[r + 6] = h.kind, h.tags or '{}', h.le or '0'
        end
      end
      start = start + 500
    end
    return out
  end,
  flags = { 'no-writes' },
}
