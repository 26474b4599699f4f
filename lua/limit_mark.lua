-- baton_limit_mark: marks runs set_limit counted under a new limit as
-- holding slots (lh), so the end of each releases them; a run that is no
-- longer running at the attempt counted is answered instead (it ended
-- before it was marked, so nothing releases it: set_limit frees it). Each
-- run marked is answered with its lease's expiry now: a renew between the
-- read that counted it (baton_limit_running) and this mark extended its
-- lease but not its slots (it held none yet), so set_limit extends them.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV: per run two values: uuid, attempt
-- Returns: { gone, marked }: the holders (<uuid>:<attempt>) that no longer
--   run, and per run marked two values: holder, lease expiry (ms).
redis.register_function('baton_limit_mark', function(keys, args)
  local base = keys[1]
  local gone, marked = {}, {}
  for i = 1, #args - 1, 2 do
    local uuid, att = args[i], args[i + 1]
    local h = load(base, uuid)
    if h and h.st == 'running' and h.att == att then
      if not h.lh then
        h.lh = '1'
        save(base, uuid, h)
      end
      marked[#marked + 1] = uuid .. ':' .. att
      marked[#marked + 1] = h.le or '0'
    else
      gone[#gone + 1] = uuid .. ':' .. att
    end
  end
  return { gone, marked }
end)
