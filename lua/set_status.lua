-- baton_set_status: sets the custom status of the running attempt's
-- execution, fenced by the lease (RFC 0008). A status other than the stored
-- one takes the next version (status_version) and is announced to readers
-- waiting for a change; the same status again keeps its version and
-- changes nothing. Stored in the record (`cs`, `cv`), so every snapshot
-- carries it; no state, `ua` or index changes.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: uuid, ARGV[2]: attempt, ARGV[3]: nonce, ARGV[4]: now (ms),
-- ARGV[5]: the status
-- Returns: { 'ok', version }, { 'not_found' }, { 'lost', reason } or
--   { 'corrupt', message }. Only the current live lease writes.
-- The version mirrors baton_core::raw::rules::status_version, the lease
-- check baton_core::raw::rules::judge_lease and ended_lease_lost.
redis.register_function('baton_set_status', function(keys, args)
  local base, uuid = keys[1], args[1]
  local now = tonumber(args[4])
  local h, reply, ended = check_lease(base, uuid, args[2], args[3], now)
  if reply then return reply end
  if ended then return { 'lost', ENDED_WHY[ended] or 'the attempt already ended' } end
  local version = tonumber(h.cv or '0')
  if not version then return { 'corrupt', 'status version ' .. tostring(h.cv) } end
  local changed
  changed, version = status_version(h.cs, version, args[5])
  if changed then
    h.cs, h.cv = args[5], s(version)
    save(base, uuid, h)
    announce_change(base, uuid, now)
  end
  return { 'ok', version }
end)
