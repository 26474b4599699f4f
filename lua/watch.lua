-- baton_watch: marks an execution as watched by a reader waiting for it to
-- change (wait_for_change) until a time: the functions that change what
-- such a reader follows (a terminal transition, a new custom status, a
-- progress frame) publish the change while the mark holds. Several readers
-- share one mark, which keeps the latest time (ZADD GT).
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: uuid, ARGV[2]: watched until (ms, on the backend's clock)
-- Returns: 1, or 0 when there is no such execution (no mark is left).
redis.register_function('baton_watch', function(keys, args)
  local base, uuid = keys[1], args[1]
  if redis.call('EXISTS', base .. ':e:' .. uuid) == 0 then return 0 end
  redis.call('ZADD', base .. ':watch', 'GT', args[2], uuid)
  return 1
end)
