-- baton_limit_lanes: replaces this partition's copy of a namespace's limits
-- (`lim:<ns>`), at once, so a claim here never sees it half written: the
-- lanes some limit with a cap or a rate covers (their work is claimed
-- through the limited path) and the key specs of the fair limits (see
-- fair_place in common.lua; a fair-only limit leaves its lanes on the
-- plain path).
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: namespace, ARGV[2]: the namespace's limit generation,
-- ARGV[3]: L, how many lanes are limited, ARGV[4..3+L]: those lanes (''
-- when a limit covers every lane), then pairs of a lane ('' for every lane
-- without a pair of its own) and the key spec ('kind', 'lane' or
-- 'tag:<k>') of the fair limit ordering it. No lane and no pair: the
-- namespace has no limit (the copy goes).
-- Returns: 1.
redis.register_function('baton_limit_lanes', function(keys, args)
  local key = keys[1] .. ':lim:' .. args[1]
  redis.call('DEL', key)
  local limited = tonumber(args[3])
  if #args > 3 then
    local fields = { '#', args[2] }
    for i = 4, 3 + limited do
      fields[#fields + 1] = args[i]
      fields[#fields + 1] = '1'
    end
    for i = 4 + limited, #args - 1, 2 do
      fields[#fields + 1] = 'f:' .. args[i]
      fields[#fields + 1] = args[i + 1]
    end
    redis.call('HSET', key, unpack(fields))
  end
  return 1
end)
