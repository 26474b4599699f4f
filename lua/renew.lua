-- baton_renew: renews one partition's share of a worker's leases.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: now (ms), ARGV[2]: worker id, ARGV[3]: new expiry (ms)
-- ARGV[4..]: per lease: uuid, attempt, nonce (16 hex digits)
-- Returns: one status per lease, in order: 'renewed', 'cancelled', 'paused'
--   or 'lost' ('cancelled' / 'paused' when a cancel / pause ended the
--   lease's own attempt); 'renewed <ns>' for a run holding limit slots, whose
--   holder the backend then extends in B:{lim:<ns>} (baton_limit_renew).
-- A renewed run of a session extends the session's lock when its worker
--   holds it, to session_lock_until with the idle time stored with the lock.
redis.register_function('baton_renew', function(keys, args)
  local base = keys[1]
  local now = tonumber(args[1])
  local worker = args[2]
  local expires = args[3]
  local out = {}
  for i = 4, #args, 3 do
    local uuid, att, nonce = args[i], args[i + 1], args[i + 2]
    local h = load(base, uuid) or {}
    local le, dl = tsnum(h.le), tsnum(h.dl)
    if h.st == 'running' and h.att == att and h.ln == nonce and h.wid == worker
      and le and le > now and (dl == nil or dl > now) then
      h.le = expires
      save(base, uuid, h)
      redis.call('ZADD', base .. ':leases', expires, uuid)
      if h.ses then
        local field = session_field(h.ns, h.ses)
        local lock = session_lock(base, field)
        if lock and lock.worker == worker then
          hold_session(base, field, lock, worker, now, tonumber(expires), lock.idle)
        end
      end
      if h.lh then out[#out + 1] = 'renewed ' .. h.ns else out[#out + 1] = 'renewed' end
    else
      out[#out + 1] = renew_refusal(h, att, nonce)
    end
  end
  return out
end)
