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
-- Mirrors the SQL backends' trim_terminal; what it removes of each execution
-- is remove_execution's (common.lua), shared with baton_delete.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: cutoff (ms; now - retention), ARGV[2]: limit, ARGV[3]: now (ms)
-- Returns: { processed, oldest remaining score|'' }

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
  return { processed, first_score(done) }
end)
