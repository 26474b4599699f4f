-- baton_record_step: records the outcome of step `name` of the running
-- attempt fenced by the lease (RFC 0008). Judged against the step as stored
-- (judge_step): the same output for a done step answers it unchanged; a
-- new or failed step is written (done with its output, keeping the last
-- error, or failed with the new error and one more failure), stamped with
-- the lease's attempt and now; a new step counts one more in `sn`. Nothing
-- else changes: no state, no `ua`, no index.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: uuid, ARGV[2]: attempt, ARGV[3]: nonce, ARGV[4]: now (ms),
-- ARGV[5]: step name, ARGV[6]: status (done|failed), ARGV[7]: the output of
-- a done record, or the error of a failed one (already clipped to
-- max_error_bytes by the backend, which cuts on a character boundary),
-- ARGV[8]: most steps an execution records (max_steps)
-- Returns: { 'ok', step } (the stored MessagePack step, written or
--   unchanged), { 'not_found' }, { 'lost', reason }, { 'conflict', state,
--   reason } or { 'corrupt', message }. Only the current live lease records:
--   a lease whose attempt ended, however (even completed by itself), is lost.
-- The judgement mirrors baton_core::raw::rules::judge_step, the lease check
-- baton_core::raw::rules::judge_lease and ended_lease_lost.
redis.register_function('baton_record_step', function(keys, args)
  local base, uuid = keys[1], args[1]
  local now = tonumber(args[4])
  local h, reply, ended = check_lease(base, uuid, args[2], args[3], now)
  if reply then return reply end
  if ended then return { 'lost', ENDED_WHY[ended] or 'the attempt already ended' } end
  local key = base .. ':st:' .. uuid
  local name, status, value = args[5], args[6], args[7]
  local stored = redis.call('HGET', key, name)
  local existing = stored and cmsgpack.unpack(stored)
  local held = tonumber(h.sn) or 0
  local verdict, to, failures = judge_step(name, existing, status, value, held,
    tonumber(args[8]))
  if not verdict then return { 'conflict', h.st, to } end
  if verdict == 'unchanged' then return { 'ok', stored } end
  local e = { s = to, a = h.att, f = s(failures), r = s(now) }
  if to == 'done' then
    e.o = value
    -- A done record after failures keeps the last failure's error.
    if existing then e.e = existing.e end
  else
    e.e = value
  end
  local packed = cmsgpack.pack(e)
  redis.call('HSET', key, name, packed)
  if not existing then
    h.sn = s(held + 1)
    save(base, uuid, h)
  end
  return { 'ok', packed }
end)
