-- baton_claim: claims up to `want` waiting executions of one partition, in
-- claim order (priority descending, then earliest eligible, then id), each
-- claim recorded in the execution's history.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: now (ms)
-- ARGV[2]: namespace
-- ARGV[3]: want (1..)
-- ARGV[4]: worker's capabilities, comma separated ('' = none)
-- ARGV[5]: lane count L, ARGV[6..5+L]: lanes (those paused in this
-- partition's `lp:<ns>` are skipped, and never reported empty; those a
-- limit covers in its `lim:<ns>` are skipped too: see choose)
-- ARGV[6+L]: worker id, ARGV[7+L]: lease expiry (ms),
-- ARGV[8+L]: `want` nonces of 16 hex digits, concatenated
-- ARGV[9+L], ARGV[10+L]: the version keys the claim accepts, lowest and
-- highest ('' = open end); ARGV[11+L]: session idle (ms): how long the
-- worker keeps a session after its last claim or renew of its work
-- Returns: { seq, empty_lanes, limited_lanes, entry... } where empty_lanes
--   lists the lanes (as <ns>/<lane>) left without waiting work in this
--   partition, limited_lanes those a limit covers that hold waiting work
--   here (the backend claims them through the limited path), seq is the
--   partition's sequence at this instant, and each entry is twelve values
--   (flat, not a nested array: a table per entry costs): member, uuid, lane,
--   kind, attempt, deadline|'', tags, upstream uuids|'' (space separated),
--   wait log|'', step count|'', session|'', version|''. Work of a session
--   another worker holds, or of a version outside the range, is passed
--   over; claiming work of a session takes its lock (see take).
--   Payloads are not in the reply (they never
--   pass through Lua): the backend reads them with MGET, the upstream
--   records of a dependent with them, the signals of an execution whose wait
--   log is not empty (LRANGE of its sg: list) and the steps of one that
--   recorded some (HGETALL of its st: hash).
redis.register_function('baton_claim', function(keys, args)
  local nlanes = tonumber(args[5])
  local worker = args[6 + nlanes]
  local route = routing(args[9 + nlanes], args[10 + nlanes], worker)
  local base, now, lanes, members, from, _, limited = choose(keys, args, route)
  local ns = args[2]
  local items = {}
  local rkeys = {}
  for i = 1, #members do
    items[i] = { m = members[i], set = from[i], uuid = string.sub(members[i], 25) }
    rkeys[i] = base .. ':e:' .. items[i].uuid
  end
  if #rkeys > 0 then
    local records = redis.call('MGET', unpack(rkeys))
    for i = 1, #items do items[i].h = records[i] and cmsgpack.unpack(records[i]) end
  end
  local reply = take(base, ns, items, worker, s(tonumber(args[7 + nlanes])),
    args[8 + nlanes], s(now), tonumber(args[11 + nlanes]))
  local e = empties(base, lanes)
  for i = 1, #e do redis.call('SREM', base .. ':lanes', e[i]) end
  local head = { seq(base), e, with_work(base, limited) }
  for i = 1, #reply do head[#head + 1] = reply[i] end
  return head
end)
