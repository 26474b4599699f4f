-- baton_trim: scheduler pass; deletes finished flows whose root finished
-- (or was last looked at) at or before the cutoff, earliest first, with
-- their attempts, index entries, idempotency keys, signals, steps, state,
-- progress frames and watch marks (a reader still waiting is told, so it
-- reads at once that the execution is gone). An execution outside flows is
-- a flow of one. Only roots are in `done`: a member is trimmed with its
-- root, newest member first (no parent before its children), the root
-- last; a root whose flow has an unfinished member is looked at again a
-- retention later (re-scored to now). At most `limit` deletions per call.
-- Every pass first drops the partition's watch marks past their time.
-- Mirrors the SQL backends' trim_terminal.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: cutoff (ms; now - retention), ARGV[2]: limit, ARGV[3]: now (ms)
-- Returns: { processed, oldest remaining score|'' }

-- Deletes one loaded execution and its index entries, at `now` (ms).
local function trim_one(base, uuid, h, now)
  if h.ik then
    local field = h.ns .. '/' .. h.lane .. '/' .. h.ik
    if redis.call('HGET', base .. ':idem', field) == uuid then
      redis.call('HDEL', base .. ':idem', field)
    end
  end
  if h.par then
    local pu = simple_uuid(h.par)
    redis.call('ZREM', base .. ':ch:' .. pu, uuid)
    if h.ck and redis.call('HGET', base .. ':ck:' .. pu, h.ck) == uuid then
      redis.call('HDEL', base .. ':ck:' .. pu, h.ck)
    end
  end
  if h.rt then redis.call('ZREM', base .. ':tr:' .. simple_uuid(h.rt), uuid) end
  if h.deps then
    for up in string.gmatch(h.deps, '%x+') do redis.call('ZREM', base .. ':dn:' .. up, uuid) end
  end
  if h.hd then redis.call('DEL', base .. ':dn:' .. uuid) end
  if h.sc then redis.call('DEL', base .. ':sg:' .. uuid, base .. ':sk:' .. uuid) end
  if h.sn then redis.call('DEL', base .. ':st:' .. uuid) end
  if h.kc then redis.call('DEL', base .. ':kv:' .. uuid) end
  if h.pq then redis.call('DEL', base .. ':pg:' .. uuid) end
  if announce_change(base, uuid, now) then redis.call('ZREM', base .. ':watch', uuid) end
  if h.wt or h.wp then redis.call('ZREM', base .. ':timeouts', uuid) end
  redis.call('ZREM', base .. ':ns:' .. h.ns, uuid)
  redis.call('ZREM', base .. ':deadlines', uuid)
  count(base, h, h.st, -1)
  redis.call('DEL', base .. ':e:' .. uuid, base .. ':p:' .. uuid)
end

redis.register_function('baton_trim', function(keys, args)
  local base = keys[1]
  local limit = tonumber(args[2])
  local now = tonumber(args[3])
  local done = base .. ':done'
  redis.call('ZREMRANGEBYSCORE', base .. ':watch', '-inf', '(' .. args[3])
  local roots = redis.call('ZRANGEBYSCORE', done, '-inf', args[1], 'LIMIT', 0, limit)
  local processed = 0
  for _, uuid in ipairs(roots) do
    if processed >= limit then break end
    local h = load(base, uuid)
    if not h then
      redis.call('ZREM', done, uuid)
    elseif open_members(base, uuid) > 0 then
      redis.call('ZADD', done, args[3], uuid)
    else
      local members = redis.call('ZREVRANGEBYLEX', base .. ':tr:' .. uuid, '+', '-', 'LIMIT', 0,
        limit - processed)
      for _, m in ipairs(members) do
        local mh = load(base, m)
        if mh then
          trim_one(base, m, mh, now)
        else
          redis.call('ZREM', base .. ':tr:' .. uuid, m)
        end
      end
      processed = processed + #members
      if processed < limit and redis.call('EXISTS', base .. ':tr:' .. uuid) == 0 then
        trim_one(base, uuid, h, now)
        redis.call('ZREM', done, uuid)
        processed = processed + 1
      end
    end
  end
  return { processed, first_score(done) }
end)
