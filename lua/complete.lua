-- baton_complete: completes attempts fenced by leases; several concurrent
-- completes of one partition travel in one call, each judged on its own
-- lease exactly as if it came alone.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: item count n
-- ARGV[2..]: per item, 5 values: uuid, attempt, nonce, result, now (ms);
--   attempt and now as decimal text (they are stored as sent)
-- Returns: a flat array of three values per item, in order: 'ok', record,
--   '' (record = the execution as stored, a MessagePack map; the payload is
--   not in the reply: the backend reads it with a plain MGET sent before
--   this call; the third value is '', or for a child the woken-lanes reply
--   of a parent it released), 'conflict', state, reason, 'lost', reason, '',
--   'not_found', '', '' or 'corrupt', message, ''. A replay with the same
--   result answers 'ok'. (Flat, because a table per item is a measurable
--   share of the call; only a child's complete can wake a lane.)

-- `batch.records` holds every record of the call, read with one MGET and
-- updated in place, so a later item of the same execution sees what an
-- earlier one did; `batch.dirty` lists the records to write back.
-- Answers the item's three reply values.
local function complete_one(base, uuid, attempt, nonce, result, snow, batch)
  local h, reply, ended = check_loaded(batch.records[uuid], attempt, nonce, tonumber(snow))
  if reply then return reply[1], reply[2] or '', reply[3] or '' end
  if ended == 'completed' then
    if h.res == result then
      return 'ok', cmsgpack.pack(h), ''
    end
    return 'conflict', h.st, 'this lease already completed it with a different result'
  elseif ended == 'failed' then
    return 'conflict', h.st, 'attempt ' .. attempt .. ' already failed'
  elseif ended then
    return 'lost', ENDED_WHY[ended] or 'the attempt already ended', ''
  end
  local a = 'a' .. attempt
  batch.leases[#batch.leases + 1] = uuid
  if h.fl then
    member_finished(base, h)
  else
    push(batch.adds, batch.done, snow, uuid)
  end
  if h.dl then batch.deadlines[#batch.deadlines + 1] = uuid end
  local lid = lane_id(h)
  batch.counts[lid .. '/running'] = (batch.counts[lid .. '/running'] or 0) - 1
  batch.counts[lid .. '/completed'] = (batch.counts[lid .. '/completed'] or 0) + 1
  h.st, h.res, h.fa, h.ua, h[a .. 'e'], h[a .. 'o'] = 'completed', result, snow, snow, snow, 'completed'
  drop_lease(h)
  local packed = cmsgpack.pack(h)
  if not batch.dirty[uuid] then batch.order[#batch.order + 1] = uuid end
  batch.dirty[uuid] = packed
  if h.fl then
    -- A parent waiting for its children may be released (and its lane
    -- woken): the reply's third value carries the woken lanes then.
    local woken = {}
    child_finished(base, h, woken, batch)
    return 'ok', packed, woken_reply(base, woken)
  end
  return 'ok', packed, ''
end

-- Its verdict on a repeated call mirrors baton_core::raw::rules::complete_replay.
redis.register_function('baton_complete', function(keys, args)
  local base = keys[1]
  local n = tonumber(args[1])
  local batch = { leases = {}, deadlines = {}, adds = {}, counts = {}, records = {}, dirty = {},
    order = {}, done = base .. ':done' }
  local rkeys, ulist, seen = {}, {}, {}
  for i = 0, n - 1 do
    local uuid = args[2 + i * 5]
    if not seen[uuid] then
      seen[uuid] = true
      ulist[#ulist + 1] = uuid
      rkeys[#rkeys + 1] = base .. ':e:' .. uuid
    end
  end
  for i = 1, #rkeys, 1000 do
    local got = redis.call('MGET', unpack(rkeys, i, math.min(i + 999, #rkeys)))
    for j = 1, #got do
      if got[j] then batch.records[ulist[i + j - 1]] = cmsgpack.unpack(got[j]) end
    end
  end
  local out = {}
  for i = 0, n - 1 do
    local o = 2 + i * 5
    local k = #out
    out[k + 1], out[k + 2], out[k + 3] = complete_one(base, args[o], args[o + 1], args[o + 2],
      args[o + 3], args[o + 4], batch)
  end
  local writes = {}
  for _, uuid in ipairs(batch.order) do
    writes[#writes + 1] = base .. ':e:' .. uuid
    writes[#writes + 1] = batch.dirty[uuid]
  end
  for i = 1, #writes, 1000 do
    redis.call('MSET', unpack(writes, i, math.min(i + 999, #writes)))
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
