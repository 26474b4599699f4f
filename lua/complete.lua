-- baton_complete: completes attempts fenced by leases; several concurrent
-- completes of one partition travel in one call, each judged on its own
-- lease exactly as if it came alone.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: item count n
-- ARGV[2..]: per item, 5 values: uuid, attempt, nonce, result, now (ms)
-- Returns: one reply per item, in order: { 'ok', woken, snapshot } (snapshot
--   = the execution's fields as a flat field/value list, payload as `pl`),
--   { 'conflict', state, reason }, { 'lost', reason }, { 'not_found' } or
--   { 'corrupt', message }. A replay with the same result answers 'ok'.

local function complete_one(base, uuid, attempt, nonce, result, now, batch)
  local h, reply, ended = check_lease(base, uuid, attempt, nonce, now)
  if reply then return reply end
  if ended == 'completed' then
    if h.res == result then return { 'ok', { 0 }, snapshot(base, uuid) } end
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
  batch.leases[#batch.leases + 1] = uuid
  push(batch.adds, base .. ':done', snow, uuid)
  if h.dl then batch.deadlines[#batch.deadlines + 1] = uuid end
  local lid = lane_id(h)
  batch.counts[lid .. '/running'] = (batch.counts[lid .. '/running'] or 0) - 1
  batch.counts[lid .. '/completed'] = (batch.counts[lid .. '/completed'] or 0) + 1
  -- The reply is the hash as it now stands, without reading it again.
  h.st, h.res, h.fa, h.ua, h[a .. 'e'], h[a .. 'o'] = 'completed', result, snow, snow, snow, 'completed'
  h.wid, h.ln, h.le = nil, nil, nil
  local out = flat(h)
  out[#out + 1] = 'pl'
  out[#out + 1] = redis.call('GET', base .. ':p:' .. uuid) or ''
  return { 'ok', { 0 }, out }
end

redis.register_function('baton_complete', function(keys, args)
  local base = keys[1]
  local n = tonumber(args[1])
  local batch = { leases = {}, deadlines = {}, adds = {}, counts = {} }
  local out = {}
  for i = 0, n - 1 do
    local o = 2 + i * 5
    out[#out + 1] = complete_one(base, args[o], tonumber(args[o + 1]), args[o + 2], args[o + 3],
      tonumber(args[o + 4]), batch)
  end
  for i = 1, #batch.leases, 1000 do
    redis.call('ZREM', base .. ':leases', unpack(batch.leases, i, math.min(i + 999, #batch.leases)))
  end
  for i = 1, #batch.deadlines, 1000 do
    redis.call('ZREM', base .. ':deadlines',
      unpack(batch.deadlines, i, math.min(i + 999, #batch.deadlines)))
  end
  flush(base, batch.adds, batch.counts)
  return out
end)
