-- baton_limit_lanes: replaces this partition's copy of the lanes of a
-- namespace some limit covers (`lim:<ns>`), at once, so a claim here never
-- sees it half written.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: namespace, ARGV[2]: the namespace's limit generation,
-- ARGV[3..]: the lanes covered ('' when a limit covers every lane); none:
-- the namespace has no limit (the copy goes)
-- Returns: 1.
redis.register_function('baton_limit_lanes', function(keys, args)
  local key = keys[1] .. ':lim:' .. args[1]
  redis.call('DEL', key)
  if #args > 2 then
    local fields = { '#', args[2] }
    for i = 3, #args do
      fields[#fields + 1] = args[i]
      fields[#fields + 1] = '1'
    end
    redis.call('HSET', key, unpack(fields))
  end
  return 1
end)
