-- baton_list: one partition's share of a list page, in ascending uuid order.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: namespace, ARGV[2]: after uuid ('' = from the start),
-- ARGV[3]: most matches to answer, ARGV[4]: most entries to examine,
-- ARGV[5]: lane, ARGV[6]: states (comma-separated), ARGV[7]: kind,
-- ARGV[8]: tag key, ARGV[9]: tag value, ARGV[10]: parent id,
-- ARGV[11] / ARGV[12]: created strictly after / before (ms),
-- ARGV[13] / ARGV[14]: finished strictly after / before (ms),
-- ARGV[15]: idempotency key (filters: '' or absent = any; library
-- generation 10 added ARGV[11..15] and several states). Mirrors
-- baton_core::ListFilter::matches.
-- Returns: { frontier, uuid, record, payload, ... }: frontier is '' when the partition was
--   examined to its end, else the last uuid examined (entries after it were
--   not looked at); then triples of uuid, record (MessagePack) and payload.
redis.register_function {
  function_name = 'baton_list',
  callback = function(keys, args)
    local base = keys[1]
    local min = '-'
    if args[2] ~= '' then min = '(' .. args[2] end
    local want, budget = tonumber(args[3]), tonumber(args[4])
    local lane, kind, tk, tv = args[5], args[7], args[8], args[9]
    local par = args[10] or ''
    local states = nil
    if args[6] ~= '' then
      states = {}
      for name in string.gmatch(args[6], '[^,]+') do states[name] = true end
    end
    local bound = function(i) return tonumber(args[i] or '') end
    local ca_after, ca_before = bound(11), bound(12)
    local fa_after, fa_before = bound(13), bound(14)
    local ik = args[15] or ''
    local function in_range(v, after, before)
      if after == nil and before == nil then return true end
      v = tonumber(v)
      if v == nil then return false end
      return (after == nil or v > after) and (before == nil or v < before)
    end
    local ids = redis.call('ZRANGEBYLEX', base .. ':ns:' .. args[1], min, '+', 'LIMIT', 0, budget)
    local out = { '' }
    for i, uuid in ipairs(ids) do
      local record = redis.call('GET', base .. ':e:' .. uuid)
      local h = record and cmsgpack.unpack(record) or {}
      local ok = record and (lane == '' or h.lane == lane) and (states == nil or states[h.st])
        and (kind == '' or h.kind == kind) and (par == '' or h.par == par)
        and in_range(h.ca, ca_after, ca_before) and in_range(h.fa, fa_after, fa_before)
        and (ik == '' or h.ik == ik)
      if ok and tk ~= '' then
        local decoded = cjson.decode(h.tags or '{}')
        ok = type(decoded) == 'table' and decoded[tk] == tv
      end
      if ok then
        out[#out + 1] = uuid
        out[#out + 1] = record
        out[#out + 1] = payload(base, uuid)
        if (#out - 1) / 3 >= want then
          out[1] = uuid
          return out
        end
      end
      if i == budget then out[1] = uuid end
    end
    return out
  end,
  flags = { 'no-writes' },
}
