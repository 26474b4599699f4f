-- baton_replay: a failed, cancelled, expired or skipped execution runs
-- again (a dead-letter requeue): waiting, eligible now, with a fresh
-- attempt budget (`rl` = its attempts, so the retry policy counts only
-- attempts after this one; the attempt numbers go on). Its finish time and
-- cancel reason go, its deadline stays only while still ahead (back in
-- `deadlines`); attempts, signals, steps and state stay as history.
-- A flow member re-opens its flow: its root's `open:` count goes up (the
-- flow is not trimmed while it runs) and a parent that has not finished
-- counts it as an unfinished child again; a root leaves `done` (or `kept`:
-- it keeps its `kp`, counted from its next finish).
-- Its dependents were told when it finished and are not told again: `hd`
-- goes with its dependents set (a dependent created later sets both anew,
-- and only those are told at its next end). While the partition's cascade
-- queue holds work, a queued walk could still act on the replayed run as
-- on the old one (cancel its new children, tell its dependents of its old
-- end): the replay answers 'contention' and is retried once the cascade
-- pass has emptied the queue.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: uuid, ARGV[2]: now (ms)
-- Returns: { 'ok', woken, record }, { 'not_found' },
--   { 'conflict', state, reason } for any other state, or
--   { 'contention' } while the cascade queue holds work.
-- Its check mirrors baton_core::raw::rules::check_replay, the deadline it
-- keeps baton_core::raw::rules::replay_deadline.

redis.register_function('baton_replay', function(keys, args)
  local base, uuid = keys[1], args[1]
  local now = tonumber(args[2])
  local snow = s(now)
  local h = load(base, uuid)
  if not h then return { 'not_found' } end
  local why = replay_refusal(h.st)
  if why then return { 'conflict', h.st, why } end
  if redis.call('LLEN', base .. ':cq') > 0 then return { 'contention' } end
  if (tonumber(h.att) or 0) > 0 then h.rl = h.att else h.rl = nil end
  h.dl = replay_deadline(h.dl, now)
  h.fa, h.cr = nil, nil
  h.rd, h.ua = snow, snow
  if h.fl then
    local key = base .. ':open:' .. simple_uuid(h.rt)
    redis.call('INCR', key)
    local pu = simple_uuid(h.par)
    local ph = load(base, pu)
    if ph and not TERMINAL[ph.st] then
      ph.oc = s((tonumber(ph.oc) or 0) + 1)
      save(base, pu, ph)
    end
  else
    unplace_finished(base, uuid)
  end
  if h.hd then
    redis.call('DEL', base .. ':dn:' .. uuid)
    h.hd = nil
  end
  local woken = {}
  move(base, uuid, h, 'waiting', woken)
  if h.dl then redis.call('ZADD', base .. ':deadlines', h.dl, uuid) end
  local record = save(base, uuid, h)
  announce_change(base, uuid, now)
  return { 'ok', woken_reply(base, woken), record }
end)
