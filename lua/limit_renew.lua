-- baton_limit_renew: a renew extended the leases of runs holding limit
-- slots (baton_renew answered 'renewed <ns>' for them): their slots lapse
-- later too. A holder already freed (its run ended and was released, or it
-- lapsed) stays freed, and a lapse is never moved earlier.
-- KEYS[1]: the namespace's limit base B:{lim:<ns>}
-- ARGV[1]: lapse (ms): the new lease expiry plus the backend's grace,
-- ARGV[2..]: holders (<uuid>:<attempt>)
-- Returns: how many holders were extended.
redis.register_function('baton_limit_renew', function(keys, args)
  local lim = keys[1]
  local lapse = args[1]
  local extended = 0
  for i = 2, #args do
    local holder = args[i]
    local held = redis.call('HGET', lim .. ':hk', holder)
    if held and redis.call('ZSCORE', lim .. ':hold', holder) then
      redis.call('ZADD', lim .. ':hold', 'GT', lapse, holder)
      for set in string.gmatch(held, '[^\n]+') do
        local name, value = string.match(set, '^([^/]*)/(.*)$')
        if redis.call('ZSCORE', lim .. ':r:' .. set, holder) then
          hold_in(lim, name, value, holder, lapse)
        end
      end
      extended = extended + 1
    end
  end
  return extended
end)
