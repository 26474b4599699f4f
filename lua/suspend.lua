-- baton_suspend: a running execution waits for signals or a timer without a
-- worker. When the signals it holds that no earlier wait consumed already
-- satisfy the wait, they are consumed by it (tagged with its number, the
-- wait log gains 's') and the lease is kept: nothing else changes. Else the
-- attempt closes as released (`rl` counts it) and the execution is
-- suspended with the wait in wp, wc, wt, wo (all overwritten; a timeout
-- enters the partition's timeouts).
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: uuid, ARGV[2]: attempt, ARGV[3]: nonce, ARGV[4]: now (ms),
-- ARGV[5]: waitpoints joined by ',' ('' for a sleep), ARGV[6]: condition
-- (all|any), ARGV[7]: timeout_at (ms; '' = none), ARGV[8]: on_timeout
-- (resume|fail|cancel), ARGV[9]: most waits an execution ends (max_waits)
-- Returns: { 'ok', woken, record, 'suspended' },
--   { 'ok', woken, record, 'satisfied', seq, signal, ... } (the signals it
--   consumed, ascending: seq and the stored MessagePack signal), or an error
--   reply as one item of baton_complete answers. A replay of an attempt
--   already released answers 'suspended' with the current record while no
--   later attempt started (then the lease is lost); see released_replay.
-- The wait room mirrors baton_core::raw::rules::check_wait_room, the
-- verdict baton_core::raw::rules::satisfying.
redis.register_function('baton_suspend', function(keys, args)
  local base, uuid = keys[1], args[1]
  local attempt, nonce = args[2], args[3]
  local now = tonumber(args[4])
  local h, reply, ended = check_lease(base, uuid, attempt, nonce, now)
  if reply then return reply end
  if ended then
    local refused = released_replay(h, attempt, ended)
    if refused then return refused end
    return { 'ok', { 0 }, cmsgpack.pack(h), 'suspended' }
  end
  local full = check_wait_room(#(h.wl or ''), tonumber(args[9]))
  if full then return { 'conflict', h.st, full } end
  local points = waitpoints(args[5])
  -- Without signals held there is nothing to read.
  if #points > 0 and h.sc then
    local signals = load_signals(base, uuid)
    local seqs = satisfying(points, args[6], buffered_of(signals))
    if seqs then
      local out = { 'ok', { 0 }, '', 'satisfied' }
      end_wait(base, uuid, h, signals, seqs, 's', out)
      out[3] = save(base, uuid, h)
      return out
    end
  end
  hand_back(h, s(now))
  h.wp, h.wc, h.wo = args[5], args[6], args[8]
  if args[7] == '' then h.wt = nil else h.wt = args[7] end
  local woken = {}
  move(base, uuid, h, 'suspended', woken)
  return { 'ok', released_reply(woken), save(base, uuid, h), 'suspended' }
end)
