-- baton_saw_renew: records a renew of a worker in one namespace's registry
-- (library generation 8): seen now (never going back), with the number of
-- leases it presented. A worker the registry does not hold (forgotten, or
-- never seen claiming there) is left out.
-- KEYS[1]: the namespace's registry base B:{w:<ns>}
-- ARGV[1]: worker id, ARGV[2]: lease count, ARGV[3]: now (ms)
-- Returns: 1 when recorded, 0 when the registry does not hold the worker.
redis.register_function('baton_saw_renew', function(keys, args)
  local key, seen = keys[1] .. ':workers', keys[1] .. ':seen'
  local worker, now = args[1], tonumber(args[3])
  local old = redis.call('HGET', key, worker)
  if not old then return 0 end
  local w = cmsgpack.unpack(old)
  local last = tonumber(w.s)
  if not last or last < now then last = now end
  w.s, w.n = s(last), s(tonumber(args[2]))
  redis.call('HSET', key, worker, cmsgpack.pack(w))
  redis.call('ZADD', seen, s(last), worker)
  return 1
end)
