-- baton_create: creates one partition's share of a create batch.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: item count n
-- ARGV[2..]: per item, 12 values: uuid ns lane state member caps
--   idempotency_key run_at deadline ('' = none) record session version_key
--   ('' = none; the record holds them too, as ses and vk), where member is the
--   claim-order member of a waiting execution (see member() in common.lua;
--   computed by the backend), record the execution as stored (a MessagePack
--   map of text fields, encoded by the backend), and the values before it
--   are what the indexes need. In a lane a fair limit orders (this
--   partition's copy `lim:<ns>` names its key spec: see fair_place in
--   common.lua) a waiting item's member is computed here instead, from its
--   turn, which replaces rd in its record (with fk, its key).
-- ARGV[2 + 10n]: m, how many items are children (0 for a batch outside
--   flows, so it pays nothing for them), then m × 4 values: the item's
--   position (from 0), its parent's uuid, its child key ('' = none), its
--   root's uuid
-- ARGV[3 + 10n + 4m]: d, how many items have dependencies (0 for a batch
--   without), then d positions (from 0, ascending). Such an item's record
--   holds dp, dt and deps (see common.lua); its state is decided here from
--   its upstreams' states (blocked, waiting, skipped or failed), and so are
--   dd, db, and fa / err of one created finished. Every upstream must exist,
--   in the item's namespace and flow (checked before anything is written:
--   a refused one answers { 'dependency_refused', item, upstream uuid,
--   its namespace | '' (missing), its stored root | '' } and deletes this
--   call's payload keys). Its upstreams get hd and the item in their dn:
--   set. An item created finished is not counted in its parent's oc nor in
--   its root's open: count.
-- ARGV[4 + 10n + 4m + d]: now (ms), every item's created_at: the time of
--   its first event (its history's element 1).
-- An item created in a namespace whose history is on in this partition
--   (the hash B:{p:N}:hx, read once per namespace of the call) gets hx '1'
--   and ev '1' in its record and its first event; the others get neither,
--   and nothing more is written for them.
-- A root item (no parent) covered by a retention rule in this partition
--   (the hash B:{p:N}:ret, read once per namespace and lane of the call;
--   see keep_for in common.lua) gets kp, the rule's keep in ms, in its
--   record; the others (and every child: it goes with its root) get none.
-- Payloads never pass through Lua: the backend writes every item's payload
--   key B:{p:N}:p:<uuid> with one MSET in the same MULTI … EXEC, right
--   before this call, so a record and its payload appear together.
-- Every parent the items name must exist (checked before anything is
--   written: a parent trimmed since the backend read it would leave its child
--   outside any flow); a missing one answers { 'parent_missing', item } (the
--   item's position, from 0) and deletes this call's payload keys.
-- Returns: { woken, outcome... } where woken = { seq, lane... } (lanes whose
--   waiting set turned non-empty) and each outcome is three values (flat):
--   uuid, state, created (1|0).
--   An item whose idempotency key exists (in its namespace, lane and
--   session: see idem_field), or whose child key exists among
--   its parent's children, answers the existing uuid and state (and the
--   payload written for it is deleted).
local CREATE_FIELDS = 12

redis.register_function('baton_create', function(keys, args)
  local base = keys[1]
  local n = tonumber(args[1])
  local woken, out = {}, {}
  -- Index writes are batched per key: one ZADD per index, one HINCRBY per
  -- lane and state, whatever the batch size.
  -- Records are written together at the end; `created` serves a repeated
  -- idempotency key within this batch.
  local flow = {}
  local at = 2 + n * CREATE_FIELDS
  for j = 0, tonumber(args[at] or '0') - 1 do
    local o = at + 1 + j * 4
    local pos, par = tonumber(args[o]), args[o + 1]
    if redis.call('EXISTS', base .. ':e:' .. par) == 0 then
      for k = 0, n - 1 do
        redis.call('DEL', base .. ':p:' .. args[2 + k * CREATE_FIELDS])
      end
      return { 'parent_missing', pos }
    end
    flow[pos] = { par, args[o + 2], args[o + 3] }
  end
  -- Dependencies, checked and judged before anything is written.
  local deps = {}
  local dat = at + 1 + tonumber(args[at] or '0') * 4
  -- Upstream records, read once for the checks and the dependents index.
  local looked = {}
  local function lookup(uuid)
    local h = looked[uuid]
    if h == nil then
      h = load(base, uuid) or false
      looked[uuid] = h
    end
    return h or nil
  end
  for j = 1, tonumber(args[dat] or '0') do
    local pos = tonumber(args[dat + j])
    local rec = cmsgpack.unpack(args[2 + pos * CREATE_FIELDS + 9])
    local ups, done, bad, st = dependency_start(rec, (flow[pos] and flow[pos][3]) or '', lookup)
    if not ups then
      -- Refused: the second and third answers name the upstream and its record.
      local up, uh = done, bad
      for k = 0, n - 1 do
        redis.call('DEL', base .. ':p:' .. args[2 + k * CREATE_FIELDS])
      end
      return { 'dependency_refused', pos, up, (uh and uh.ns) or '', (uh and uh.rt) or '' }
    end
    deps[pos] = { rec = rec, ups = ups, done = done, bad = bad, st = st }
  end
  local now = args[dat + 1 + tonumber(args[dat] or '0')]
  -- Whether each namespace of the call keeps histories, read once per
  -- namespace; the first event of an item is the same for every item
  -- created in its state: packed once per state.
  local histories, firsts = {}, {}
  -- The keep of the rule covering each namespace and lane of the call.
  local keeps = {}
  -- The fair limit's key spec of each namespace and lane of the call.
  local fairs = {}
  local adds, counts, was_empty, lanes, writes, created, unused = {}, {}, {}, {}, {}, {}, {}
  local opened, children, upstreams = {}, {}, {}
  for i = 0, n - 1 do
    local o = 2 + i * CREATE_FIELDS
    local uuid, ns, lane = args[o], args[o + 1], args[o + 2]
    local ik = args[o + 6]
    local ses, vk = args[o + 10], args[o + 11]
    if ses == '' then ses = nil end
    if vk == '' then vk = nil end
    local par, ck, rt = '', '', ''
    local f = flow[i]
    if f then par, ck, rt = f[1], f[2], f[3] end
    local existing = false
    if ik ~= '' then
      local field = idem_field(ns, lane, ses, ik)
      existing = redis.call('HGET', base .. ':idem', field)
      if not existing then redis.call('HSET', base .. ':idem', field, uuid) end
    elseif ck ~= '' then
      existing = redis.call('HGET', base .. ':ck:' .. par, ck)
      if not existing then redis.call('HSET', base .. ':ck:' .. par, ck, uuid) end
    end
    if existing then
      local prior = created[existing] or load(base, existing)
      local k = #out
      out[k + 1], out[k + 2], out[k + 3] = existing, (prior and prior.st) or '', 0
      unused[#unused + 1] = base .. ':p:' .. uuid
    else
      local h = { ns = ns, lane = lane, st = args[o + 3], caps = args[o + 5], ses = ses, vk = vk }
      local record = args[o + 9]
      -- The record as a table, only when this call changes it (packed
      -- again below).
      local rec = nil
      local d = deps[i]
      if d then
        rec = d.rec
        h.st, rec.st = d.st, d.st
        if d.done > 0 then rec.dd = s(d.done) end
        if d.bad > 0 then rec.db = s(d.bad) end
        if TERMINAL[d.st] then
          rec.fa = rec.ca
          if d.st == 'failed' then
            rec.err = dependency_failure(rec.dp, tonumber(rec.dt) or #d.ups, d.bad)
          end
        end
        for _, up in ipairs(d.ups) do
          -- An upstream already finished was counted here; only the others
          -- tell this dependent when they finish (a cascade still queued
          -- for a finished one must not count it again).
          local uh = lookup(up)
          if not (uh and TERMINAL[uh.st]) then
            push(adds, base .. ':dn:' .. up, 0, uuid)
            upstreams[up] = true
          end
        end
      end
      local finished = TERMINAL[h.st]
      if args[o + 7] ~= '' then h.ra = args[o + 7] end
      if args[o + 8] ~= '' then
        h.dl = args[o + 8]
        if not finished then push(adds, base .. ':deadlines', h.dl, uuid) end
      end
      local history = histories[ns]
      if history == nil then
        history = redis.call('HEXISTS', base .. ':hx', ns) == 1
        histories[ns] = history
      end
      if history then
        rec = rec or cmsgpack.unpack(record)
        rec.hx, rec.ev = '1', '1'
        local first = firsts[h.st]
        if not first then
          first = first_event(h.st, now)
          firsts[h.st] = first
        end
        redis.call('RPUSH', base .. ':ev:' .. uuid, first)
      end
      if par == '' then
        local keep = rule_keep(base, ns, lane, keeps)
        if keep then
          rec = rec or cmsgpack.unpack(record)
          rec.kp = s(keep)
        end
      end
      -- In a lane a fair limit orders, a waiting item takes its turn now,
      -- each after the items before it (every waiting item of such a lane
      -- is placed here, so each sees the ones placed before it).
      local lid = lane_id(h)
      local queued = false
      if h.st == 'waiting' and fair_spec(base, ns, lane, fairs) then
        if was_empty[lid] == nil then
          was_empty[lid] = lane_empty(base, lid)
          lanes[#lanes + 1] = lid
        end
        rec = rec or cmsgpack.unpack(record)
        queue(base, uuid, rec, fairs)
        queued = true
      end
      if rec then record = cmsgpack.pack(rec) end
      created[uuid] = h
      writes[#writes + 1] = base .. ':e:' .. uuid
      writes[#writes + 1] = record
      push(adds, base .. ':ns:' .. ns, 0, uuid)
      if par ~= '' then
        push(adds, base .. ':ch:' .. par, 0, uuid)
        if not finished then children[par] = (children[par] or 0) + 1 end
      end
      if rt ~= '' then
        push(adds, base .. ':tr:' .. rt, 0, uuid)
        if not finished then opened[rt] = (opened[rt] or 0) + 1 end
      end
      counts[lid .. '/' .. h.st] = (counts[lid .. '/' .. h.st] or 0) + 1
      if h.st == 'waiting' and not queued then
        if was_empty[lid] == nil then
          was_empty[lid] = lane_empty(base, lid)
          lanes[#lanes + 1] = lid
        end
        push(adds, waiting_key(base, h), 0, args[o + 4])
      elseif h.st == 'delayed' then
        push(adds, base .. ':delayed', h.ra, uuid)
      end
      local k = #out
      out[k + 1], out[k + 2], out[k + 3] = uuid, h.st, 1
    end
  end
  for i = 1, #writes, 1000 do
    redis.call('MSET', unpack(writes, i, math.min(i + 999, #writes)))
  end
  for i = 1, #unused, 1000 do
    redis.call('DEL', unpack(unused, i, math.min(i + 999, #unused)))
  end
  flush(base, adds, counts)
  for rt, n in pairs(opened) do redis.call('INCRBY', base .. ':open:' .. rt, n) end
  -- Every new child is open for its parent until it finishes.
  for par, n in pairs(children) do
    local ph = load(base, par)
    if ph then
      ph.oc = s((tonumber(ph.oc) or 0) + n)
      save(base, par, ph)
    end
  end
  -- Upstreams tell their dependents when they finish.
  for up in pairs(upstreams) do
    local uh = load(base, up)
    if uh and not uh.hd then
      uh.hd = '1'
      save(base, up, uh)
    end
  end
  for _, lid in ipairs(lanes) do
    if was_empty[lid] then
      redis.call('INCR', base .. ':seq')
      redis.call('SADD', base .. ':lanes', lid)
      woken[#woken + 1] = lid
    end
  end
  local reply = { woken_reply(base, woken) }
  for i = 1, #out do reply[#reply + 1] = out[i] end
  return reply
end)
