-- baton_fail: records a failed attempt and applies the stored retry policy.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: uuid, ARGV[2]: attempt, ARGV[3]: nonce, ARGV[4]: error text,
-- ARGV[5]: retryable (1|0), ARGV[6]: retry_after ms ('' = the policy's
-- backoff), ARGV[7]: now (ms), ARGV[8]: cascade budget (dependents visited
-- when it fails for good; the rest is queued for baton_cascade)
-- Returns: { 'ok', woken, record } or an error reply as one item of
--   baton_complete answers. A replay of an attempt that already failed
--   answers 'ok' with the current snapshot.
-- Its verdict on a repeated call mirrors baton_core::raw::rules::fail_replay.
redis.register_function('baton_fail', function(keys, args)
  local base, uuid = keys[1], args[1]
  local attempt, nonce = args[2], args[3]
  local now = tonumber(args[7])
  local h, reply, ended = check_lease(base, uuid, attempt, nonce, now)
  if reply then return reply end
  if ended == 'failed' then
    return { 'ok', { 0 }, cmsgpack.pack(h) }
  elseif ended == 'completed' then
    return { 'conflict', h.st, 'attempt ' .. attempt .. ' already completed' }
  elseif ended then
    return { 'lost', ENDED_WHY[ended] or 'the attempt already ended' }
  end
  local woken = {}
  apply_failure(base, uuid, h, 'failed', args[4], args[5] == '1', tsnum(args[6]), now, woken)
  local record = save(base, uuid, h)
  if woken.told then tell_dependents(base, tonumber(args[8]), s(now), woken) end
  return { 'ok', woken_reply(base, woken), record }
end)
