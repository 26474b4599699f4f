-- baton_hint_drop: forgets that a partition may hold waiting work of a lane,
-- unless work arrived there after the claimer looked.
-- KEYS[1]: the lane's hint key B:hint:{<ns>/<lane>} (ZSET partition -> seq)
-- ARGV[1]: partition, ARGV[2]: the partition's seq when it was seen empty
-- Returns: 1 when the hint was removed, else 0.
--
-- Hints are raised with ZADD GT by the backend after a function reports a
-- lane as woken, with the partition's seq after that call; a drop only
-- removes a score at or below the seq seen empty, so a hint for work that
-- arrived later survives (or is raised again right after).
redis.register_function('baton_hint_drop', function(keys, args)
  local score = redis.call('ZSCORE', keys[1], args[1])
  if score and tonumber(score) <= tonumber(args[2]) then
    redis.call('ZREM', keys[1], args[1])
    return 1
  end
  return 0
end)
