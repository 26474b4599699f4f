-- baton_list: one partition's share of a list page, in ascending uuid order.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: namespace, ARGV[2]: after uuid ('' = from the start),
-- ARGV[3]: most matches to answer, ARGV[4]: most entries to examine,
-- ARGV[5]: lane, ARGV[6]: state, ARGV[7]: kind, ARGV[8]: tag key,
-- ARGV[9]: tag value, ARGV[10]: parent id (filters: '' or absent = any)
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
    local lane, st, kind, tk, tv = args[5], args[6], args[7], args[8], args[9]
    local par = args[10] or ''
    local ids = redis.call('ZRANGEBYLEX', base .. ':ns:' .. args[1], min, '+', 'LIMIT', 0, budget)
    local out = { '' }
    for i, uuid in ipairs(ids) do
      local record = redis.call('GET', base .. ':e:' .. uuid)
      local h = record and cmsgpack.unpack(record) or {}
      local ok = record and (lane == '' or h.lane == lane) and (st == '' or h.st == st)
        and (kind == '' or h.kind == kind) and (par == '' or h.par == par)
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
