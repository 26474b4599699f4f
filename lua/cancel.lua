-- baton_cancel: cancels a non-terminal execution.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: uuid, ARGV[2]: has reason (1|0), ARGV[3]: reason, ARGV[4]: now (ms)
-- Returns: { 'ok', woken, record } or an error reply as one item of
--   baton_complete answers. Cancelling a cancelled execution answers its
--   snapshot unchanged; any other terminal state is a 'conflict'.
-- Its verdict on a repeated call mirrors baton_core::raw::rules::cancel_acts.
redis.register_function('baton_cancel', function(keys, args)
  local base, uuid = keys[1], args[1]
  local now = tonumber(args[4])
  local h = load(base, uuid)
  if not h then return { 'not_found' } end
  if h.st == 'cancelled' then return { 'ok', { 0 }, cmsgpack.pack(h) } end
  if TERMINAL[h.st] then return { 'conflict', h.st, 'it already finished' } end
  local snow = s(now)
  if h.st == 'running' then
    local a = 'a' .. h.att
    h[a .. 'e'], h[a .. 'o'] = snow, 'cancelled'
  end
  if args[2] == '1' then h.cr = args[3] end
  h.fa, h.ua = snow, snow
  drop_lease(h)
  local woken = {}
  move(base, uuid, h, 'cancelled', woken)
  local record = save(base, uuid, h)
  return { 'ok', woken_reply(base, woken), record }
end)
