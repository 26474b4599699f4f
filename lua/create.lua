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
  local snow = s(now)
  local n = tonumber(args[2])
  local woken, out = {}, {}
  -- Index writes are batched per key: one ZADD per index, one HINCRBY per
  -- lane and state, whatever the batch size.
  local adds, counts, was_empty, lanes, payloads = {}, {}, {}, {}, {}
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
        ns = ns, lane = lane, st = args[o + 4], pri = args[o + 5], caps = args[o + 8],
        ra = args[o + 16], dl = args[o + 17],
      }
      if h.ra == '' then h.ra = nil end
      if h.dl == '' then h.dl = nil end
      h.rd = h.ra or snow
      local fields = { 'ns', ns, 'lane', lane, 'kind', args[o + 3], 'st', h.st, 'pri', h.pri,
        'tags', args[o + 7], 'caps', h.caps, 'att', '0', 'ma', args[o + 9],
        'bi', args[o + 10], 'bm', args[o + 11], 'bx', args[o + 12], 'bj', args[o + 13],
        'ca', snow, 'ua', snow, 'rd', h.rd }
      if ik ~= '' then fields[#fields + 1], fields[#fields + 2] = 'ik', ik end
      if args[o + 15] ~= '' then fields[#fields + 1], fields[#fields + 2] = 'par', args[o + 15] end
      if h.ra then fields[#fields + 1], fields[#fields + 2] = 'ra', h.ra end
      if h.dl then
        fields[#fields + 1], fields[#fields + 2] = 'dl', h.dl
        push(adds, base .. ':deadlines', h.dl, uuid)
      end
      redis.call('HSET', base .. ':e:' .. uuid, unpack(fields))
      payloads[#payloads + 1] = base .. ':p:' .. uuid
      payloads[#payloads + 1] = args[o + 6]
      push(adds, base .. ':ns:' .. ns, 0, uuid)
      local lid = lane_id(h)
      counts[lid .. '/' .. h.st] = (counts[lid .. '/' .. h.st] or 0) + 1
      if h.st == 'waiting' then
        if was_empty[lid] == nil then
          was_empty[lid] = lane_empty(base, lid)
          lanes[#lanes + 1] = lid
        end
        push(adds, waiting_key(base, h), 0, member(h, uuid))
      else
        push(adds, base .. ':delayed', h.ra, uuid)
      end
      out[#out + 1] = { uuid, h.st, 1 }
    end
  end
  for i = 1, #payloads, 1000 do
    redis.call('MSET', unpack(payloads, i, math.min(i + 999, #payloads)))
  end
  flush(base, adds, counts)
  for _, lid in ipairs(lanes) do
    if was_empty[lid] then
      redis.call('INCR', base .. ':seq')
      redis.call('SADD', base .. ':lanes', lid)
      woken[#woken + 1] = lid
    end
  end
  local reply = { woken_reply(base, woken) }
  for i = 1, #out do reply[#reply + 1] = out[i] end
  return reply
end)
