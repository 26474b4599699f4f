-- baton_renew: renews one partition's share of a worker's leases.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: now (ms), ARGV[2]: worker id, ARGV[3]: new expiry (ms)
-- ARGV[4..]: per lease: uuid, attempt, nonce (16 hex digits)
-- Returns: one status per lease, in order: 'renewed', 'cancelled' or 'lost'.
redis.register_function('baton_renew', function(keys, args)
  local base = keys[1]
  local now = tonumber(args[1])
  local worker = args[2]
  local expires = args[3]
  local out = {}
  for i = 4, #args, 3 do
    local uuid, att, nonce = args[i], args[i + 1], args[i + 2]
    local key = base .. ':e:' .. uuid
    local f = redis.call('HMGET', key, 'st', 'att', 'ln', 'wid', 'le', 'dl')
    local le, dl = tsnum(f[5]), tsnum(f[6])
    if f[1] == 'running' and f[2] == att and f[3] == nonce and f[4] == worker
      and le and le > now and (dl == nil or dl > now) then
      redis.call('HSET', key, 'le', expires)
      redis.call('ZADD', base .. ':leases', expires, uuid)
      out[#out + 1] = 'renewed'
    else
      local g = redis.call('HMGET', key, 'a' .. att .. 'o', 'a' .. att .. 'n')
      if g[1] == 'cancelled' and g[2] == nonce then
        out[#out + 1] = 'cancelled'
      else
        out[#out + 1] = 'lost'
      end
    end
  end
  return out
end)
