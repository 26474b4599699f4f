-- baton_set_tag: sets tag `key` of an execution to a value, or removes it,
-- in any state. Tags live in the record only (`tags`, absent for none):
-- list filters read them there, so they see the change at once.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: uuid, ARGV[2]: tag key, ARGV[3]: has a value (1|0: remove the
-- key), ARGV[4]: the value (checked by the backend), ARGV[5]: most tags,
-- ARGV[6]: now (ms), ARGV[7]: the event's detail
-- (baton_core::raw::rules::tag_detail)
-- Returns: { 'ok', woken, record } (woken: never any lane), { 'not_found' }
--   or { 'conflict', state, reason } for a new key beyond the limit. The
--   value it already has, or removing a key it does not have, changes
--   nothing; a change is recorded in its history (an event 'tag_changed').
-- Its judgement mirrors baton_core::raw::rules::tag_edit.
redis.register_function('baton_set_tag', function(keys, args)
  local base, uuid = keys[1], args[1]
  local h = load(base, uuid)
  if not h then return { 'not_found' } end
  local tags = cjson.decode(h.tags or '{}')
  if type(tags) ~= 'table' then return { 'corrupt', 'tags ' .. tostring(h.tags) } end
  local value = nil
  if args[3] == '1' then value = args[4] end
  local verdict, after = tag_edit(tags, args[2], value, tonumber(args[5]))
  if not verdict then return { 'conflict', h.st, after } end
  if verdict == 'unchanged' then return { 'ok', { 0 }, cmsgpack.pack(h) } end
  h.tags = encode_tags(after)
  append_event(base, uuid, h, { t = args[6], k = 'tag_changed', a = h.att or '0', d = args[7] })
  return { 'ok', { 0 }, save(base, uuid, h) }
end)
