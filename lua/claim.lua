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

-- Appends up to `want` eligible members of zset `key` to `out`.
local function eligible(base, key, conditional_set, want, now, offered, out)
  if not conditional_set then
    local ms = redis.call('ZRANGE', key, 0, want - 1)
    for _, m in ipairs(ms) do out[#out + 1] = { m, key } end
    return
  end
  local start, found = 0, 0
  while found < want do
    local ms = redis.call('ZRANGE', key, start, start + 63)
    if #ms == 0 then return end
    for _, m in ipairs(ms) do
      local f = redis.call('HMGET', base .. ':e:' .. string.sub(m, 25), 'dl', 'caps')
      local dl = tsnum(f[1])
      if (dl == nil or dl > now) and caps_ok(f[2], offered) then
        out[#out + 1] = { m, key }
        found = found + 1
        if found >= want then return end
      end
    end
    start = start + 64
  end
end

local function choose(keys, args)
  local base = keys[1]
  local now = tonumber(args[1])
  local ns = args[2]
  local want = tonumber(args[3])
  local offered = {}
  for name in string.gmatch(args[4], '[^,]+') do offered[name] = true end
  local nlanes = tonumber(args[5])
  local lanes = {}
  local cands = {}
  for i = 1, nlanes do
    local lid = ns .. '/' .. args[5 + i]
    lanes[i] = lid
    eligible(base, base .. ':w:' .. lid, false, want, now, offered, cands)
    eligible(base, base .. ':wx:' .. lid, true, want, now, offered, cands)
  end
  table.sort(cands, function(a, b) return a[1] < b[1] end)
  local chosen = {}
  for i = 1, math.min(want, #cands) do chosen[i] = cands[i] end
  return base, now, lanes, chosen, nlanes
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
    local base, _, lanes, chosen = choose(keys, args)
    local reply = { seq(base), empties(base, lanes) }
    for i = 1, #chosen do reply[#reply + 1] = chosen[i][1] end
    return reply
  end,
  flags = { 'no-writes' },
}

redis.register_function('baton_claim', function(keys, args)
  local base, now, lanes, chosen, nlanes = choose(keys, args)
  local worker = args[6 + nlanes]
  local expires = tonumber(args[7 + nlanes])
  local nonces = args[8 + nlanes]
  local woken = {}
  local reply = {}
  for i = 1, #chosen do
    local m = chosen[i][1]
    local uuid = string.sub(m, 25)
    local h = load(base, uuid)
    if h then
      local att = tonumber(h.att) + 1
      local a = 'a' .. att
      local nonce = string.sub(nonces, (i - 1) * 16 + 1, i * 16)
      h.le = expires
      redis.call('HSET', base .. ':e:' .. uuid, 'att', s(att), 'wid', worker, 'ln', nonce,
        'le', s(expires), 'ua', s(now), a .. 'w', worker, a .. 'n', nonce, a .. 's', s(now))
      move(base, uuid, h, 'running', woken)
      reply[#reply + 1] = { m, uuid, h.lane, h.kind, h.pl, att, h.dl or '', h.tags }
    else
      -- An index entry without its execution: drop the entry.
      redis.call('ZREM', chosen[i][2], m)
    end
  end
  local head = { seq(base), empties(base, lanes) }
  for i = 1, #reply do head[#head + 1] = reply[i] end
  return head
end)
