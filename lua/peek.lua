-- baton_peek: which executions baton_claim would take now, without taking
-- them: the backend peeks every candidate partition first, so that one
-- claimer gets exact priority-then-age order across partitions. Partitions
-- whose waiting work for the lanes has no conditions are peeked with plain
-- ZRANGEs (those sets are already in claim order); this function serves
-- the ones that also hold work with capability or deadline conditions.
-- KEYS[1]: the partition base B:{p:N}
-- ARGV[1]: now (ms)
-- ARGV[2]: namespace
-- ARGV[3]: want (1..)
-- ARGV[4]: worker's capabilities, comma separated ('' = none)
-- ARGV[5]: lane count L, ARGV[6..5+L]: lanes (those paused in this
-- partition's `lp:<ns>` are skipped, and never reported empty; those a
-- limit covers are skipped too, as baton_claim skips them)
-- ARGV[6+L], ARGV[7+L]: the version keys the claim accepts ('' = open
-- end); ARGV[8+L]: the claiming worker (work of a session another worker
-- holds is passed over, as baton_claim passes it over)
-- Returns: { seq, empty_lanes, limited_lanes, member... }: the partition's
--   sequence at this instant, the lanes (as <ns>/<lane>) without waiting
--   work in this partition, those a limit covers that hold waiting work
--   here, and up to `want` claim-order members, first first.
redis.register_function {
  function_name = 'baton_peek',
  callback = function(keys, args)
    local nlanes = tonumber(args[5])
    local route = routing(args[6 + nlanes], args[7 + nlanes], args[8 + nlanes])
    local base, _, lanes, members, _, _, limited = choose(keys, args, route)
    local reply = { seq(base), empties(base, lanes), with_work(base, limited) }
    for i = 1, #members do reply[#reply + 1] = members[i] end
    return reply
  end,
  flags = { 'no-writes' },
}

