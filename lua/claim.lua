-- baton_claim: claims up to `want` waiting executions of one partition.
-- baton_peek: the same choice without claiming (the backend peeks every
--   candidate partition first so one claimer gets exact global order).
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: now (ms)
-- ARGV[2]: namespace
-- ARGV[3]: want (1..)
-- ARGV[4]: worker's capabilities, comma separated ('' = none)
-- ARGV[5]: lane count L, ARGV[6..5+L]: lanes
-- claim only: ARGV[6+L]: worker id, ARGV[7+L]: lease expiry (ms),
--   ARGV[8+L]: `want` nonces of 16 hex digits, concatenated
-- Returns: { seq, empty_lanes, entry... } where empty_lanes lists the lanes
--   (as <ns>/<lane>) left without waiting work in this partition and seq is
--   the partition's sequence at this instant. Peek entries are claim-order
--   members; claim entries are { member, uuid, lane, kind, payload, attempt,
--   deadline|'', tags }.

-- Up to `want` eligible members of zset `key`, in claim order.
local function eligible(base, key, conditional_set, want, now, offered)
  if not conditional_set then
    return redis.call('ZRANGE', key, 0, want - 1)
  end
  local out = {}
  local start = 0
  while #out < want do
    local ms = redis.call('ZRANGE', key, start, start + 63)
    if #ms == 0 then return out end
    for _, m in ipairs(ms) do
      local h = load(base, string.sub(m, 25))
      local dl = h and tsnum(h.dl)
      if h and (dl == nil or dl > now) and caps_ok(h.caps, offered) then
        out[#out + 1] = m
        if #out >= want then return out end
      end
    end
    start = start + 64
  end
  return out
end

-- The first `want` members over every lane's two sets: each set is already
-- in claim order, so a merge (not a sort) picks them. Answers the members
-- and, in step, the set each came from.
local function choose(keys, args)
  local base = keys[1]
  local now = tonumber(args[1])
  local ns = args[2]
  local want = tonumber(args[3])
  local offered = {}
  for name in string.gmatch(args[4], '[^,]+') do offered[name] = true end
  local nlanes = tonumber(args[5])
  local lanes, lists, sets = {}, {}, {}
  for i = 1, nlanes do
    local lid = ns .. '/' .. args[5 + i]
    lanes[i] = lid
    for _, cond in ipairs({ false, true }) do
      local key = base .. (cond and ':wx:' or ':w:') .. lid
      local l = eligible(base, key, cond, want, now, offered)
      if #l > 0 then
        lists[#lists + 1] = l
        sets[#sets + 1] = key
      end
    end
  end
  local members, from = {}, {}
  if #lists == 1 then
    members = lists[1]
    for i = 1, #members do from[i] = sets[1] end
  elseif #lists > 1 then
    local pos = {}
    for i = 1, #lists do pos[i] = 1 end
    while #members < want do
      local best = nil
      for i = 1, #lists do
        local m = lists[i][pos[i]]
        if m and (best == nil or m < lists[best][pos[best]]) then best = i end
      end
      if best == nil then break end
      members[#members + 1] = lists[best][pos[best]]
      from[#from + 1] = sets[best]
      pos[best] = pos[best] + 1
    end
  end
  return base, now, lanes, members, from, nlanes
end

local function empties(base, lanes)
  local e = {}
  for i = 1, #lanes do
    if lane_empty(base, lanes[i]) then e[#e + 1] = lanes[i] end
  end
  return e
end

redis.register_function {
  function_name = 'baton_peek',
  callback = function(keys, args)
    local base, _, lanes, members = choose(keys, args)
    local reply = { seq(base), empties(base, lanes) }
    for i = 1, #members do reply[#reply + 1] = members[i] end
    return reply
  end,
  flags = { 'no-writes' },
}

redis.register_function('baton_claim', function(keys, args)
  local base, now, lanes, members, from, nlanes = choose(keys, args)
  local snow = s(now)
  local ns = args[2]
  local worker = args[6 + nlanes]
  local expires = s(tonumber(args[7 + nlanes]))
  local nonces = args[8 + nlanes]
  local removed, adds, counts, pkeys, writes = {}, {}, {}, {}, {}
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
      local att = tonumber(h.att) + 1
      local a = 'a' .. att
      local nonce = string.sub(nonces, (i - 1) * 16 + 1, i * 16)
      h.st, h.att, h.wid, h.ln, h.le, h.ua = 'running', s(att), worker, nonce, expires, snow
      h[a .. 'w'], h[a .. 'n'], h[a .. 's'] = worker, nonce, snow
      writes[#writes + 1] = rkeys[i]
      writes[#writes + 1] = cmsgpack.pack(h)
      push(adds, base .. ':leases', expires, uuid)
      local lid = ns .. '/' .. h.lane
      counts[lid .. '/waiting'] = (counts[lid .. '/waiting'] or 0) - 1
      counts[lid .. '/running'] = (counts[lid .. '/running'] or 0) + 1
      reply[#reply + 1] = { m, uuid, h.lane, h.kind, '', att, h.dl or '', h.tags }
      pkeys[#pkeys + 1] = base .. ':p:' .. uuid
    end
    -- Otherwise an index entry without its waiting execution: dropped.
  end
  if #writes > 0 then redis.call('MSET', unpack(writes)) end
  if #pkeys > 0 then
    local payloads = redis.call('MGET', unpack(pkeys))
    for i = 1, #reply do reply[i][5] = payloads[i] or '' end
  end
  for set, members in pairs(removed) do redis.call('ZREM', set, unpack(members)) end
  flush(base, adds, counts)
  local e = empties(base, lanes)
  for i = 1, #e do redis.call('SREM', base .. ':lanes', e[i]) end
  local head = { seq(base), e }
  for i = 1, #reply do head[#head + 1] = reply[i] end
  return head
end)
