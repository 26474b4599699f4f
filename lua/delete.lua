-- baton_delete: one unit of a delete (AdminBackend::delete_units). For each
-- id, in order: an execution whose whole subtree finished (and on which no
-- unfinished execution depends) is removed; one that has not finished, or
-- has unfinished descendants, is cancelled first
-- with `force` when it is the root of its flow (delete_verdict, which
-- mirrors baton_core::raw::rules::check_delete): an unfinished one as
-- baton_cancel cancels it with scope tree, a finished one only below it.
-- Then its descendants are removed newest first (no parent before its
-- children) and itself last, as the trim pass removes them
-- (remove_execution), until the unit has removed `budget` executions;
-- ids after that answer a part with nothing done.
-- While the partition's cascade queue holds work (at the start, or left by
-- a cancel of this unit), a queued walk could still reach what would be
-- removed: such an id answers 'contention' (the caller runs the cascade
-- pass and asks again), and one whose own cancel left the work answers
-- done 0, cancelled 1, nothing removed.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: now (ms), ARGV[2]: force (1|0), ARGV[3]: cascade budget
-- (children a cancel's walk visits; executions the unit removes),
-- ARGV[4]: the cancel reason stored on what a forced delete cancels,
-- then per id: its uuid, and the reason stored on the descendants its
-- cancel reaches
-- Returns: { woken, part... } with woken as woken_reply and one part per
--   id, in order: { 'ok', removed, done (1|0), cancelled (1|0) },
--   { 'not_found' }, { 'conflict', state, reason } or { 'contention' }.

-- The descendants of the flow member `uuid`, walked level by level through
-- the children indexes: { uuid, record } pairs, newest first, and whether
-- any of them has not finished.
local function member_descendants(base, uuid)
  local found, open = {}, false
  local frontier = { uuid }
  while #frontier > 0 do
    local parent = table.remove(frontier)
    for _, c in ipairs(redis.call('ZRANGE', base .. ':ch:' .. parent, 0, -1)) do
      local ch = load(base, c)
      if ch then
        found[#found + 1] = { c, ch }
        if not TERMINAL[ch.st] then open = true end
        frontier[#frontier + 1] = c
      end
    end
  end
  table.sort(found, function(a, b) return a[1] > b[1] end)
  return found, open
end

-- Whether an unfinished execution depends on the member `uuid` or on one
-- of its descendants `below` ({ uuid, record } pairs): their dependents
-- read their results when they run.
local function open_dependents_of(base, uuid, below)
  local ups = { uuid }
  for _, pair in ipairs(below or {}) do ups[#ups + 1] = pair[1] end
  for _, up in ipairs(ups) do
    for _, d in ipairs(redis.call('ZRANGE', base .. ':dn:' .. up, 0, -1)) do
      local dh = load(base, d)
      if dh and not TERMINAL[dh.st] then return true end
    end
  end
  return false
end

redis.register_function('baton_delete', function(keys, args)
  local base = keys[1]
  local now = tonumber(args[1])
  local snow = s(now)
  local force = args[2] == '1'
  local budget = tonumber(args[3])
  local reason = args[4]
  local left = math.max(budget, 1)
  local queued = redis.call('LLEN', base .. ':cq') > 0
  local woken = {}
  local reply = { false }

  -- One id: its part, `left` going down by what it removed.
  local function delete_one(uuid, h, below_why)
    local is_root = not h.par
    local below, open_below = nil, false
    if TERMINAL[h.st] then
      if is_root then
        open_below = open_members(base, uuid) > 0
      else
        below, open_below = member_descendants(base, uuid)
      end
    end
    -- Read only when it can change the verdict (DeleteFacts::needs_dependents).
    local open_dependents = false
    if not is_root and TERMINAL[h.st] and not open_below then
      open_dependents = open_dependents_of(base, uuid, below)
    end
    local verdict, why = delete_verdict(h.st, not is_root, open_below, open_dependents, force)
    if not verdict then return { 'conflict', h.st, why } end
    local cancelled = 0
    if verdict == 'cancel_first' then
      if TERMINAL[h.st] then
        cancel_below(base, uuid, below_why, budget, snow, woken)
      else
        cancel_execution(base, uuid, h, reason, true, below_why, budget, snow, woken)
      end
      cancelled = 1
      if redis.call('LLEN', base .. ':cq') > 0 then
        -- The cancel goes on in the cascade pass; nothing is removed until
        -- it is done.
        queued = true
        return { 'ok', 0, 0, cancelled }
      end
      -- The cancel changed its record, or its children's count in it.
      h = load(base, uuid)
      if not h then error('execution record ' .. uuid .. ' vanished while its tree was cancelled') end
      -- And the records below a member: the copies read to judge the
      -- delete would be stale (their state, which remove_execution counts
      -- down, and their history's `ev`), so they are read again. Not
      -- reached while delete_verdict refuses a member with unfinished
      -- descendants (only a flow's root cancels first; its members are
      -- read below, after the cancel).
      if below then below = member_descendants(base, uuid) end
    end
    local removed, take, total = 0, 0, 0
    if is_root then
      local key = base .. ':tr:' .. uuid
      local members = redis.call('ZREVRANGEBYLEX', key, '+', '-', 'LIMIT', 0, left + 1)
      total = #members
      take = math.min(total, left)
      for j = 1, take do
        local m = members[j]
        local mh = load(base, m)
        if mh then
          remove_execution(base, m, mh, now)
          removed = removed + 1
        else
          redis.call('ZREM', key, m)
        end
      end
    else
      total = #below
      take = math.min(total, left)
      for j = 1, take do remove_execution(base, below[j][1], below[j][2], now) end
      removed = take
    end
    left = left - take
    local done = 0
    if take == total and left > 0 then
      remove_execution(base, uuid, h, now)
      left = left - 1
      removed = removed + 1
      done = 1
    end
    return { 'ok', removed, done, cancelled }
  end

  for i = 5, #args - 1, 2 do
    local uuid = args[i]
    local part
    if left == 0 then
      part = { 'ok', 0, 0, 0 }
    else
      local h = load(base, uuid)
      if not h then
        part = { 'not_found' }
      elseif queued then
        part = { 'contention' }
      else
        part = delete_one(uuid, h, args[i + 1])
      end
    end
    reply[#reply + 1] = part
  end
  reply[1] = woken_reply(base, woken)
  return reply
end)
