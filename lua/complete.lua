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
  local snow = s(now)
  redis.call('HSET', key, 'st', 'completed', 'res', result, 'fa', snow, 'ua', snow,
    a .. 'e', snow, a .. 'o', 'completed')
  redis.call('HDEL', key, 'wid', 'ln', 'le')
  redis.call('ZREM', base .. ':leases', uuid)
  redis.call('ZADD', base .. ':done', snow, uuid)
  if h.dl then redis.call('ZREM', base .. ':deadlines', uuid) end
  count(base, h, 'running', -1)
  count(base, h, 'completed', 1)
  -- The reply is the hash as it now stands, without reading it again.
  h.st, h.res, h.fa, h.ua, h[a .. 'e'], h[a .. 'o'] = 'completed', result, snow, snow, snow, 'completed'
  h.wid, h.ln, h.le = nil, nil, nil
  return { 'ok', { 0 }, flat(h) }
end)
