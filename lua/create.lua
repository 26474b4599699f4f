-- baton_create: creates one partition's share of a create batch.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: now (ms)
-- ARGV[2]: item count n
-- ARGV[3..]: per item, 18 values: uuid ns lane kind state priority payload
--   tags caps max_attempts backoff_initial backoff_max multiplier jitter(0|1)
--   idempotency_key parent run_at deadline ('' = none)
-- Returns: { woken, outcome... } where woken = { seq, lane... } (lanes whose
--   waiting set turned non-empty) and each outcome = { uuid, state, created(1|0) }.
--   An item whose idempotency key exists answers the existing uuid and state.
local CREATE_FIELDS = 18

redis.register_function('baton_create', function(keys, args)
  local base = keys[1]
  local now = tonumber(args[1])
  local n = tonumber(args[2])
  local woken, out = {}, {}
  for i = 0, n - 1 do
    local o = 3 + i * CREATE_FIELDS
    local uuid, ns, lane = args[o], args[o + 1], args[o + 2]
    local ik = args[o + 14]
    local existing = false
    if ik ~= '' then
      local field = ns .. '/' .. lane .. '/' .. ik
      existing = redis.call('HGET', base .. ':idem', field)
      if not existing then redis.call('HSET', base .. ':idem', field, uuid) end
    end
    if existing then
      local st = redis.call('HGET', base .. ':e:' .. existing, 'st')
      out[#out + 1] = { existing, st or '', 0 }
    else
      local h = {
        ns = ns, lane = lane, kind = args[o + 3], st = args[o + 4], pri = args[o + 5],
        caps = args[o + 8], ra = args[o + 16], dl = args[o + 17],
      }
      if h.ra == '' then h.ra = nil end
      if h.dl == '' then h.dl = nil end
      h.rd = h.ra or s(now)
      local key = base .. ':e:' .. uuid
      redis.call('HSET', key, 'ns', ns, 'lane', lane, 'kind', h.kind, 'st', h.st,
        'pri', h.pri, 'pl', args[o + 6], 'tags', args[o + 7], 'caps', h.caps, 'att', '0',
        'ma', args[o + 9], 'bi', args[o + 10], 'bm', args[o + 11], 'bx', args[o + 12],
        'bj', args[o + 13], 'ca', s(now), 'ua', s(now), 'rd', h.rd)
      if ik ~= '' then redis.call('HSET', key, 'ik', ik) end
      if args[o + 15] ~= '' then redis.call('HSET', key, 'par', args[o + 15]) end
      if h.ra then redis.call('HSET', key, 'ra', h.ra) end
      if h.dl then
        redis.call('HSET', key, 'dl', h.dl)
        redis.call('ZADD', base .. ':deadlines', h.dl, uuid)
      end
      redis.call('ZADD', base .. ':ns:' .. ns, 0, uuid)
      count(base, h, h.st, 1)
      enter(base, uuid, h, woken)
      out[#out + 1] = { uuid, h.st, 1 }
    end
  end
  local reply = { woken_reply(base, woken) }
  for i = 1, #out do reply[#reply + 1] = out[i] end
  return reply
end)
