-- baton_revoke: revokes the lease of a running execution. Its attempt ends
-- at once as an expired lease's would (outcome lease_expired, a retryable
-- failure naming the revoke) and the retry policy decides what follows,
-- exactly as baton_reclaim settles it: parents and dependents are told and
-- lanes that turn non-empty are reported.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: uuid, ARGV[2]: now (ms), ARGV[3]: longest stored error text
-- (bytes), ARGV[4]: cascade budget (dependents visited when it fails for
-- good; the rest is queued for baton_cascade)
-- Returns: { 'ok', woken, record }, { 'not_found' } or
--   { 'conflict', state, reason } for an execution that is not running.
-- Its check mirrors baton_core::raw::rules::check_revoke, its error
-- baton_core::raw::rules::revoke_failure. A revoked run of a session
-- releases the session's lock when the run's worker holds it, as a reclaim
-- does.
redis.register_function('baton_revoke', function(keys, args)
  local base, uuid = keys[1], args[1]
  local now = tonumber(args[2])
  local h = load(base, uuid)
  if not h then return { 'not_found' } end
  local why = revoke_refusal(h.st)
  if why then return { 'conflict', h.st, why } end
  local err = clip(revoke_error(h), tonumber(args[3]))
  local woken = {}
  local released = h.ses and h.wid and
    release_session(base, session_field(h.ns, h.ses), h.wid)
  apply_failure(base, uuid, h, 'lease_expired', err, true, nil, now, woken)
  if released then wake_released(woken, lane_id(h)) end
  local record = save(base, uuid, h)
  if woken.told then tell_dependents(base, tonumber(args[4]), s(now), woken) end
  return { 'ok', woken_reply(base, woken), record }
end)
