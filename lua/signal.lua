-- baton_signal: delivers a signal to an execution. Judged first (a held
-- idempotency key: duplicate; a terminal execution: ignored; holding the
-- most buffered signals: conflict), else stored as signal sc + 1 received now
-- and recorded in its history (an event 'signalled' naming it); a
-- suspended execution whose wait the signals it holds now satisfy consumes
-- them (tagged with the wait's number, the wait log gains 's') and is
-- waiting, eligible now.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: uuid, ARGV[2]: name, ARGV[3]: payload, ARGV[4]: idempotency key
-- ('' = none), ARGV[5]: now (ms), ARGV[6]: most buffered signals held
-- (max_signals; the record's `sb` counts them, `sc` all it holds)
-- Returns: { 'ok', outcome, woken } with outcome 'resumed', 'buffered',
--   'duplicate' or 'ignored' (woken: as woken_reply), { 'not_found' } or
--   { 'conflict', state, reason }.
-- The judgement mirrors baton_core::raw::rules::signal_admission, the
-- verdict baton_core::raw::rules::satisfying.
redis.register_function('baton_signal', function(keys, args)
  local base, uuid = keys[1], args[1]
  local h = load(base, uuid)
  if not h then return { 'not_found' } end
  local name, key, snow = args[2], args[4], args[5]
  local key_index = base .. ':sk:' .. uuid
  local seen = key ~= '' and redis.call('HEXISTS', key_index, key) == 1
  local held = tonumber(h.sb) or 0
  local verdict, why = signal_admission(h.st, seen, held, tonumber(args[6]))
  if not verdict then return { 'conflict', h.st, why } end
  if verdict ~= 'store' then return { 'ok', verdict, { 0 } } end
  local seq = (tonumber(h.sc) or 0) + 1
  h.sb = s(held + 1)
  local e = { n = name, p = args[3], r = snow }
  if key ~= '' then
    e.k = key
    redis.call('HSET', key_index, key, s(seq))
  end
  redis.call('RPUSH', base .. ':sg:' .. uuid, cmsgpack.pack(e))
  h.sc = s(seq)
  append_event(base, uuid, h, { t = snow, k = 'signalled', a = h.att or '0', d = name })
  local outcome, woken = 'buffered', {}
  if h.st == 'suspended' then
    local points = waitpoints(h.wp)
    -- Its buffered signals did not satisfy the wait before this one, so
    -- only a signal for one of its waitpoints can: others need no read.
    local awaited = false
    for _, w in ipairs(points) do
      if w == name then awaited = true end
    end
    if awaited then
      local signals = load_signals(base, uuid)
      local seqs = satisfying(points, h.wc, buffered_of(signals))
      if seqs then
        end_wait(base, uuid, h, signals, seqs, 's')
        h.rd, h.ua = snow, snow
        move(base, uuid, h, 'waiting', woken)
        outcome = 'resumed'
      end
    end
  end
  save(base, uuid, h)
  if #woken == 0 then return { 'ok', outcome, { 0 } } end
  return { 'ok', outcome, woken_reply(base, woken) }
end)
