-- baton_limit_release: frees limit slots in a namespace's limit slot: the
-- slots of runs that ended (their releases, recorded in `lrel` of their
-- partitions by the call that ended them), or of admissions whose claim
-- did not take place (given back by the claimer, with their rate window
-- entries: a claim that never happened uses no rate).
-- KEYS[1]: the namespace's limit base B:{lim:<ns>}
-- ARGV[1]: 'end' (runs that ended) or 'unclaimed' (admissions given back),
-- ARGV[2..]: holders (<uuid>:<attempt>)
-- Returns: how many of them held slots.
redis.register_function('baton_limit_release', function(keys, args)
  local lim = keys[1]
  local windows = args[1] == 'unclaimed'
  local freed = 0
  for i = 2, #args do
    if redis.call('ZSCORE', lim .. ':hold', args[i]) then freed = freed + 1 end
    free_holder(lim, args[i], windows)
  end
  return freed
end)
