-- baton_claim: claims up to `want` waiting executions of one partition, in
-- claim order (priority descending, then earliest eligible, then id), each
-- claim recorded in the execution's history.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: now (ms)
-- ARGV[2]: namespace
-- ARGV[3]: want (1..)
-- ARGV[4]: worker's capabilities, comma separated ('' = none)
-- ARGV[5]: lane count L, ARGV[6..5+L]: lanes (those paused in this
-- partition's `lp:<ns>` are skipped, and never reported empty)
-- ARGV[6+L]: worker id, ARGV[7+L]: lease expiry (ms),
-- ARGV[8+L]: `want` nonces of 16 hex digits, concatenated
-- Returns: { seq, empty_lanes, entry... } where empty_lanes lists the lanes
--   (as <ns>/<lane>) left without waiting work in this partition, seq is the
--   partition's sequence at this instant, and each entry is ten values
--   (flat, not a nested array: a table per entry costs): member, uuid, lane,
--   kind, attempt, deadline|'', tags, upstream uuids|'' (space separated),
--   wait log|'', step count|''. Payloads are not in the reply (they never
--   pass through Lua): the backend reads them with MGET, the upstream
--   records of a dependent with them, the signals of an execution whose wait
--   log is not empty (LRANGE of its sg: list) and the steps of one that
--   recorded some (HGETALL of its st: hash).
redis.register_function('baton_claim', function(keys, args)
  local base, now, lanes, members, from, nlanes = choose(keys, args)
  local snow = s(now)
  local ns = args[2]
  local worker = args[6 + nlanes]
  local expires = s(tonumber(args[7 + nlanes]))
  local nonces = args[8 + nlanes]
  local removed, adds, counts, writes = {}, {}, {}, {}
  local reply = {}
  local rkeys = {}
  for i = 1, #members do rkeys[i] = base .. ':e:' .. string.sub(members[i], 25) end
  local records = {}
  if #rkeys > 0 then records = redis.call('MGET', unpack(rkeys)) end
  for i = 1, #members do
    local m, set = members[i], from[i]
    local uuid = string.sub(m, 25)
    local h = records[i] and cmsgpack.unpack(records[i])
    push(removed, set, m)
    if h and h.st == 'waiting' then
      local att = NEXT_ATTEMPT[h.att] or s(tonumber(h.att) + 1)
      local a = 'a' .. att
      -- The k-th claimed execution takes the k-th nonce (skipped index
      -- entries take none), as the backend pairs them.
      local k = #reply / 10 + 1
      local nonce = string.sub(nonces, (k - 1) * 16 + 1, k * 16)
      h.st, h.att, h.wid, h.ln, h.le, h.ua = 'running', att, worker, nonce, expires, snow
      h[a .. 'w'], h[a .. 'n'], h[a .. 's'] = worker, nonce, snow
      record_transition(base, uuid, h, 'waiting', nil)
      writes[#writes + 1] = rkeys[i]
      writes[#writes + 1] = cmsgpack.pack(h)
      push(adds, base .. ':leases', expires, uuid)
      local lid = ns .. '/' .. h.lane
      counts[lid .. '/waiting'] = (counts[lid .. '/waiting'] or 0) - 1
      counts[lid .. '/running'] = (counts[lid .. '/running'] or 0) + 1
      local r = #reply
      reply[r + 1], reply[r + 2], reply[r + 3], reply[r + 4] = m, uuid, h.lane, h.kind
      reply[r + 5], reply[r + 6], reply[r + 7], reply[r + 8] = att, h.dl or '', h.tags or '{}',
        h.deps or ''
      reply[r + 9], reply[r + 10] = h.wl or '', h.sn or ''
    end
    -- Otherwise an index entry without its waiting execution: dropped.
  end
  if #writes > 0 then redis.call('MSET', unpack(writes)) end
  for set, members in pairs(removed) do redis.call('ZREM', set, unpack(members)) end
  flush(base, adds, counts)
  local e = empties(base, lanes)
  for i = 1, #e do redis.call('SREM', base .. ':lanes', e[i]) end
  local head = { seq(base), e }
  for i = 1, #reply do head[#head + 1] = reply[i] end
  return head
end)
