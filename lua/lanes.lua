-- baton_lanes: the lanes holding waiting work in one partition, for the
-- scanner that repairs claim-discovery hints (a client may have died
-- between a create and raising its hint).
-- KEYS[1]: the partition base B:{p:N}
-- ARGV: none
-- Returns: { seq, lane... } with lanes as <ns>/<lane>.
redis.register_function {
  function_name = 'baton_lanes',
  callback = function(keys)
    local base = keys[1]
    local reply = { seq(base) }
    for _, lid in ipairs(redis.call('SMEMBERS', base .. ':lanes')) do
      reply[#reply + 1] = lid
    end
    return reply
  end,
  flags = { 'no-writes' },
}
