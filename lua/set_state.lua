-- baton_set_state: sets or clears one key of the key-value state of the
-- running attempt's execution, fenced by the lease (RFC 0008). Judged
-- against the key as stored (judge_state): the same value again, or
-- clearing a key not held, changes nothing; a new key beyond the limit is a
-- conflict; otherwise the value is stored with the lease's attempt and now
-- (a new key counts one more in `kc`), or the key removed (one less).
-- Nothing else changes: no state, no `ua`, no index, no announcement (state
-- is not what wait_for_change follows).
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: uuid, ARGV[2]: attempt, ARGV[3]: nonce, ARGV[4]: now (ms),
-- ARGV[5]: state key, ARGV[6]: 'set' | 'clear', ARGV[7]: the value ('' when
-- clearing), ARGV[8]: most keys an execution holds (max_state_keys)
-- Returns: { 'ok' }, { 'not_found' }, { 'lost', reason }, { 'conflict', state,
--   reason } or { 'corrupt', message }. Only the current live lease writes.
-- The judgement mirrors baton_core::raw::rules::judge_state, the lease check
-- baton_core::raw::rules::judge_lease and ended_lease_lost.
redis.register_function('baton_set_state', function(keys, args)
  local base, uuid = keys[1], args[1]
  local now = tonumber(args[4])
  local h, reply, ended = check_lease(base, uuid, args[2], args[3], now)
  if reply then return reply end
  if ended then return { 'lost', ENDED_WHY[ended] or 'the attempt already ended' } end
  local key = base .. ':kv:' .. uuid
  local name = args[5]
  local value = nil
  if args[6] == 'set' then value = args[7] end
  local stored = redis.call('HGET', key, name)
  local existing = stored and cmsgpack.unpack(stored).v
  local held = tonumber(h.kc) or 0
  local verdict, why = judge_state(name, existing, value, held, tonumber(args[8]))
  if not verdict then return { 'conflict', h.st, why } end
  if verdict == 'set' then
    redis.call('HSET', key, name, cmsgpack.pack({ v = value, a = h.att, u = s(now) }))
    if not stored then
      h.kc = s(held + 1)
      save(base, uuid, h)
    end
  elseif verdict == 'clear' then
    redis.call('HDEL', key, name)
    if held > 1 then h.kc = s(held - 1) else h.kc = nil end
    save(base, uuid, h)
  end
  return { 'ok' }
end)
