-- baton_complete: completes the attempt fenced by a lease.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: uuid, ARGV[2]: attempt, ARGV[3]: nonce, ARGV[4]: result, ARGV[5]: now (ms)
-- Returns: { 'ok', woken, snapshot } (snapshot = the execution hash as HGETALL),
--   { 'conflict', state, reason }, { 'lost', reason }, { 'not_found' } or
--   { 'corrupt', message }. A replay with the same result answers 'ok'.
redis.register_function('baton_complete', function(keys, args)
  local base, uuid = keys[1], args[1]
  local attempt, nonce, result = tonumber(args[2]), args[3], args[4]
  local now = tonumber(args[5])
  local h, reply, ended = check_lease(base, uuid, attempt, nonce, now)
  if reply then return reply end
  if ended == 'completed' then
    if h.res == result then return { 'ok', { seq(base) }, snapshot(base, uuid) } end
    return { 'conflict', h.st, 'this lease already completed it with a different result' }
  elseif ended == 'failed' then
    return { 'conflict', h.st, 'attempt ' .. attempt .. ' already failed' }
  elseif ended then
    return { 'lost', ENDED_WHY[ended] or 'the attempt already ended' }
  end
  local key = base .. ':e:' .. uuid
  local a = 'a' .. attempt
  h.fa = now
  redis.call('HSET', key, 'res', result, 'fa', s(now), 'ua', s(now), a .. 'e', s(now),
    a .. 'o', 'completed')
  drop_lease(base, uuid, h)
  local woken = {}
  move(base, uuid, h, 'completed', woken)
  return { 'ok', woken_reply(base, woken), snapshot(base, uuid) }
end)
