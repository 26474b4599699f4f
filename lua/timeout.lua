-- baton_timeout: scheduler pass; suspended executions whose wait timed out
-- (timeout_at <= now), earliest first, act as their on_timeout says:
-- 'resume' ends the wait 't' (consuming, per waitpoint, the earliest
-- buffered signal of its name) and makes them waiting, eligible now;
-- 'fail' makes them failed (last_error: what timed out; finished now; the
-- finish hooks run: parent count-down, dependents); 'cancel' cancels them
-- with that reason and their descendants as a cancel of scope tree does
-- (their dependents, and those of what the walks cancel, told within the
-- pass's cascade budget; the rest queued for baton_cascade). Entries that
-- no longer hold (the execution left suspended, was trimmed, or waits
-- without a timeout now) are dropped and not counted.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: now (ms), ARGV[2]: limit, ARGV[3]: longest stored text (bytes),
-- ARGV[4]: cascade budget, ARGV[5]: a descendant's cancel reason before its
-- ancestor's hyphenated uuid (': ' and the ancestor's reason follow)
-- Returns: { processed, next_due|'', woken } (woken: as woken_reply)
-- The verdict mirrors baton_core::raw::rules::timeout_verdict, what a
-- resume consumes baton_core::raw::rules::timed_out_consumes.
redis.register_function('baton_timeout', function(keys, args)
  local base = keys[1]
  local now = tonumber(args[1])
  local snow = s(now)
  local max_text = tonumber(args[3])
  local budget = tonumber(args[4])
  local index = base .. ':timeouts'
  local due = redis.call('ZRANGEBYSCORE', index, '-inf', args[1], 'LIMIT', 0, args[2])
  local woken = {}
  local processed = 0
  for _, uuid in ipairs(due) do
    local h = load(base, uuid)
    local wt = h and h.st == 'suspended' and tsnum(h.wt)
    if not wt then
      redis.call('ZREM', index, uuid)
    elseif wt > now then
      -- Its current wait times out later than this entry said: it is due
      -- then (every suspend with a timeout writes its entry, so this is
      -- only ever a repair).
      redis.call('ZADD', index, s(wt), uuid)
    else
      redis.call('ZREM', index, uuid)
      local verdict, what = timeout_verdict(h.wp, h.wc, h.wo)
      if verdict == 'resume' then
        local points = waitpoints(h.wp)
        local signals, seqs = {}, {}
        if #points > 0 and h.sc then
          signals = load_signals(base, uuid)
          seqs = timed_out_consumes(points, buffered_of(signals))
        end
        end_wait(base, uuid, h, signals, seqs, 't')
        h.rd, h.ua = snow, snow
        move(base, uuid, h, 'waiting', woken)
        save(base, uuid, h)
      elseif verdict == 'fail' then
        local err = clip(what, max_text)
        local wrote = written_error(h.err, err)
        h.err = err
        h.fa, h.ua = snow, snow
        move(base, uuid, h, 'failed', woken, wrote)
        save(base, uuid, h)
        budget = budget - tell_dependents(base, budget, snow, woken)
      else
        local why = clip(what, max_text)
        cancel_record(base, uuid, h, why, snow, woken)
        budget = budget - tell_dependents(base, budget, snow, woken)
        local below = clip(args[5] .. hyphenated(uuid) .. ': ' .. why, max_text)
        local stack = { { uuid, '' } }
        budget = budget - cascade_walk(base, stack, budget, below, snow, woken)
        cascade_queue(base, stack, below)
        budget = budget - tell_dependents(base, budget, snow, woken)
      end
      processed = processed + 1
    end
  end
  return { processed, first_score(index), woken_reply(base, woken) }
end)
