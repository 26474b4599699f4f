-- baton_audit: records an 'audit' event (a bulk call changed it) in the
-- history of each execution named that still exists and keeps a history;
-- one gone meanwhile, or created with its namespace's history off, is
-- passed over (nothing written). Not part of the changes it records: a
-- bulk call writes its audit after them.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: now (ms), ARGV[2]: the detail (baton_core::raw::rules::audit_detail,
-- already cut to the event bound), ARGV[3..]: the executions' uuids
-- Returns: how many executions got the event.

redis.register_function('baton_audit', function(keys, args)
  local base = keys[1]
  local recorded = 0
  for i = 3, #args do
    local uuid = args[i]
    local h = load(base, uuid)
    if h and append_event(base, uuid, h,
        { t = args[1], k = 'audit', a = h.att or '0', d = args[2] }) then
      save(base, uuid, h)
      recorded = recorded + 1
    end
  end
  return recorded
end)
