-- baton_limit_enforce: puts a limit set_limit adopted in force (its
-- definition without `ad`), only while the stored definition is still the
-- adopting one this set_limit wrote and the namespace's limit generation
-- is still the one that write answered: a writer that outlived its lock
-- must not bring back a limit removed meanwhile, or overwrite another
-- writer's definition. The generation stays, so claims admitted while it
-- adopted stand.
-- KEYS[1]: the namespace's limit base B:{lim:<ns>}
-- ARGV[1]: the limit's name, ARGV[2]: the adopting definition written,
-- ARGV[3]: the generation its write answered, ARGV[4]: the definition in
-- force
-- Returns: 1 when written, 0 when the limit changed meanwhile.
redis.register_function('baton_limit_enforce', function(keys, args)
  local lim = keys[1]
  if redis.call('HGET', lim .. ':def', args[1]) ~= args[2]
    or (redis.call('GET', lim .. ':gen') or '0') ~= args[3] then
    return 0
  end
  redis.call('HSET', lim .. ':def', args[1], args[4])
  return 1
end)
