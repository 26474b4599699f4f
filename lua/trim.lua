-- baton_trim: scheduler pass; deletes finished flows whose root is due,
-- earliest due first, with their attempts, index entries, idempotency
-- keys, signals, steps, state, progress frames and watch marks (a reader
-- still waiting is told, so it reads at once that the execution is gone).
-- An execution outside flows is a flow of one. Only roots are read: a
-- member is trimmed with its root, newest member first (no parent before
-- its children), the root last. At most `limit` deletions per call.
-- Due roots are read from two sets, each up to `limit`: `done` (roots
-- without a keep of their own, due the default after since) up to the
-- cutoff, and `kept` (roots stamped with a rule's keep, kp, scored by when
-- they are due) up to now; merged by due time, then uuid, and the first
-- `limit` judged. Each is judged under the retention rule in force now
-- (the partition's `ret` hash): one the rule says is not due yet is
-- re-stamped with that rule's keep (or none: the default) and placed where
-- it falls due; one due whose flow has an unfinished member is looked at
-- again a keep later (since = now, re-stamped likewise). Neither counts as
-- a deletion.
-- Every pass first drops the partition's watch marks past their time.
-- Mirrors the SQL backends' trim_terminal (the verdicts are trim_verdict
-- and trim_relook in common.lua); what it removes of each execution is
-- remove_execution's (common.lua), shared with baton_delete.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: cutoff (ms; now - the default retention), ARGV[2]: limit,
--   ARGV[3]: now (ms), ARGV[4]: the default retention (ms)
-- Returns: { processed, the first score of `done` | '', the first score of
--   `kept` | '' } (the earliest a root left falls due: the first plus the
--   default, the second as it is)

-- Stamps the loaded finished root `uuid` with `keep` (ms; nil: the
-- default) counted from `since` (ms) and places it where it falls due.
local function restamp(base, uuid, h, keep, since)
  local kp = nil
  if keep then kp = s(keep) end
  if kp ~= h.kp then
    h.kp = kp
    save(base, uuid, h)
  end
  if kp then
    redis.call('ZREM', base .. ':done', uuid)
  else
    redis.call('ZREM', base .. ':kept', uuid)
  end
  place_finished(base, uuid, h, since)
end

redis.register_function('baton_trim', function(keys, args)
  local base = keys[1]
  local limit = tonumber(args[2])
  local now = tonumber(args[3])
  local default_ms = tonumber(args[4])
  local done, kept = base .. ':done', base .. ':kept'
  redis.call('ZREMRANGEBYSCORE', base .. ':watch', '-inf', '(' .. args[3])
  local due = {}
  local plain = redis.call('ZRANGEBYSCORE', done, '-inf', args[1], 'WITHSCORES', 'LIMIT', 0, limit)
  for i = 1, #plain, 2 do
    local score = tonumber(plain[i + 1])
    due[#due + 1] = { uuid = plain[i], at = score + default_ms, score = score }
  end
  local stamped = redis.call('ZRANGEBYSCORE', kept, '-inf', args[3], 'WITHSCORES', 'LIMIT', 0,
    limit)
  for i = 1, #stamped, 2 do
    local score = tonumber(stamped[i + 1])
    due[#due + 1] = { uuid = stamped[i], at = score, score = score, kept = true }
  end
  table.sort(due, function(a, b)
    if a.at ~= b.at then return a.at < b.at end
    return a.uuid < b.uuid
  end)
  local rules = {}
  local processed = 0
  for i = 1, math.min(#due, limit) do
    if processed >= limit then break end
    local uuid = due[i].uuid
    local h = load(base, uuid)
    if not h then
      unplace_finished(base, uuid)
    else
      -- A score in `kept` is since + kp.
      local since = due[i].score
      if due[i].kept then since = since - (tonumber(h.kp) or 0) end
      local current = rule_keep(base, h.ns, h.lane, rules)
      local verdict, keep, from = trim_verdict(current, default_ms, since, now)
      if verdict == 'trim' and open_members(base, uuid) > 0 then
        verdict, keep, from = trim_relook(current, now)
      end
      if verdict ~= 'trim' then
        restamp(base, uuid, h, keep, from)
      else
        local members = redis.call('ZREVRANGEBYLEX', base .. ':tr:' .. uuid, '+', '-', 'LIMIT', 0,
          limit - processed)
        for _, m in ipairs(members) do
          local mh = load(base, m)
          if mh then
            remove_execution(base, m, mh, now)
          else
            redis.call('ZREM', base .. ':tr:' .. uuid, m)
          end
        end
        processed = processed + #members
        if processed < limit and redis.call('EXISTS', base .. ':tr:' .. uuid) == 0 then
          remove_execution(base, uuid, h, now)
          processed = processed + 1
        end
      end
    end
  end
  return { processed, first_score(done), first_score(kept) }
end)
