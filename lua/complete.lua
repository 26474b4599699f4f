-- baton_complete: completes attempts fenced by leases; several concurrent
-- completes of one partition travel in one call, each judged on its own
-- lease exactly as if it came alone. Each completion is recorded in the
-- execution's history.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: item count n
-- ARGV[2..]: per item, 5 values: uuid, attempt, nonce, result, now (ms);
--   attempt and now as decimal text (they are stored as sent)
-- ARGV[2 + 5n]: cascade budget: dependents visited for each completed
--   execution that has dependents (the rest is queued for baton_cascade)
-- Returns: a flat array of three values per item, in order: 'ok', record,
--   '' (record = the execution as stored, a MessagePack map; the payload is
--   not in the reply: the backend reads it with a plain MGET sent before
--   this call; the third value is '', or for a child or an execution with
--   dependents the woken-lanes reply of a parent or dependents it
--   released, and for a run holding limit slots the reply carrying their
--   release), 'conflict', state, reason, 'lost', reason, '',
--   'not_found', '', '' or 'corrupt', message, ''. A replay with the same
--   result answers 'ok'. (Flat, because a table per item is a measurable
--   share of the call; only the complete of a child or of an execution with
--   dependents can wake a lane.)

-- `batch.records` holds every record of the call, read with one MGET and
-- updated in place, so a later item of the same execution sees what an
-- earlier one did; `batch.dirty` lists the records to write back.
-- Answers the item's three reply values (the third a table of woken lanes
-- for a child or an execution with dependents: see baton_complete).
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
  elseif h.kp then
    -- As place_finished does, batched.
    push(batch.adds, batch.kept, s(tonumber(snow) + tonumber(h.kp)), uuid)
  else
    push(batch.adds, batch.done, snow, uuid)
  end
  if h.dl then batch.deadlines[#batch.deadlines + 1] = uuid end
  local lid = lane_id(h)
  batch.counts[lid .. '/running'] = (batch.counts[lid .. '/running'] or 0) - 1
  batch.counts[lid .. '/completed'] = (batch.counts[lid .. '/completed'] or 0) + 1
  -- The one end of a run made without move(): it releases the run's limit
  -- slots itself (the reply's third value carries the release then).
  local released = nil
  if h.lh and release_on('running', 'completed') then
    released = {}
    release_slots(base, uuid, h, released)
  end
  h.st, h.res, h.fa, h.ua, h[a .. 'e'], h[a .. 'o'] = 'completed', result, snow, snow, snow, 'completed'
  drop_lease(h)
  record_transition(base, uuid, h, 'running', nil)
  -- The one terminal transition made without enter(): it tells waiting
  -- readers itself, when the partition has any (see baton_complete).
  if batch.watched then announce_change(base, uuid, tonumber(snow)) end
  local packed = cmsgpack.pack(h)
  if not batch.dirty[uuid] then batch.order[#batch.order + 1] = uuid end
  batch.dirty[uuid] = packed
  if h.fl or h.hd or released then
    -- A parent waiting for its children may be released, and dependents
    -- (told once the batch's records are written), and their lanes woken:
    -- the reply's third value carries the woken lanes then.
    local woken = released or {}
    if h.fl then child_finished(base, h, woken, batch) end
    if h.hd then batch.told[#batch.told + 1] = { uuid, snow, woken } end
    batch.woke = true
    return 'ok', packed, woken
  end
  return 'ok', packed, ''
end

-- Its verdict on a repeated call mirrors baton_core::raw::rules::complete_replay.
redis.register_function('baton_complete', function(keys, args)
  local base = keys[1]
  local n = tonumber(args[1])
  -- An empty zset does not exist, so one EXISTS tells whether any reader
  -- waits for an execution of this partition: without one, no item pays
  -- for a lookup of its own (most calls, and most of the work).
  local batch = { leases = {}, deadlines = {}, adds = {}, counts = {}, records = {}, dirty = {},
    order = {}, done = base .. ':done', kept = base .. ':kept', told = {},
    watched = redis.call('EXISTS', base .. ':watch') == 1 }
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
  -- Each completed execution with dependents tells them with a budget of
  -- its own, as if it came alone, reading what the batch wrote.
  if #batch.told > 0 then
    local budget = tonumber(args[2 + n * 5])
    for _, t in ipairs(batch.told) do
      local woken = t[3]
      woken.told = { { t[1], '', true } }
      tell_dependents(base, budget, t[2], woken)
    end
  end
  if batch.woke then
    for i = 3, #out, 3 do
      if type(out[i]) == 'table' then out[i] = woken_reply(base, out[i]) end
    end
  end
  return out
end)
