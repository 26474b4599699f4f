-- baton_append_progress: appends a progress frame to the running attempt's
-- execution, fenced by the lease (RFC 0008): it takes the next number (the
-- record's `pq` + 1), the lease's attempt and now; frames older than the
-- bound keeps (first_kept_frame) are dropped, and readers waiting for a
-- change are told. Numbers are never reused: `pq` stays when frames go.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: uuid, ARGV[2]: attempt, ARGV[3]: nonce, ARGV[4]: now (ms),
-- ARGV[5]: the frame, ARGV[6]: most frames an execution keeps
-- (max_progress_frames)
-- Returns: { 'ok', number }, { 'not_found' }, { 'lost', reason } or
--   { 'corrupt', message }. Only the current live lease appends.
-- The bound mirrors baton_core::raw::rules::first_kept_frame, the lease
-- check baton_core::raw::rules::judge_lease and ended_lease_lost.
redis.register_function('baton_append_progress', function(keys, args)
  local base, uuid = keys[1], args[1]
  local now = tonumber(args[4])
  local h, reply, ended = check_lease(base, uuid, args[2], args[3], now)
  if reply then return reply end
  if ended then return { 'lost', ENDED_WHY[ended] or 'the attempt already ended' } end
  local last = tonumber(h.pq or '0')
  if not last then return { 'corrupt', 'progress number ' .. tostring(h.pq) } end
  local seq = last + 1
  local key = base .. ':pg:' .. uuid
  redis.call('ZADD', key, s(seq),
    cmsgpack.pack({ s = s(seq), t = s(now), a = h.att, f = args[5] }))
  local first = first_kept_frame(seq, tonumber(args[6]))
  if first > 1 then redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. s(first)) end
  h.pq = s(seq)
  save(base, uuid, h)
  announce_change(base, uuid, now)
  return { 'ok', seq }
end)
