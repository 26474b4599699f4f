-- baton_resume: resumes a paused execution and, with scope tree, every
-- paused descendant, whoever paused it (bounded; the rest is queued for
-- baton_cascade as kind 'resume'). Each returns to what resume_target
-- judges on what it holds now: the state it left, or waiting (eligible from
-- now) when what it waited for happened while it was paused; a suspended
-- one whose held signals satisfy its wait consumes them.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: uuid, ARGV[2]: now (ms), ARGV[3]: scope tree (1|0),
-- ARGV[4]: cascade budget (children visited)
-- Returns: { 'ok', woken, record, resumed descendants, pending (1|0) }
--   (woken: the lanes that turned non-empty, as woken_reply),
--   { 'not_found' } or { 'conflict', state, reason } for a finished
--   execution with scope execution (with scope tree it stays as it is and
--   its descendants are reached). Resuming one that is not paused keeps it
--   unchanged (its descendants are still reached with scope tree).
-- Its verdict mirrors baton_core::raw::rules::resume_in_scope, the state each
-- returns to baton_core::raw::rules::resume_target.
redis.register_function('baton_resume', function(keys, args)
  local base, uuid = keys[1], args[1]
  local snow = s(tonumber(args[2]))
  local h = load(base, uuid)
  if not h then return { 'not_found' } end
  local acts, why = resume_verdict(h.st)
  if acts == nil then
    -- With scope tree a finished execution stays as it is and its paused
    -- descendants are still reached (rules::resume_in_scope).
    if args[3] ~= '1' then return { 'conflict', h.st, why } end
    acts = false
  end
  local woken = {}
  local record
  if acts then
    record = resume_record(base, uuid, h, snow, woken)
  else
    record = cmsgpack.pack(h)
  end
  local cascaded, pending = 0, 0
  if args[3] == '1' then
    local stack = { { uuid, '' } }
    local _, c = tree_walk(base, stack, tonumber(args[4]), 'resume', '', snow, woken)
    cascaded = c
    if #stack > 0 then
      tree_queue(base, stack, 'resume', '')
      pending = 1
    end
  end
  return { 'ok', woken_reply(base, woken), record, cascaded, pending }
end)
