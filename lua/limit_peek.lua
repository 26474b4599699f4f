-- baton_limit_peek: the waiting work of lanes a limit covers that a claim
-- could take, in claim order after a cursor, passing over the key values
-- the claim already knows to be without room (they would be skipped): the
-- candidates the backend judges in the namespace's limit slot
-- (baton_limit_admit) before it claims them (baton_limit_claim). Reads at
-- most `budget` index entries, so a long run of passed-over work costs a
-- bounded call; the backend asks again after the last one read.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: now (ms)
-- ARGV[2]: namespace
-- ARGV[3]: want (1..): most candidates answered
-- ARGV[4]: worker's capabilities, comma separated ('' = none)
-- ARGV[5]: lane count L, ARGV[6..5+L]: lanes (those paused in this
-- partition's `lp:<ns>` are skipped, and never reported empty)
-- ARGV[6+L]: cursor: read the members after it ('' from the first)
-- ARGV[7+L]: budget: most index entries read
-- ARGV[8+L]: passed-over limit count B, then per limit: lane ('' every
-- lane), key ('kind', 'lane' or 'tag:<k>'), value count n (-1: every
-- value), n values; then the version keys the claim accepts, lowest and
-- highest ('' = open end), and the claiming worker: work of another
-- version, or of a session another worker holds, is no candidate
-- Returns: { seq, empty_lanes, last, exhausted, read, candidate... }: the
--   partition's sequence and the lanes (as <ns>/<lane>) without waiting
--   work here, as baton_peek answers them; the last member read ('' none);
--   1 when every member after the cursor was read, else 0; how many index
--   entries it read; and per
--   candidate six values: member, uuid, the attempt its claim starts,
--   lane, kind, tags (a JSON object).
redis.register_function {
  function_name = 'baton_limit_peek',
  callback = function(keys, args)
    local base = keys[1]
    local now = tonumber(args[1])
    local ns = args[2]
    local want = tonumber(args[3])
    local offered = {}
    for name in string.gmatch(args[4], '[^,]+') do offered[name] = true end
    local nlanes = tonumber(args[5])
    local names = {}
    for i = 1, nlanes do names[i] = args[5 + i] end
    local cursor = args[6 + nlanes]
    local budget = tonumber(args[7 + nlanes])
    local passed = {}
    local i = 9 + nlanes
    for _ = 1, tonumber(args[8 + nlanes]) do
      local spec = { lane = args[i], key = args[i + 1] }
      local n = tonumber(args[i + 2])
      i = i + 3
      if n < 0 then
        spec.every = true
      else
        spec.values = {}
        for j = i, i + n - 1 do spec.values[args[j]] = true end
        i = i + n
      end
      passed[#passed + 1] = spec
    end
    local route = routing(args[i], args[i + 1], args[i + 2])
    names = unpaused_lanes(base, ns, names)
    local lanes, sources = {}, {}
    for _, name in ipairs(names) do
      local lid = ns .. '/' .. name
      lanes[#lanes + 1] = lid
      for _, infix in ipairs({ ':w:', ':wx:' }) do
        sources[#sources + 1] = { key = base .. infix .. lid, buf = {}, pos = 1, more = true,
          after = cursor }
      end
    end
    -- Each waiting set is in claim order (score 0, members by their bytes):
    -- read in chunks after the cursor and merged.
    local chunk = 64
    local function head(src)
      if src.pos > #src.buf and src.more then
        local min = '-'
        if src.after ~= '' then min = '(' .. src.after end
        src.buf = redis.call('ZRANGEBYLEX', src.key, min, '+', 'LIMIT', 0, chunk)
        src.pos = 1
        src.more = #src.buf == chunk
        if #src.buf > 0 then src.after = src.buf[#src.buf] end
      end
      return src.buf[src.pos]
    end
    local out = {}
    local read, last, exhausted = 0, '', 0
    while #out < want * 6 and read < budget do
      local best, bm = nil, nil
      for _, src in ipairs(sources) do
        local m = head(src)
        if m and (bm == nil or m < bm) then best, bm = src, m end
      end
      if not best then
        exhausted = 1
        break
      end
      best.pos = best.pos + 1
      read = read + 1
      last = bm
      local uuid = string.sub(bm, 25)
      local h = load(base, uuid)
      local dl = h and tsnum(h.dl)
      if h and h.st == 'waiting' and (dl == nil or dl > now) and caps_ok(h.caps, offered)
        and routable(base, route, h, now) then
        local tags = nil
        local skip = false
        for _, spec in ipairs(passed) do
          if string.sub(spec.key, 1, 4) == 'tag:' and not tags then
            tags = cjson.decode(h.tags or '{}')
          end
          local v = limit_key_value(spec, h.lane, h.kind, tags or {})
          if v and (spec.every or spec.values[v]) then
            skip = true
            break
          end
        end
        if not skip then
          local r = #out
          out[r + 1], out[r + 2], out[r + 3] = bm, uuid, NEXT_ATTEMPT[h.att] or s(tonumber(h.att) + 1)
          out[r + 4], out[r + 5], out[r + 6] = h.lane, h.kind, h.tags or '{}'
        end
      end
    end
    local reply = { seq(base), empties(base, lanes), last, exhausted, read }
    for j = 1, #out do reply[#reply + 1] = out[j] end
    return reply
  end,
  flags = { 'no-writes' },
}
