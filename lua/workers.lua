-- baton_workers: the workers of one namespace's registry (library
-- generation 8) seen after a time, in no order (the backend orders them).
-- KEYS[1]: the namespace's registry base B:{w:<ns>}
-- ARGV[1]: seen after (ms, exclusive)
-- Returns: { worker id, entry, ... }: each entry as baton_saw_claim stores it.
redis.register_function {
  function_name = 'baton_workers',
  callback = function(keys, args)
    local key, seen = keys[1] .. ':workers', keys[1] .. ':seen'
    local ids = redis.call('ZRANGEBYSCORE', seen, '(' .. args[1], '+inf')
    local out = {}
    for i = 1, #ids, 1000 do
      local chunk = { unpack(ids, i, math.min(i + 999, #ids)) }
      local entries = redis.call('HMGET', key, unpack(chunk))
      for j = 1, #chunk do
        if entries[j] then
          out[#out + 1] = chunk[j]
          out[#out + 1] = entries[j]
        end
      end
    end
    return out
  end,
  flags = { 'no-writes' },
}
