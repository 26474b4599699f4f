-- baton_limit_admit: judges a claim's candidates against every limit of
-- their namespace, in claim order, and takes the slots of those it admits
-- (the admission of baton_core::raw::rules, mirrored in common.lua): a
-- candidate is admitted only while every limit covering it has room for its
-- key, and what it takes counts for the candidates after it. First the
-- holders whose slots lapsed are freed (their release never came). An
-- admitted candidate counted under some limit becomes a holder until
-- `lapse` in each of its keys' sets, and enters the windows of the rates;
-- the backend then claims it in its partition (baton_limit_claim) and gives
-- back what it could not claim (baton_limit_release). A candidate already
-- held (another claimer admitted it and is claiming it), or already in a
-- window of its keys (its claim took place), is passed by.
-- KEYS[1]: the namespace's limit base B:{lim:<ns>}
-- ARGV[1]: now (ms), ARGV[2]: lapse (ms): when the slots it takes lapse
-- unless released (the lease's expiry plus the backend's grace),
-- ARGV[3]: want: most candidates admitted,
-- then per candidate in claim order four values: holder
-- (<uuid>:<attempt its claim starts>), lane, kind, tags (a JSON object)
-- Returns: { gen, admitted, blocked }: the namespace's limit generation it
--   judged by (baton_limit_claim checks it), the 1-based positions of the
--   admitted candidates (negative: admitted without slots, no limit
--   covering it), and the keys without room after it, flat: per limit lane
--   ('' every lane), key, n (-1: every value), then n values (at most 500).
redis.register_function('baton_limit_admit', function(keys, args)
  local lim = keys[1]
  local now = tonumber(args[1])
  local snow = s(now)
  local lapse = args[2]
  local want = tonumber(args[3])
  lapse_holders(lim, now, 1000)
  local limits = stored_limits(lim, now)
  for _, limit in ipairs(limits) do prune_values(lim, limit, now, 100) end
  local adm = admission(limits, now, function(limit, value, st)
    local set = limit.name .. '/' .. value
    st.running = redis.call('ZCOUNT', lim .. ':r:' .. set, '(' .. snow, '+inf')
    if limit.rc then
      local w = redis.call('ZRANGEBYSCORE', lim .. ':q:' .. set, '(' .. s(now - limit.rp), '+inf',
        'WITHSCORES')
      for j = 2, #w, 2 do st.window[#st.window + 1] = tonumber(w[j]) end
    end
  end)
  -- Whether `holder` already has an entry in the window of one of its
  -- keys: its claim took place (and its run may have ended and released
  -- its slots since), so this admission is stale. Admitting it again would
  -- move that entry to now, and its give-back would then erase it.
  local function in_windows(holder, lane, kind, tags)
    for _, limit in ipairs(limits) do
      if limit.rc then
        local v = limit_key_value(limit, lane, kind, tags)
        if v and redis.call('ZSCORE', lim .. ':q:' .. limit.name .. '/' .. v, holder) then
          return true
        end
      end
    end
    return false
  end
  local admitted = {}
  for c = 1, math.floor((#args - 3) / 4) do
    if #admitted >= want then break end
    local o = 4 + (c - 1) * 4
    local holder, lane, kind = args[o], args[o + 1], args[o + 2]
    local tags = cjson.decode(args[o + 3])
    local held = redis.call('ZSCORE', lim .. ':hold', holder)
    if not held and not in_windows(holder, lane, kind, tags) then
      local why, took = admission_admit(adm, lane, kind, tags)
      if not why then
        if #took == 0 then
          admitted[#admitted + 1] = -c
        else
          admitted[#admitted + 1] = c
          local sets = {}
          for k, st in ipairs(took) do
            local limit = limits[st.i]
            sets[k] = hold_in(lim, limit.name, st.value, holder, lapse)
            if limit.rc then
              local q = lim .. ':q:' .. sets[k]
              redis.call('ZREMRANGEBYSCORE', q, '-inf', s(now - limit.rp))
              redis.call('ZADD', q, snow, holder)
              redis.call('PEXPIRE', q, s(limit.rp))
              redis.call('ZADD', lim .. ':v:' .. limit.name, 'GT', s(now + limit.rp), st.value)
            end
          end
          redis.call('ZADD', lim .. ':hold', lapse, holder)
          redis.call('HSET', lim .. ':hk', holder, table.concat(sets, '\n'))
        end
      end
    end
  end
  local blocked = {}
  for _, b in ipairs(admission_blocked(adm)) do
    blocked[#blocked + 1] = b.limit.lane
    blocked[#blocked + 1] = b.limit.key
    if b.every then
      blocked[#blocked + 1] = -1
    else
      local n = math.min(#b.values, 500)
      blocked[#blocked + 1] = n
      for j = 1, n do blocked[#blocked + 1] = b.values[j] end
    end
  end
  return { redis.call('GET', lim .. ':gen') or '0', admitted, blocked }
end)
