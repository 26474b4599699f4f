-- baton_release: a running execution's worker hands back its lease without
-- spending an attempt (a worker shutting down): the attempt closes as
-- released (`rl` counts it) and the execution is waiting again, eligible
-- now.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: uuid, ARGV[2]: attempt, ARGV[3]: nonce, ARGV[4]: now (ms)
-- Returns: { 'ok', woken, record } or an error reply as one item of
--   baton_complete answers. A replay of an attempt already released answers
--   'ok' with the current record while no later attempt started (then the
--   lease is lost); see released_replay.
redis.register_function('baton_release', function(keys, args)
  local base, uuid = keys[1], args[1]
  local attempt, nonce = args[2], args[3]
  local now = tonumber(args[4])
  local h, reply, ended = check_lease(base, uuid, attempt, nonce, now)
  if reply then return reply end
  if ended then
    local refused = released_replay(h, attempt, ended)
    if refused then return refused end
    return { 'ok', { 0 }, cmsgpack.pack(h) }
  end
  local snow = s(now)
  hand_back(h, snow)
  h.rd = snow
  local woken = {}
  move(base, uuid, h, 'waiting', woken)
  local record = save(base, uuid, h)
  return { 'ok', woken_reply(base, woken), record }
end)
