-- baton_cancel: cancels a non-terminal execution and, with scope tree, its
-- non-terminal descendants (bounded; the rest is queued for baton_cascade).
-- A paused one is cancelled like any other (it sits in no index to leave).
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: uuid, ARGV[2]: has reason (1|0), ARGV[3]: reason, ARGV[4]: now (ms),
-- ARGV[5]: scope tree (1|0), ARGV[6]: cascade budget (children visited),
-- ARGV[7]: the reason stored on cancelled descendants
-- The dependents of what it cancels are told in the same call: the
-- execution's own within the budget, and those of the descendants within
-- what the walk below left of it.
-- Returns: { 'ok', woken, record, cascaded, pending (1|0) } or an error reply
--   as one item of baton_complete answers. Cancelling a cancelled execution
--   keeps it unchanged (its descendants are still reached with scope tree);
--   any other terminal state is a 'conflict'.
-- Its verdict on a repeated call mirrors baton_core::raw::rules::cancel_acts
-- (cancel_one in common.lua, shared with baton_cancel_units).
redis.register_function('baton_cancel', function(keys, args)
  local base, uuid = keys[1], args[1]
  local snow = s(tonumber(args[4]))
  local why = nil
  if args[2] == '1' then why = args[3] end
  local woken = {}
  local refused, record, cascaded, pending = cancel_one(base, uuid, why, args[5] == '1', args[7],
    tonumber(args[6]), snow, woken)
  if refused then return refused end
  if pending then pending = 1 else pending = 0 end
  return { 'ok', woken_reply(base, woken), record, cascaded, pending }
end)
