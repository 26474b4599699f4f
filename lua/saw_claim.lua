-- baton_saw_claim: records the worker of a claim in its namespace's
-- registry (library generation 8): its lanes, capabilities and (library
-- generation 16) version range, seen now.
-- Its lease count is kept (renews write it; 0 for a new worker) and its
-- last seen time never goes back. Entries unseen since `forget before` are
-- removed, a bounded number per call.
-- KEYS[1]: the namespace's registry base B:{w:<ns>}
-- ARGV[1]: worker id, ARGV[2]: lanes (comma separated), ARGV[3]:
-- capabilities (comma separated, '' = none), ARGV[4]: now (ms), ARGV[5]:
-- forget before (ms), ARGV[6]: most stale entries to remove, ARGV[7]: the
-- version range (VersionRange::to_stored)
-- Returns: 1
redis.register_function('baton_saw_claim', function(keys, args)
  local key, seen = keys[1] .. ':workers', keys[1] .. ':seen'
  local worker, now = args[1], tonumber(args[4])
  local old = redis.call('HGET', key, worker)
  local w = (old and cmsgpack.unpack(old)) or {}
  local last = tonumber(w.s)
  if not last or last < now then last = now end
  w.l, w.c, w.s, w.n, w.v = args[2], args[3], s(last), w.n or '0', args[7]
  redis.call('HSET', key, worker, cmsgpack.pack(w))
  redis.call('ZADD', seen, s(last), worker)
  local stale = redis.call('ZRANGEBYSCORE', seen, '-inf', '(' .. args[5], 'LIMIT', 0, args[6])
  if #stale > 0 then
    redis.call('HDEL', key, unpack(stale))
    redis.call('ZREM', seen, unpack(stale))
  end
  return 1
end)
