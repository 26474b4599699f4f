-- baton_list: one partition's share of a list page, in ascending uuid order.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: namespace, ARGV[2]: after uuid ('' = from the start),
-- ARGV[3]: most matches to answer, ARGV[4]: most entries to examine,
-- ARGV[5]: lane, ARGV[6]: state, ARGV[7]: kind, ARGV[8]: tag key,
-- ARGV[9]: tag value (filters: '' = any)
-- Returns: { frontier, uuid, snapshot, ... }: frontier is '' when the partition was
--   examined to its end, else the last uuid examined (entries after it were
--   not looked at); then pairs of uuid and execution hash (as HGETALL).
redis.register_function {
  function_name = 'baton_list',
  callback = function(keys, args)
    local base = keys[1]
    local min = '-'
    if args[2] ~= '' then min = '(' .. args[2] end
    local want, budget = tonumber(args[3]), tonumber(args[4])
    local lane, st, kind, tk, tv = args[5], args[6], args[7], args[8], args[9]
    local ids = redis.call('ZRANGEBYLEX', base .. ':ns:' .. args[1], min, '+', 'LIMIT', 0, budget)
    local out = { '' }
    for i, uuid in ipairs(ids) do
      local flat = redis.call('HGETALL', base .. ':e:' .. uuid)
      local h = {}
      for j = 1, #flat, 2 do h[flat[j]] = flat[j + 1] end
      local ok = #flat > 0 and (lane == '' or h.lane == lane) and (st == '' or h.st == st)
        and (kind == '' or h.kind == kind)
      if ok and tk ~= '' then
        local decoded = cjson.decode(h.tags)
        ok = type(decoded) == 'table' and decoded[tk] == tv
      end
      if ok then
        flat[#flat + 1] = 'pl'
        flat[#flat + 1] = redis.call('GET', base .. ':p:' .. uuid) or ''
        out[#out + 1] = uuid
        out[#out + 1] = flat
        if (#out - 1) / 2 >= want then
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
