-- baton_wait_children: a running parent hands back its lease until its
-- children have finished (no attempt is spent: the attempt closes as
-- released and `rl` counts it).
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: uuid, ARGV[2]: attempt, ARGV[3]: nonce, ARGV[4]: now (ms)
-- Returns: { 'ok', woken, record } or an error reply as one item of
--   baton_complete answers. Without unfinished children the lease is kept
--   and the record answered unchanged; a replay of an attempt already
--   released answers 'ok' with the current record while no later attempt
--   started (then the lease is lost).
-- Mirrors baton_core::raw::rules::wait_children_blocks and
-- wait_children_replay.
redis.register_function('baton_wait_children', function(keys, args)
  local base, uuid = keys[1], args[1]
  local attempt, nonce = args[2], args[3]
  local now = tonumber(args[4])
  local h, reply, ended = check_lease(base, uuid, attempt, nonce, now)
  if reply then return reply end
  if ended == 'released' and h.att == attempt then
    return { 'ok', { 0 }, cmsgpack.pack(h) }
  elseif ended == 'completed' or ended == 'failed' then
    return { 'conflict', h.st, 'attempt ' .. attempt .. ' already ' .. ended }
  elseif ended then
    return { 'lost', ENDED_WHY[ended] or 'the attempt already ended' }
  end
  if (tonumber(h.oc) or 0) == 0 then return { 'ok', { 0 }, cmsgpack.pack(h) } end
  hand_back(h, s(now))
  local woken = {}
  move(base, uuid, h, 'blocked', woken)
  return { 'ok', released_reply(woken), save(base, uuid, h) }
end)
