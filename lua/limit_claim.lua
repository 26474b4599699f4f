-- baton_limit_claim: claims named executions of one partition that the
-- namespace's limit slot admitted (baton_limit_admit), each only while it
-- is still waiting at the attempt it was admitted for with the tags it was
-- judged by (a tag changed since may change its keys), eligible (deadline,
-- capabilities, version, and its session not held by another worker: see
-- take) and its lane not paused; one admitted with slots is marked
-- as holding them (lh), so the end of its run releases them. Nothing is
-- claimed when the partition's copy of the namespace's limited lanes was
-- written for another limit generation than the admission judged by (a
-- limit set or removed in between): the backend gives the slots back and
-- claims again. Each claim is recorded in the execution's history.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: now (ms), ARGV[2]: namespace, ARGV[3]: worker's capabilities,
-- comma separated ('' = none), ARGV[4]: worker id, ARGV[5]: lease expiry
-- (ms), ARGV[6]: the limit generation of the admission, ARGV[7]: nonces
-- of 16 hex digits, concatenated (the k-th claimed takes the k-th),
-- ARGV[8], ARGV[9]: the version keys the claim accepts ('' = open end),
-- ARGV[10]: session idle (ms), then per execution in claim order four values: uuid, the attempt its
-- claim starts, '1' when it holds slots (else '0'), its tags as the
-- admission judged them (the JSON text baton_limit_peek answered)
-- Returns: { seq, empty_lanes, {}, entry... } as baton_claim answers them,
--   an entry for each execution claimed.
redis.register_function('baton_limit_claim', function(keys, args)
  local base = keys[1]
  local now = tonumber(args[1])
  local ns = args[2]
  local offered = {}
  for name in string.gmatch(args[3], '[^,]+') do offered[name] = true end
  local gen = redis.call('HGET', base .. ':lim:' .. ns, '#')
  local items, lanes, seen = {}, {}, {}
  local route = routing(args[8], args[9], args[4])
  if not gen or gen == args[6] then
    local named = {}
    for i = 11, #args - 3, 4 do named[#named + 1] = { uuid = args[i], att = args[i + 1],
      held = args[i + 2] == '1', tags = args[i + 3] } end
    local lane_names = {}
    for _, n in ipairs(named) do
      n.h = load(base, n.uuid)
      if n.h and not seen[n.h.lane] then
        seen[n.h.lane] = true
        lane_names[#lane_names + 1] = n.h.lane
      end
    end
    local open = {}
    for _, lane in ipairs(unpaused_lanes(base, ns, lane_names)) do open[lane] = true end
    for _, n in ipairs(named) do
      local h = n.h
      local dl = h and tsnum(h.dl)
      if h and h.ns == ns and h.st == 'waiting' and open[h.lane]
        and (NEXT_ATTEMPT[h.att] or s(tonumber(h.att) + 1)) == n.att and (h.tags or '{}') == n.tags
        and (dl == nil or dl > now) and caps_ok(h.caps, offered)
        and version_key_accepted(h.vk, route.vmin, route.vmax) then
        items[#items + 1] = { m = member(h, n.uuid), set = waiting_key(base, h), uuid = n.uuid,
          h = h, held = n.held }
      end
    end
    -- A paused lane is never reported empty: its hint stays for its resume.
    for _, lane in ipairs(lane_names) do
      if open[lane] then lanes[#lanes + 1] = ns .. '/' .. lane end
    end
  end
  local reply = take(base, ns, items, args[4], s(tonumber(args[5])), args[7], s(now),
    tonumber(args[10]))
  local e = empties(base, lanes)
  for i = 1, #e do redis.call('SREM', base .. ':lanes', e[i]) end
  local head = { seq(base), e, {} }
  for i = 1, #reply do head[#head + 1] = reply[i] end
  return head
end)
