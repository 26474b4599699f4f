-- baton_reclaim: scheduler pass; running executions whose lease expired
-- lose their attempt (outcome lease_expired) and the retry policy decides
-- what comes next, earliest expiry first.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: now (ms), ARGV[2]: limit, ARGV[3]: longest stored error text (bytes),
-- ARGV[4]: cascade budget (dependents visited for each execution that fails
-- for good; the rest is queued for baton_cascade)
-- A reclaimed run of a session releases the session's lock when the run's
-- worker holds it (a worker whose lease lapsed is taken for dead); the pass
-- then drops up to `limit` of the partition's lapsed session locks.
-- Returns: { processed, next_due|'', woken }
redis.register_function('baton_reclaim', function(keys, args)
  local base = keys[1]
  local now = tonumber(args[1])
  local max_err = tonumber(args[3])
  local due = redis.call('ZRANGEBYSCORE', base .. ':leases', '-inf', args[1], 'LIMIT', 0, args[2])
  local woken = {}
  for _, uuid in ipairs(due) do
    local h = load(base, uuid)
    if h and h.st == 'running' then
      local err = 'lease expired: worker ' .. (h.wid or '?') .. ' did not renew attempt ' ..
        h.att .. ' before ' .. fmt_ts(h.le)
      if #err > max_err then err = string.sub(err, 1, max_err) end
      local released = h.ses and h.wid and
        release_session(base, session_field(h.ns, h.ses), h.wid)
      apply_failure(base, uuid, h, 'lease_expired', err, true, nil, now, woken)
      if released then wake_released(woken, lane_id(h)) end
      save(base, uuid, h)
      if woken.told then tell_dependents(base, tonumber(args[4]), s(now), woken) end
    else
      redis.call('ZREM', base .. ':leases', uuid)
    end
  end
  sweep_sessions(base, now, tonumber(args[2]))
  return { #due, first_score(base .. ':leases'), woken_reply(base, woken) }
end)
