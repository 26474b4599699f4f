-- common.lua: helpers shared by every function of the library (not a
-- function itself; the backend places it first when assembling the library).
--
-- Key schema (B = the deployment's key prefix, N = partition number). Every
-- key a function touches is derived from KEYS[1], so it carries KEYS[1]'s
-- hash tag and lives in KEYS[1]'s cluster slot:
--   B:{p:N}:e:<uuid>            STRING one execution, its attempts included:
--                                      a MessagePack map of text fields
--   B:{p:N}:p:<uuid>            STRING its payload, immutable: the backend writes
--                                      and reads it with plain MSET/MGET, so it
--                                      never passes through Lua on the hot
--                                      path (trim deletes it, list reads it)
--   B:{p:N}:w:<ns>/<lane>       ZSET  waiting, no conditions (score 0, member = claim order)
--   B:{p:N}:wx:<ns>/<lane>      ZSET  waiting with required capabilities or a deadline
--   B:{p:N}:delayed             ZSET  run_at -> uuid
--   B:{p:N}:leases              ZSET  lease_expires_at -> uuid
--   B:{p:N}:deadlines           ZSET  deadline -> uuid (non-terminal only)
--   B:{p:N}:done                ZSET  since -> uuid of finished roots without a
--                                      retention keep of their own (no kp): due
--                                      the deployment's default after since (its
--                                      finish, or when its open flow was last
--                                      looked at)
--   B:{p:N}:kept                ZSET  since + kp -> uuid of finished roots
--                                      carrying a retention rule's keep (library
--                                      generation 13): scored by when they are due
--   B:{p:N}:idem                HASH  <ns>/<lane>/<key> -> uuid
--   B:{p:N}:ns:<ns>             ZSET  score 0, uuid members (list order)
--   B:{p:N}:counts              HASH  <ns>/<lane>/<state> -> count
--   B:{p:N}:lanes               SET   <ns>/<lane> holding waiting work
--   B:{p:N}:seq                 STRING bumped whenever a lane's waiting set
--                                      turns non-empty (claim-discovery hints)
--   B:{p:N}:ch:<uuid>           ZSET  score 0, the uuids of <uuid>'s children
--                                      (creation order); a child leaves it when
--                                      trimmed
--   B:{p:N}:ck:<uuid>           HASH  child key -> uuid, among <uuid>'s children
--   B:{p:N}:tr:<uuid>           ZSET  score 0, the uuids of the members of the
--                                      flow whose root is <uuid> (not the root)
--   B:{p:N}:open:<uuid>        STRING how many members of the flow whose root is
--                                      <uuid> are not finished (absent: none)
--   B:{p:N}:done, B:{p:N}:kept  (above) hold roots only: members are
--                                      trimmed with their root; a root is in
--                                      one of them exactly while it is finished
--   B:{p:N}:dn:<uuid>           ZSET  score 0, the uuids of the executions that
--                                      depend on <uuid> (id order, so a walk
--                                      pages on after an id); a dependent
--                                      leaves it when trimmed
--   B:{p:N}:cq                  LIST  places cascades have still to visit,
--                                      oldest first: MessagePack { node uuid,
--                                      after uuid | '', text, kind } where
--                                      kind is absent or 'cancel' (text: the
--                                      cancel reason; below the node),
--                                      'dependents' (text: 'completed' or
--                                      'unmet'; the node's dependents), 'pause'
--                                      (text: the pausing ancestor's id; below
--                                      the node) or 'resume' (text: ''; below
--                                      the node). A replay waits while it
--                                      holds work (see baton_replay)
--   B:{p:N}:sg:<uuid>           LIST  the signals <uuid> holds (library generation 5),
--                                      in arrival order: element seq - 1 is signal
--                                      seq, a MessagePack map n (name), p (payload),
--                                      r (received_at ms), k (idempotency key, absent:
--                                      none), w (the wait that consumed it, absent:
--                                      buffered); LSET tags one as consumed
--   B:{p:N}:sk:<uuid>           HASH  idempotency key -> seq, among <uuid>'s signals
--   B:{p:N}:timeouts            ZSET  wait timeout_at -> uuid of suspended executions;
--                                      cleaned lazily: the timeout pass drops an
--                                      entry whose record is no longer suspended
--                                      with a timeout
--   B:{p:N}:st:<uuid>           HASH  the steps <uuid> recorded (library generation 6):
--                                      step name -> a MessagePack map s (status:
--                                      'done' | 'failed'), o (output; done only),
--                                      e (the last failed record's error; absent:
--                                      none), a (the attempt that wrote it), f
--                                      (failed records so far), r (recorded_at ms)
--   B:{p:N}:kv:<uuid>           HASH  the key-value state of <uuid> (library generation 7):
--                                      state key -> a MessagePack map v (value), a
--                                      (the attempt that set it), u (updated_at ms)
--   B:{p:N}:pg:<uuid>           ZSET  the progress frames <uuid> keeps (library
--                                      generation 7): score = frame number, member =
--                                      a MessagePack map s (number), t (appended at
--                                      ms), a (attempt), f (frame); the number in the
--                                      member keeps equal frames distinct. By score,
--                                      a read after a cursor and dropping the oldest
--                                      are each one range command
--   B:{p:N}:watch               ZSET  watched-until ms -> uuid of executions a reader
--                                      waits on (wait_for_change); a change of one
--                                      watched and not past it is published on
--                                      B:changed (its id text as the message); the
--                                      trim pass drops entries past their time
--   B:{p:N}:lp:<ns>             HASH  (library generation 9) the paused lanes of
--                                      namespace <ns>: lane -> paused_at ms. Written
--                                      to every partition by pause_lane (plain
--                                      commands, one partition after another);
--                                      each claim reads its own partition's
--                                      copy and skips those lanes
--   B:{p:N}:ev:<uuid>           LIST  the history of <uuid> (library generation 12),
--                                      oldest first: its first event, then its
--                                      latest, at most 200 in all (an append past
--                                      that drops the second element). Each a
--                                      MessagePack map of text s (number, from 1),
--                                      t (at ms), k (kind of an event that changes
--                                      no state: 'signalled', 'priority_changed',
--                                      'tag_changed'; absent for a transition), f
--                                      (state before; absent at creation and with
--                                      k), o (state after; absent with k), a
--                                      (attempt count), w (worker; absent: none), d
--                                      (detail; absent: none). Written by
--                                      append_event, and first_event for the
--                                      first; only for an execution whose record
--                                      holds hx
--   B:{p:N}:hx                  HASH  (library generation 12) the namespaces whose
--                                      history is on: namespace -> '1'. Written
--                                      to every partition by set_history (plain
--                                      commands, one partition after another);
--                                      baton_create reads its own partition's
--                                      copy for the namespaces it creates in
--   B:{p:N}:ret                 HASH  (library generation 13) the retention rules:
--                                      <ns>/<lane> -> keep ms, <ns>/ for the rule
--                                      of every lane of <ns> ('/' is in no
--                                      namespace or lane). Written to every
--                                      partition by set_retention (plain
--                                      commands, one partition after another);
--                                      baton_create and baton_trim read their own
--                                      partition's copy
--   B:{p:N}:lim:<ns>            HASH  (library generation 15) the lanes of namespace
--                                      <ns> some limit with a cap or a rate covers:
--                                      lane -> '1', '' -> '1' when one covers every
--                                      lane, and '#' -> the
--                                      namespace's limit generation (see
--                                      baton_limit_claim). Replaced whole by
--                                      baton_limit_lanes on every partition in turn
--                                      by set_limit and remove_limit; baton_claim and
--                                      baton_peek skip those lanes (the backend claims
--                                      their work through the limited path).
--                                      Library generation 17 adds the fair limits'
--                                      key specs: f:<lane> -> the key ('kind',
--                                      'lane' or 'tag:<k>') of the fair limit
--                                      ordering <lane>, f: -> that of every lane
--                                      without a field of its own (see fair_place);
--                                      they mark no lane limited
--   B:{p:N}:fk:<ns>/<lane>/<key> ZSET (library generation 17) score 0, the
--                                      members (as in w: and wx:) of the waiting
--                                      work of key <key> of a lane a fair limit
--                                      orders: its latest turn per priority is
--                                      one reversed BYLEX range
--   B:{p:N}:lrel                HASH  (library generation 15) releases of limit slots
--                                      not yet applied: holder (<uuid>:<attempt>) ->
--                                      <ns>/<lane>, written where a run that holds
--                                      slots ends (release_slots); the backend applies
--                                      them in B:{lim:<ns>} and deletes them
--   B:{p:N}:ses                 HASH  (library generation 16) the session locks of
--                                      the sessions whose work this partition
--                                      holds: <ns>/<session> -> '<worker>|<expires
--                                      ms>|<idle ms>' (idle: how long the worker
--                                      keeps the session past its last claim or
--                                      renew of the session's work). Taken by the
--                                      claim of the session's work (take), extended
--                                      by renews, dropped by the reclaim of its
--                                      worker's run and by the reclaim pass's
--                                      sweep once lapsed
--   B:{p:N}:sesx                ZSET  (library generation 16) expires ms ->
--                                      <ns>/<session>: the sweep's index of `ses`
--   B:{ctl}:nodes / :owners / :oexp    partition ownership (one slot)
--   B:{ctl}:limits              HASH  limit name -> its namespace (library generation 15)
--
-- The limits of a namespace (library generation 15) live in one slot of their
-- own, so one function judges a claim against all of them:
--   B:{lim:<ns>}:def            HASH  limit name -> its definition, a JSON object
--                                      lane ('' every lane), key ('kind', 'lane' or
--                                      'tag:<k>'), max, rc and rp (rate count and
--                                      window ms; each absent when none), ad (while
--                                      set_limit adopts what runs: until when, ms)
--   B:{lim:<ns>}:gen            STRING bumped by every set_limit and remove_limit
--   B:{lim:<ns>}:hold           ZSET  lapse ms -> holder (<uuid>:<attempt>): every run
--                                      (or claim under way) holding slots, scored by
--                                      when its slots lapse unless released first
--   B:{lim:<ns>}:hk             HASH  holder -> the <limit>/<key value> sets it is
--                                      counted in, '\n' separated
--   B:{lim:<ns>}:r:<limit>/<v>  ZSET  lapse ms -> holder: the runs of key value <v>
--   B:{lim:<ns>}:q:<limit>/<v>  ZSET  claimed-at ms -> holder: the claims of <v> in
--                                      the rate's window (expires with the window)
--   B:{lim:<ns>}:v:<limit>      ZSET  key value -> until when it may have runs or
--                                      window claims (what usage and removal read);
--                                      names every value with an r: or q: set
--                                      (see prune_values)
--
-- The worker registry (library generation 8) lives beside the partitions:
-- per namespace, under its own hash tag, so one function writes both keys:
--   B:{w:<ns>}:workers          HASH  worker id -> a MessagePack map l (lanes of its
--                                      last claim, comma separated), c (its
--                                      capabilities, likewise), s (last seen ms), n
--                                      (leases its last renew presented), v (the
--                                      version range of its last claim, as
--                                      VersionRange::to_stored; absent before
--                                      library generation 16: any)
--   B:{w:<ns>}:seen             ZSET  last seen ms -> worker id (the same `s`): who
--                                      is live, and who is stale enough to forget
--   B:{wk:<worker>}:ns          SET   the namespaces the worker claimed from, so a
--                                      renew (which names none) reaches its
--                                      entries; expires ten worker TTLs after the
--                                      last claim recorded (plain commands)
--
-- Execution record fields (every value text): ns lane kind st pri tags caps att rp
-- ik par ck rt fl oc rl ca ua ra rd dl fa wid ln le res err cr, and per attempt k:
-- a<k>w (worker) a<k>n (nonce) a<k>s (started) a<k>e (ended) a<k>o
-- (outcome) a<k>x (error). An absent field is "none", except tags and caps:
-- absent means none ('{}' and '[]'); oc (unfinished children) and rl
-- (attempts ended by a release) absent mean 0; fl ('1') marks a child
-- written by library generation 3 or later, counted in its parent's `oc`
-- and its root's `open:` (children written before are not: they finish,
-- and are trimmed, as they did then). rp is the retry policy, five numbers
-- separated by spaces: max attempts, initial ms, max ms, multiplier, jitter
-- (1|0). Every record is read and written whole on the hot path, so fewer
-- fields are cheaper.
-- A dependent (library generation 4 or later) also holds dp (its dependency
-- policy as text: `all_of;skip`, `any_of;run`, `quorum:2;fail`), dt (its
-- dependencies), dd and db (how many of them completed, and finished
-- otherwise; absent: 0) and deps (its upstream uuids, space separated); an
-- execution others depend on holds hd ('1'). Records without them have no
-- dependencies and no dependents: nothing reads more for them.
-- An execution that suspended (library generation 5 or later) holds wp (its
-- waitpoints joined by ',', '' for a sleep), wc ('all' | 'any'), wt (its
-- timeout_at in ms, absent without a timeout) and wo (on_timeout:
-- 'resume' | 'fail' | 'cancel'), kept after the wait ended and overwritten
-- by the next suspend; wl, its wait log (one letter per ended wait: 's'
-- signalled, 't' timed out; absent: none); and one that received signals
-- sc (how many it holds; absent: 0) and sb (how many of them no wait
-- consumed yet; absent: 0). Records without them never waited and
-- hold no signals: the claim reads signals only when wl is not empty.
-- An execution that recorded steps (library generation 6 or later) holds
-- sn, how many (absent: 0): the claim reads its `st:` hash only then.
-- An execution whose attempts used memory (library generation 7 or later)
-- holds kc, how many keys its `kv:` hash holds; cs, its custom status (the
-- bytes as set: it travels with the record, so a snapshot carries it, at
-- the cost of every call on the execution carrying it too) and cv, how many
-- times it changed; and pq, the number of its last progress frame. Each
-- absent means none (0): records written before read as never used.
-- A paused execution (library generation 9) holds pf, the state resume
-- returns it to ('waiting' for one paused while running, else the state it
-- left), and pv, the id text of the ancestor whose tree pause reached it
-- (absent: paused itself); both go when it leaves `paused` (see leave()). A
-- paused execution sits in no index that makes it claimable, promotable or
-- timed out: only in `deadlines` and its counters. A replay clears hd and
-- the dependents set, so its next end tells only dependents created after
-- it.
-- An execution created while the history of its namespace was on (library
-- generation 12) holds hx ('1') and keeps it: it alone records events, and
-- holds ev, the number of its last event. Without hx (its namespace's
-- history off at its creation, or a record written before) nothing is
-- recorded for it and it costs nothing more.
-- A root created while a retention rule covered its namespace and lane
-- (library generation 13) holds kp, that rule's keep in ms; the trim pass
-- re-stamps it (or drops it: the default) with the rule in force when it
-- reads the root as due but the rule says not yet, or its flow still runs.
-- Finished, a root with kp sits in `kept`, one without in `done`. Members
-- carry no kp: they go with their root.
-- An execution submitted with a session (library generation 16) holds ses
-- (its name; created in the session's partition, its idempotency key
-- scoped by it: see idem_field), one with a handler version ver (as given)
-- and vk (its sort key, baton_core::Version::sort_key); either puts its
-- waiting work in the lane's `wx:` set. Records without them have neither.
-- A waiting execution of a lane a fair limit orders (library generation 17)
-- holds fk, the key it took its turn under (its rd is that turn), and is
-- listed in that key's fk: set until it leaves `waiting`; fk goes then.
-- Records without it sit in no per-key set.
-- A running execution whose claim took limit slots (library generation 15)
-- holds lh ('1'); the move that ends the run records the release and drops
-- it (release_slots). Without it an end writes nothing for limits.

-- Substituted by the backend when it assembles the library.
local LIBRARY_VERSION = '__BATON_LIBRARY_VERSION__'

local TERMINAL = {
  completed = true, failed = true, cancelled = true, expired = true, skipped = true,
}

-- Integer to its decimal text: every number written to a key goes through
-- this, so stored values never take an exponent form.
local function s(x) return string.format('%d', x) end

-- The decimal text of n + 1 for attempt counts n below 64, so claiming
-- needs no number-to-text conversion (Lua's are slow).
local NEXT_ATTEMPT = {}
for i = 0, 63 do NEXT_ATTEMPT['' .. i] = '' .. (i + 1) end

local function tsnum(v)
  if v == nil or v == false or v == '' then return nil end
  return tonumber(v)
end

-- Milliseconds since the epoch as RFC 3339 (the format of Timestamp's
-- Display in baton-core), so engine-written messages match every backend.
local function fmt_ts(ms)
  ms = tonumber(ms)
  local days = math.floor(ms / 86400000)
  local rem = ms - days * 86400000
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m
  if mp < 10 then m = mp + 3 else m = mp - 9 end
  if m <= 2 then y = y + 1 end
  local h = math.floor(rem / 3600000)
  rem = rem - h * 3600000
  local mi = math.floor(rem / 60000)
  rem = rem - mi * 60000
  local s = math.floor(rem / 1000)
  local milli = rem - s * 1000
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d, h, mi, s, milli)
end

-- An execution record is read and written whole: one value crosses into
-- Lua and back per execution, instead of one per field.
local function load(base, uuid)
  local b = redis.call('GET', base .. ':e:' .. uuid)
  if not b then return nil end
  return cmsgpack.unpack(b)
end

-- Writes a record; answers its encoded form (the reply's snapshot).
local function save(base, uuid, h)
  local b = cmsgpack.pack(h)
  redis.call('SET', base .. ':e:' .. uuid, b)
  return b
end

local function payload(base, uuid)
  return redis.call('GET', base .. ':p:' .. uuid) or ''
end

-- The event history (library generation 12): every change of an
-- execution's state is recorded in the call that makes it, through
-- record_transition; events that change no state through append_event.
-- Both record nothing for an execution without hx (see above): that test,
-- at their top, is all the history costs such an execution.
-- What a transition is named is decided when the history is read
-- (baton_core::raw::rules::stored_event), from these facts.

-- Mirror baton_core::ExecutionEvent::{MAX_KEPT, MAX_DETAIL}.
local EVENTS_KEPT = 200
local EVENT_DETAIL = 1024

-- `text` cut to its first `max` characters. Lua strings are bytes: a
-- character of UTF-8 text starts at every byte that is not a continuation
-- byte (0x80-0xBF), so the cut falls before the first byte of character
-- max + 1.
-- Mirrors baton_core::raw::rules::event_detail.
local function cut_chars(text, max)
  if #text <= max then return text end
  local n = 0
  for i = 1, #text do
    local b = string.byte(text, i)
    if b < 0x80 or b >= 0xC0 then
      n = n + 1
      if n > max then return string.sub(text, 1, i - 1) end
    end
  end
  return text
end

-- Appends event `e` (its map without its number) to the history of
-- execution `uuid`, numbered after the last one its record `h` counts (the
-- caller saves `h`). The list keeps the first event and the latest: past
-- the bound, the second element goes (each element holds its number, so
-- the one LREM removes is the one LINDEX read). Nothing for an execution
-- that keeps no history; answers whether the event was recorded.
local function append_event(base, uuid, h, e)
  if not h.hx then return false end
  local seq = s((tonumber(h.ev) or 0) + 1)
  h.ev, e.s = seq, seq
  local key = base .. ':ev:' .. uuid
  local len = redis.call('RPUSH', key, cmsgpack.pack(e))
  for _ = EVENTS_KEPT + 1, len do
    redis.call('LREM', key, 1, redis.call('LINDEX', key, 1))
  end
  return true
end

-- The first event of an execution created in state `st` at `now` (ms
-- text), packed: element 1 of its history, which its record counts with
-- ev '1' (written by baton_create for an execution created with hx only).
-- Mirrors the events_created trigger of the SQLite backend.
local function first_event(st, now)
  return cmsgpack.pack({ s = '1', t = now, o = st, a = '0' })
end

-- Records the change of `h` from state `from` to its state now, at its
-- `ua`: its attempt count, the worker that holds the lease after it or
-- else held it before (the worker of the attempt a move out of `running`
-- ended), and the detail: a cancel's reason, else `err` (the error the
-- change wrote, when it differs from the one the record held). A move to
-- the state it is in records nothing, nor does any move of an execution
-- that keeps no history (tested before the event is built).
-- Mirrors the events_moved trigger of the SQLite backend.
local function record_transition(base, uuid, h, from, err)
  local to = h.st
  if from == to or not h.hx then return end
  local e = { t = h.ua, f = from, o = to, a = h.att or '0' }
  local worker = h.wid
  if not worker and from == 'running' then worker = h['a' .. h.att .. 'w'] end
  e.w = worker
  local detail = err
  if to == 'cancelled' then detail = h.cr end
  if detail then e.d = cut_chars(detail, EVENT_DETAIL) end
  append_event(base, uuid, h, e)
end

-- The detail of a change that wrote last error `new` over `old`.
local function written_error(old, new)
  if new ~= old then return new end
  return nil
end

local function lane_id(h) return h.ns .. '/' .. h.lane end

-- The `idem` field of idempotency key `ik` in namespace `ns`, lane `lane`
-- and session `ses` (nil: none). Neither a namespace nor a lane holds a
-- space or a '/', so what follows the lane ('/' or ' ') tells the two
-- forms apart and they never meet: a key without a session keeps the
-- field it always had.
local function idem_field(ns, lane, ses, ik)
  if ses then return ns .. '/' .. lane .. ' ' .. ses .. ' ' .. ik end
  return ns .. '/' .. lane .. '/' .. ik
end

-- Work with conditions a claim must check one by one (capabilities, a
-- deadline, a session, a version) waits in the lane's `wx:` set, so the
-- plain `w:` set is claimed and peeked without reading records.
local function conditional(h)
  return (h.caps ~= nil and h.caps ~= '[]') or (h.dl ~= nil and h.dl ~= '')
    or h.ses ~= nil or h.vk ~= nil
end

local function waiting_key(base, h)
  if conditional(h) then return base .. ':wx:' .. lane_id(h) end
  return base .. ':w:' .. lane_id(h)
end

-- Claim order as one byte string: priority descending, then ready_at, then
-- uuid; members of a zset with equal scores sort by these bytes. The
-- backend computes the same string for new executions (claim_member in
-- crates/baton-valkey/src/lib.rs).
local function member(h, uuid)
  local rd = tonumber(h.rd)
  if rd < 0 then rd = 0 end
  return string.format('%08x%016x', 2147483647 - tonumber(h.pri), rd) .. uuid
end

local function lane_empty(base, lid)
  return redis.call('EXISTS', base .. ':w:' .. lid, base .. ':wx:' .. lid) == 0
end

-- Zero counts stay as fields (readers skip them): cheaper than deleting.
local function count(base, h, st, delta)
  redis.call('HINCRBY', base .. ':counts', lane_id(h) .. '/' .. st, delta)
end

-- Writes batched index changes: `adds` maps a zset key to a flat list of
-- score, member pairs; `counts` maps a counts field to its delta. Chunked so
-- no call exceeds Lua's argument limits.
local function flush(base, adds, counts)
  for key, t in pairs(adds) do
    for i = 1, #t, 1000 do
      redis.call('ZADD', key, unpack(t, i, math.min(i + 999, #t)))
    end
  end
  for field, d in pairs(counts) do
    if d ~= 0 then redis.call('HINCRBY', base .. ':counts', field, d) end
  end
end

local function push(map, key, a, b)
  local t = map[key]
  if not t then
    t = {}
    map[key] = t
  end
  t[#t + 1] = a
  if b ~= nil then t[#t + 1] = b end
end

-- The 32-hex-digit uuid of an id's text form `{p:N}-<hyphenated uuid>` (how
-- records name parents and roots).
local function simple_uuid(id)
  local hyphenated = string.match(id, '}%-(.*)$') or id
  return (string.gsub(hyphenated, '-', ''))
end

-- An id's hyphenated uuid from the 32 hex digits records use (what an
-- execution id's text form holds after `{p:N}-`).
local function hyphenated(u)
  return string.sub(u, 1, 8) .. '-' .. string.sub(u, 9, 12) .. '-' .. string.sub(u, 13, 16)
    .. '-' .. string.sub(u, 17, 20) .. '-' .. string.sub(u, 21, 32)
end

-- Tells the readers waiting for execution `uuid` to change (wait_for_change)
-- that it did, at `now` (ms): a PUBLISH of its id text on B:changed, made
-- only while a reader watches it (its entry in `watch` is not past), so a
-- change nobody follows costs one ZSCORE and no message. A past entry met
-- here is dropped. The listeners of the backends turn the message into a
-- wake-up of their readers of that id. Answers whether it published (the
-- entry stays then).
local function announce_change(base, uuid, now)
  local key = base .. ':watch'
  local until_ms = redis.call('ZSCORE', key, uuid)
  if not until_ms then return false end
  if tonumber(until_ms) < now then
    redis.call('ZREM', key, uuid)
    return false
  end
  local prefix, tag = string.match(base, '^(.*):({p:%d+})$')
  if not prefix then error('partition base without its {p:N} tag: ' .. base) end
  redis.call('PUBLISH', prefix .. ':changed', tag .. '-' .. hyphenated(uuid))
  return true
end

-- A flow member `h` just finished: its root's count of unfinished members
-- goes down (members are trimmed with their root, so they never enter
-- `done` or `kept` themselves).
local function member_finished(base, h)
  local key = base .. ':open:' .. simple_uuid(h.rt)
  if redis.call('DECR', key) <= 0 then redis.call('DEL', key) end
end

-- Defined below; a finished child may move its parent, unless the parent
-- still waits on its dependencies.
local move
local judge_dependencies

-- A child `h` just finished (its `fa` set): its parent's count of unfinished
-- children goes down, and a parent blocked on its children whose last child
-- finished becomes waiting, eligible at `h.fa` (lanes that turn non-empty
-- go to `woken`). `cache` (nil, or a batch of records read and written
-- together: records, dirty, order) is used for a parent in it.
-- Mirrors baton_core::raw::rules::children_finished.
local function child_finished(base, h, woken, cache)
  local pu = simple_uuid(h.par)
  local ph = cache and cache.records[pu]
  if not ph then ph = load(base, pu) end
  if not ph then return end
  local after = (tonumber(ph.oc) or 0) - 1
  if after < 0 then after = 0 end
  if after == 0 then ph.oc = nil else ph.oc = s(after) end
  local on_deps = ph.dp and judge_dependencies(ph.dp, tonumber(ph.dt) or 0,
    tonumber(ph.dd) or 0, tonumber(ph.db) or 0) == 'pending'
  if after == 0 and ph.st == 'blocked' and not on_deps then
    ph.rd, ph.ua = h.fa, h.fa
    move(base, pu, ph, 'waiting', woken)
  end
  if cache and cache.records[pu] then
    if not cache.dirty[pu] then cache.order[#cache.order + 1] = pu end
    cache.dirty[pu] = cmsgpack.pack(ph)
  else
    save(base, pu, ph)
  end
end

-- How many members of the flow rooted at `uuid` are not finished.
local function open_members(base, uuid)
  return tonumber(redis.call('GET', base .. ':open:' .. uuid) or '0') or 0
end

-- The field of a retention rule in the partition's `ret` hash; lane ''
-- (rules::ALL_LANES) for the rule of every lane of `ns`.
local function rule_field(ns, lane) return ns .. '/' .. lane end

-- The keep (ms) of the rule covering namespace `ns` and lane `lane` among
-- `stored` (rule field -> keep text, holding at least the two fields that
-- may cover it): the lane's rule, else the namespace's, else nil (the
-- deployment's default applies).
-- Mirrors baton_core::raw::rules::keep_for.
local function keep_for(stored, ns, lane)
  local keep = stored[rule_field(ns, lane)] or stored[rule_field(ns, '')]
  if not keep then return nil end
  return tonumber(keep)
end

-- keep_for over this partition's `ret` hash; `cache` (a table per call)
-- keeps what the call read, so each lane costs one HMGET.
local function rule_keep(base, ns, lane, cache)
  local field = rule_field(ns, lane)
  local got = cache[field]
  if got == nil then
    local all = rule_field(ns, '')
    local r = redis.call('HMGET', base .. ':ret', field, all)
    got = keep_for({ [field] = r[1] or nil, [all] = r[2] or nil }, ns, lane) or false
    cache[field] = got
  end
  return got or nil
end

-- Places the finished root `uuid` (record `h`) where the trim pass reads
-- it once due, its keep counted from `since` (ms): in `kept` at the time it
-- is due when it carries a rule's keep (kp), else in `done` at `since` (due
-- the default later, which only the pass knows).
local function place_finished(base, uuid, h, since)
  if h.kp then
    redis.call('ZADD', base .. ':kept', s(tonumber(since) + tonumber(h.kp)), uuid)
  else
    redis.call('ZADD', base .. ':done', s(since), uuid)
  end
end

-- A root that is no longer finished (or no longer exists) leaves both.
local function unplace_finished(base, uuid)
  redis.call('ZREM', base .. ':done', uuid)
  redis.call('ZREM', base .. ':kept', uuid)
end

-- Judges a finished root the trim pass read as due by the keep it carries:
-- 'trim', or 'later' with the keep to stamp (`current`, the rule in force;
-- nil: the default) and when it counts from. `default_ms` is the
-- deployment's retention, `since` when its keep counts from, `now` the
-- pass's time.
-- Mirrors baton_core::raw::rules::trim_verdict.
local function trim_verdict(current, default_ms, since, now)
  if since + (current or default_ms) <= now then return 'trim' end
  return 'later', current, since
end

-- A due root whose flow still runs is looked at again a keep later, counted
-- from `now`, under the rule in force.
-- Mirrors baton_core::raw::rules::trim_relook.
local function trim_relook(current, now) return 'later', current, now end

-- Limit slots (library generation 15): a claim through the limited path
-- marks the run it starts lh; the move that ends the run releases them.

-- Whether a change from state `from` to `to` ends a run, freeing the slots
-- it held.
-- Mirrors baton_core::raw::rules::release_on.
local function release_on(from, to)
  return from == 'running' and to ~= 'running'
end

-- The run of `h` (attempt h.att) held limit slots and ends: its release is
-- recorded in the partition's `lrel` (the slots live in another slot, so
-- the backend applies it there after this call) and listed in
-- `woken.released` as '!<ns>/<lane> <holder>', which woken_reply puts in
-- the reply so the caller applies it at once. A release the caller never
-- applies stays in `lrel` until the promote pass hands it out again.
local function release_slots(base, uuid, h, woken)
  local holder = uuid .. ':' .. h.att
  local lid = lane_id(h)
  redis.call('HSET', base .. ':lrel', holder, lid)
  h.lh = nil
  local list = woken.released
  if not list then
    list = {}
    woken.released = list
  end
  list[#list + 1] = '!' .. lid .. ' ' .. holder
end

-- Fair turns (library generation 17): in a lane a fair limit orders, the
-- ready time `rd` of an execution entering `waiting` (or changing priority
-- while waiting) becomes its turn, and it is listed under its key in the
-- per-key set `fk:<ns>/<lane>/<key>` (the same members as the waiting
-- sets) while it waits; its record holds the key as `fk`. Turns are given
-- per partition: a key's work spreads over the partitions, and a claim
-- merges the partitions' sets in member order, so each partition's turns
-- alternate the keys with work there.

-- The key spec ('kind', 'lane' or 'tag:<k>') of the fair limit ordering
-- lane `lane` of namespace `ns` in this partition's copy (`lim:<ns>`:
-- f:<lane>, else f: for every lane), or nil: one HMGET of a key that is
-- absent unless the namespace has limits. `cache` (nil, or a table per
-- call) keeps what the call read.
local function fair_spec(base, ns, lane, cache)
  local lid = ns .. '/' .. lane
  local spec = cache and cache[lid]
  if spec == nil then
    local r = redis.call('HMGET', base .. ':lim:' .. ns, 'f:' .. lane, 'f:')
    spec = r[1] or r[2] or false
    if cache then cache[lid] = spec end
  end
  return spec or nil
end

-- The key an execution of `lane` and `kind` with `tags` (a table) takes
-- turns under by a fair limit counting by `spec`: the limit's key value,
-- '' without the tag it counts by.
-- Mirrors baton_core::raw::rules::fair_key.
local function fair_key_value(spec, lane, kind, tags)
  if spec == 'kind' then return kind end
  if spec == 'lane' then return lane end
  local tag = string.match(spec, '^tag:(.+)$')
  if not tag then error('fair limit with key ' .. tostring(spec)) end
  local v = tags[tag]
  if type(v) ~= 'string' then return '' end
  return v
end

-- The turn of an execution entering `waiting`: after its key's latest
-- waiting turn `last` at its priority, never before the lane's head `head`
-- at its priority; `ready` with neither (each nil when none).
-- Mirrors baton_core::raw::rules::fair_turn.
local function fair_turn(head, last, ready)
  if last then
    local after = last + 1
    if head and head > after then return head end
    return after
  end
  if head then return head end
  return ready
end

-- The ready time (or turn) a waiting-set member holds.
local function member_rd(m)
  return tonumber(string.sub(m, 9, 24), 16)
end

local function fair_set(base, h, key)
  return base .. ':fk:' .. lane_id(h) .. '/' .. key
end

-- Gives `h` (entering `waiting`, or waiting with a new priority; in none
-- of the sets) its turn when a fair limit orders its lane: sets h.rd and
-- h.fk and answers its per-key set; else clears h.fk and answers nil. The
-- other waiting work of the lane at its priority is read from the sets:
-- the first member of each waiting set past the priority's prefix (the
-- head) and the last of its key's set (its key's latest turn).
local function fair_place(base, h, cache)
  local spec = fair_spec(base, h.ns, h.lane, cache)
  if not spec then
    h.fk = nil
    return nil
  end
  local tags = {}
  if h.tags and string.sub(spec, 1, 4) == 'tag:' then tags = cjson.decode(h.tags) end
  local key = fair_key_value(spec, h.lane, h.kind, tags)
  local set = fair_set(base, h, key)
  local prefix = string.format('%08x', 2147483647 - tonumber(h.pri))
  -- Members are hex after the prefix: all of them sort below prefix .. 'g'.
  local lo, hi = '[' .. prefix, '(' .. prefix .. 'g'
  local last = redis.call('ZRANGE', set, hi, lo, 'BYLEX', 'REV', 'LIMIT', 0, 1)[1]
  local head = nil
  local lid = lane_id(h)
  for _, infix in ipairs({ ':w:', ':wx:' }) do
    local first = redis.call('ZRANGE', base .. infix .. lid, lo, hi, 'BYLEX', 'LIMIT', 0, 1)[1]
    if first then
      local rd = member_rd(first)
      if head == nil or rd < head then head = rd end
    end
  end
  h.rd = s(fair_turn(head, last and member_rd(last), tonumber(h.rd)))
  h.fk = key
  return set
end

-- Puts waiting `h` in its lane's waiting set (and, in a fair lane, its
-- key's set) at its turn; answers its member.
local function queue(base, uuid, h, cache)
  local set = fair_place(base, h, cache)
  local m = member(h, uuid)
  redis.call('ZADD', waiting_key(base, h), 0, m)
  if set then redis.call('ZADD', set, 0, m) end
  return m
end

-- Takes waiting `h` out of its waiting set and its key's set.
local function unqueue(base, uuid, h)
  local m = member(h, uuid)
  redis.call('ZREM', waiting_key(base, h), m)
  if h.fk then
    redis.call('ZREM', fair_set(base, h, h.fk), m)
    h.fk = nil
  end
end

-- Removes an execution from the index of its current state.
local function leave(base, uuid, h)
  local st = h.st
  if st == 'waiting' then
    unqueue(base, uuid, h)
    local lid = lane_id(h)
    if lane_empty(base, lid) then redis.call('SREM', base .. ':lanes', lid) end
  elseif st == 'delayed' then
    redis.call('ZREM', base .. ':delayed', uuid)
  elseif st == 'running' then
    redis.call('ZREM', base .. ':leases', uuid)
  elseif st == 'paused' then
    -- Held in no index; what it remembered holds only while paused.
    h.pf, h.pv = nil, nil
  end
  -- A suspended execution leaves its timeout entry behind: the timeout pass
  -- drops entries that no longer hold (leaving costs nothing more).
end

-- Adds an execution to the index of its (new) state. A lane whose waiting
-- sets were empty is reported in `woken` so the caller refreshes its
-- discovery hint and wakes idle claimers.
local function enter(base, uuid, h, woken)
  local st = h.st
  if st == 'waiting' then
    local lid = lane_id(h)
    if lane_empty(base, lid) then
      redis.call('INCR', base .. ':seq')
      redis.call('SADD', base .. ':lanes', lid)
      woken[#woken + 1] = lid
    end
    local cache = woken.fair
    if not cache then
      cache = {}
      woken.fair = cache
    end
    queue(base, uuid, h, cache)
  elseif st == 'delayed' then
    redis.call('ZADD', base .. ':delayed', s(h.ra), uuid)
  elseif st == 'running' then
    redis.call('ZADD', base .. ':leases', s(h.le), uuid)
  elseif st == 'suspended' then
    -- Only a timer makes it due; without one a signal or a cancel ends it.
    if h.wt then redis.call('ZADD', base .. ':timeouts', s(h.wt), uuid) end
  elseif TERMINAL[st] then
    if h.fl then
      member_finished(base, h)
      child_finished(base, h, woken, nil)
    else
      place_finished(base, uuid, h, h.fa)
    end
    redis.call('ZREM', base .. ':deadlines', uuid)
    announce_change(base, uuid, tonumber(h.fa))
    if h.hd then
      -- Its dependents are told by the caller (tell_dependents), within
      -- the call's budget.
      local told = woken.told
      if not told then
        told = {}
        woken.told = told
      end
      told[#told + 1] = { uuid, '', st == 'completed' }
    end
  end
end

-- Moves an execution to state `to`: indexes, counts and `h.st` (the caller
-- saves the record).
-- Fields the new state's index reads (rd, ra, le, fa) must be set in `h`.
-- `woken` collects the lanes that turned non-empty and, as `woken.told`,
-- the executions with dependents that finished ({ uuid, '', completed }):
-- every function that may finish one tells them before it returns.
-- The move is recorded in the execution's history, with `err` (nil, or the
-- error the caller wrote: see record_transition). A move that ends a run
-- holding limit slots releases them (`woken.released`, see release_slots).
function move(base, uuid, h, to, woken, err)
  local from = h.st
  if h.lh and release_on(from, to) then release_slots(base, uuid, h, woken) end
  leave(base, uuid, h)
  count(base, h, from, -1)
  h.st = to
  count(base, h, to, 1)
  enter(base, uuid, h, woken)
  record_transition(base, uuid, h, from, err)
end

local function seq(base)
  return tonumber(redis.call('GET', base .. ':seq') or '0') or 0
end

-- The woken-lanes part of a reply: the partition's sequence, then lanes,
-- then the limit releases the call recorded (see release_slots; a lane id
-- never starts with '!').
local function woken_reply(base, woken)
  local out = { seq(base) }
  for i = 1, #woken do out[#out + 1] = woken[i] end
  local released = woken.released
  if released then
    for i = 1, #released do out[#out + 1] = released[i] end
  end
  return out
end

-- The woken-lanes part of the reply of a call that wakes no lane: sequence
-- 0 (nothing to raise), then the limit releases it recorded.
local function released_reply(woken)
  local out = { 0 }
  local released = woken.released
  if released then
    for i = 1, #released do out[#out + 1] = released[i] end
  end
  return out
end

-- Clears the lease of a running execution (it is leaving `running`).
local function drop_lease(h)
  h.wid, h.ln, h.le = nil, nil, nil
end

-- Cancels the loaded non-terminal execution `h` with reason `why` (nil:
-- none) at `snow` (ms text) and saves it: the one code path of a cancel and
-- of the executions a cascade reaches. A running attempt is closed as
-- cancelled, so its lease is fenced. A parent it releases (its last
-- unfinished child) reports its lane in `woken`.
local function cancel_record(base, uuid, h, why, snow, woken)
  if h.st == 'running' then
    local a = 'a' .. h.att
    h[a .. 'e'], h[a .. 'o'] = snow, 'cancelled'
  end
  if why then h.cr = why end
  h.fa, h.ua = snow, snow
  drop_lease(h)
  move(base, uuid, h, 'cancelled', woken)
  return save(base, uuid, h)
end

-- Defined with pause and resume below; a tree walk pauses and resumes.
local pause_record, resume_record, pause_verdict

-- Whether a tree walk of `kind` ('cancel' | 'pause' | 'resume') changes a
-- descendant in state `st`.
-- Mirrors baton_core::raw::cascade::TreeAction::reaches.
local function tree_reaches(kind, st)
  if kind == 'cancel' then return not TERMINAL[st] end
  if kind == 'pause' then return not TERMINAL[st] and st ~= 'paused' end
  if kind == 'resume' then return st == 'paused' end
  error('a tree walk of kind ' .. tostring(kind))
end

-- Mirrors baton_core::raw::cascade::walk_tree, its step being
-- baton_core::raw::rules::tree_page: visits at most `budget` children
-- below the places on `stack` ({ node uuid, after uuid | '' }, the last
-- visited next), doing `kind` to every one it reaches: 'cancel' cancels it
-- with reason `text`, 'pause' pauses it through the tree pause of the
-- ancestor whose id text is `text`, 'resume' resumes it. Leaves on `stack`
-- the places it did not reach; answers visited, changed.
local function tree_walk(base, stack, budget, kind, text, snow, woken)
  local visited, changed = 0, 0
  while visited < budget and #stack > 0 do
    local item = table.remove(stack)
    local asked = budget - visited
    local min = '-'
    if item[2] ~= '' then min = '(' .. item[2] end
    local page = redis.call('ZRANGEBYLEX', base .. ':ch:' .. item[1], min, '+', 'LIMIT', 0, asked)
    visited = visited + #page
    if #page > 0 and #page >= asked then stack[#stack + 1] = { item[1], page[#page] } end
    for _, uuid in ipairs(page) do
      local h = load(base, uuid)
      if h and tree_reaches(kind, h.st) then
        if kind == 'cancel' then
          cancel_record(base, uuid, h, text, snow, woken)
        elseif kind == 'pause' then
          pause_record(base, uuid, h, pause_verdict(h.st), text, snow, woken)
        else
          resume_record(base, uuid, h, snow, woken)
        end
        changed = changed + 1
      end
      if redis.call('EXISTS', base .. ':ch:' .. uuid) == 1 then
        stack[#stack + 1] = { uuid, '' }
      end
    end
  end
  return visited, changed
end

-- Mirrors baton_core::raw::cascade::walk: the tree walk of a cancel with
-- reason `why`.
local function cascade_walk(base, stack, budget, why, snow, woken)
  return tree_walk(base, stack, budget, 'cancel', why, snow, woken)
end

-- Queues the places a walk left on `stack`, bottom first, for the cascade
-- pass (baton_cascade): cancels with reason `why`.
local function cascade_queue(base, stack, why)
  for i = 1, #stack do
    redis.call('RPUSH', base .. ':cq', cmsgpack.pack({ stack[i][1], stack[i][2], why }))
  end
end

-- Queues the places a pause or resume walk left on `stack`, bottom first,
-- for the cascade pass: kind 'pause' with the pausing ancestor's id text,
-- or 'resume' with ''.
local function tree_queue(base, stack, kind, text)
  for i = 1, #stack do
    redis.call('RPUSH', base .. ':cq', cmsgpack.pack({ stack[i][1], stack[i][2], text, kind }))
  end
end

-- Dependencies.

-- A stored dependency policy (`all_of;skip`, `any_of;run`, `quorum:2;fail`)
-- for `total` dependencies: how many completed upstreams meet it, and its
-- verdict once it can no longer be met ('skip', 'fail' or 'run').
-- Mirrors baton_core::DependencyPolicy::{from_str, needed}.
local UNMET = { skip = true, fail = true, run = true }
local function dependency_policy(dp, total)
  local mode, unmet = string.match(dp or '', '^([^;]+);(%a+)$')
  local needed
  if mode == 'all_of' then
    needed = total
  elseif mode == 'any_of' then
    needed = math.min(total, 1)
  elseif mode then
    needed = tonumber(string.match(mode, '^quorum:(%d+)$'))
  end
  if not needed or not UNMET[unmet] then
    error('execution record with dependency policy ' .. tostring(dp))
  end
  return needed, unmet
end

-- What a dependent's counters say: 'pending', 'release', or once its
-- policy can no longer be met 'skip', 'fail' or 'run'.
-- Mirrors baton_core::raw::rules::judge_dependencies.
function judge_dependencies(dp, total, done, bad)
  local needed, unmet = dependency_policy(dp, total)
  if done >= needed then return 'release' end
  local most = total - bad
  if most < 0 then most = 0 end
  if most < needed then return unmet end
  return 'pending'
end

-- The state a verdict moves a blocked dependent to (none while pending).
-- Mirrors baton_core::raw::rules::DependencyVerdict::state.
local VERDICT_STATE = { release = 'waiting', run = 'waiting', skip = 'skipped', fail = 'failed' }

-- The last_error of a dependent failed by its policy.
-- Mirrors baton_core::raw::rules::dependency_failure.
local function dependency_failure(dp, total, bad)
  return string.format('its dependencies can no longer be met: %d of %d upstream executions ' ..
    'did not complete (policy %s)', bad, total, dp)
end

-- How the new dependent `rec` (its record, with its `deps`) of the flow
-- rooted at uuid `root` starts, `lookup(uuid)` giving each upstream's record
-- (nil: there is none): its upstreams (uuids, in order), how many of them
-- completed, how many finished otherwise, and the state it is written in.
-- An upstream that does not exist, or lives in another namespace or flow,
-- refuses it: answers nil, that upstream's uuid and record.
-- Mirrors baton_core::raw::rules::check_dependencies (for one item).
local function dependency_start(rec, root, lookup)
  local done, bad, ups = 0, 0, {}
  for up in string.gmatch(rec.deps or '', '%x+') do
    ups[#ups + 1] = up
    local uh = lookup(up)
    if not uh or uh.ns ~= rec.ns or ((uh.rt and simple_uuid(uh.rt)) or up) ~= root then
      return nil, up, uh
    end
    if TERMINAL[uh.st] then
      if uh.st == 'completed' then done = done + 1 else bad = bad + 1 end
    end
  end
  local verdict = judge_dependencies(rec.dp, #ups, done, bad)
  return ups, done, bad, VERDICT_STATE[verdict] or 'blocked'
end

-- The state a paused execution left (what events reaching it while paused
-- are judged against), else its state.
-- Mirrors baton_core::Pause::underlying.
local function underlying(h)
  if h.st == 'paused' and h.pf then return h.pf end
  return h.st
end

-- An upstream of the dependent `h` finished (`completed`: whether it
-- completed): answers its counters after and their verdict, or nil when it
-- no longer waits on its dependencies (not blocked nor paused from there,
-- or its policy already decided).
-- Mirrors baton_core::raw::rules::dependency_finished.
local function dependency_finished(h, completed)
  if underlying(h) ~= 'blocked' or not h.dp then return nil end
  local total, done, bad = tonumber(h.dt) or 0, tonumber(h.dd) or 0, tonumber(h.db) or 0
  if judge_dependencies(h.dp, total, done, bad) ~= 'pending' then return nil end
  if completed then done = done + 1 else bad = bad + 1 end
  return done, bad, judge_dependencies(h.dp, total, done, bad)
end

-- Verdicts that finish a dependent without running it.
-- Mirrors baton_core::raw::rules::DependencyVerdict::finishes.
local FINISHES = { skip = true, fail = true }

-- The state a dependent in state `st` takes for `verdict` (nil: it keeps
-- its state, only its counters change): a paused one only a state that
-- finishes it; a release waits for its resume, which judges the counters.
-- Mirrors baton_core::raw::rules::dependency_settles.
local function dependency_settles(st, verdict)
  if st == 'paused' and not FINISHES[verdict] then return nil end
  return VERDICT_STATE[verdict]
end

-- Writes what one finished upstream did to the loaded dependent `h`: its
-- counters, and the state its verdict names (waiting, eligible now; or
-- skipped / failed, finished now: its parent counts it down and, through
-- enter(), its own dependents are noted in `woken.told`). Saves it.
-- Mirrors settle_dependents of baton_core::raw::cascade::CascadeStore, one
-- dependent at a time.
local function settle_dependent(base, uuid, h, done, bad, verdict, snow, woken)
  h.dd, h.db = s(done), s(bad)
  local to = dependency_settles(h.st, verdict)
  if to == 'waiting' then
    h.rd, h.ua = snow, snow
    move(base, uuid, h, to, woken)
  elseif to then
    local wrote = nil
    if verdict == 'fail' then
      local err = dependency_failure(h.dp, tonumber(h.dt) or 0, bad)
      wrote = written_error(h.err, err)
      h.err = err
    end
    h.fa, h.ua = snow, snow
    move(base, uuid, h, to, woken, wrote)
  end
  save(base, uuid, h)
end

-- Mirrors baton_core::raw::cascade::dependents, its step being
-- dependency_finished: tells the dependents of the places on `stack`
-- ({ node uuid, after uuid | '', completed }, the last visited next) that
-- their upstream finished, visiting at most `budget` dependents; a
-- dependent that finishes (skipped, failed) has its own dependents told in
-- turn, before the rest of the page's node. Leaves on `stack` the places it
-- did not reach; answers visited, settled (released, skipped or failed).
local function dependents_walk(base, stack, budget, snow, woken)
  local visited, settled = 0, 0
  while visited < budget and #stack > 0 do
    local item = table.remove(stack)
    local asked = budget - visited
    local min = '-'
    if item[2] ~= '' then min = '(' .. item[2] end
    local page = redis.call('ZRANGEBYLEX', base .. ':dn:' .. item[1], min, '+', 'LIMIT', 0, asked)
    visited = visited + #page
    if #page > 0 and #page >= asked then stack[#stack + 1] = { item[1], page[#page], item[3] } end
    for _, uuid in ipairs(page) do
      local h = load(base, uuid)
      if h then
        local done, bad, verdict = dependency_finished(h, item[3])
        if done then
          settle_dependent(base, uuid, h, done, bad, verdict, snow, woken)
          if verdict ~= 'pending' then settled = settled + 1 end
        end
      end
    end
    -- What this page finished and has dependents (noted by enter()).
    local told = woken.told
    if told then
      woken.told = nil
      for i = 1, #told do stack[#stack + 1] = told[i] end
    end
  end
  return visited, settled
end

-- Queues the dependents walks left on `stack`, bottom first, for the
-- cascade pass.
local function dependents_queue(base, stack)
  for i = 1, #stack do
    local text = 'unmet'
    if stack[i][3] then text = 'completed' end
    redis.call('RPUSH', base .. ':cq', cmsgpack.pack({ stack[i][1], stack[i][2], text, 'dependents' }))
  end
end

-- Tells the dependents of what this call finished (noted in `woken.told`),
-- visiting at most `budget` of them, and queues the rest. Answers
-- visited, settled, and whether anything was queued.
local function tell_dependents(base, budget, snow, woken)
  local stack = woken.told
  if not stack then return 0, 0, false end
  woken.told = nil
  local visited, settled = dependents_walk(base, stack, budget, snow, woken)
  dependents_queue(base, stack)
  return visited, settled, #stack > 0
end

-- The stored retry policy: max attempts, initial ms, max ms, multiplier,
-- jitter ('1' | '0').
local function retry_policy(h)
  if h.rp == nil and h.ma then
    -- A record written before the policy was one field.
    return tonumber(h.ma), tonumber(h.bi), tonumber(h.bm), tonumber(h.bx), h.bj
  end
  local ma, bi, bm, bx, bj = string.match(h.rp or '', '^(%S+) (%S+) (%S+) (%S+) (%S+)$')
  if not ma then error('execution record with retry policy ' .. tostring(h.rp)) end
  return tonumber(ma), tonumber(bi), tonumber(bm), tonumber(bx), bj
end

-- Backoff before attempt `attempt + 1` (same IEEE double operations).
-- Mirrors baton_core::Backoff::delay_ms.
local function delay_ms(h, uuid, attempt)
  local _, b, maxms, mult, bj = retry_policy(h)
  local i = 1
  while i < attempt and b < maxms do
    b = b * mult
    i = i + 1
  end
  local base
  if b >= maxms then base = maxms else base = math.floor(b) end
  if bj ~= '1' or base == 0 then return base end
  local seed = tonumber(string.sub(uuid, 29, 32), 16)
  local r = (seed + attempt * 40503) % 65536
  return base - math.floor(base * r / 131072)
end

-- What a failed attempt turns the execution into: the state it moves to,
-- and its run_at, ready_at and finished_at fields afterwards (text; nil is
-- none). Pure: it reads `h` and changes nothing. `retry_after` is nil or ms.
-- Mirrors baton_core::raw::rules::settle_failure.
local function settle(h, uuid, retryable, retry_after, now)
  -- Attempts count failures, not waits: released attempts are not spent.
  local att = tonumber(h.att) - (tonumber(h.rl) or 0)
  if att < 1 then att = 1 end
  local snow = s(now)
  if (not retryable) or att >= retry_policy(h) then
    return 'failed', h.ra, h.rd, snow
  end
  local ms = retry_after
  if ms == nil then ms = delay_ms(h, uuid, att) end
  if ms == 0 then return 'waiting', h.ra, snow, nil end
  local at = s(now + ms)
  return 'delayed', at, at, nil
end

-- Ends the running attempt as a failure and applies the retry policy: the
-- one path shared by fail and lease reclaim. `retry_after` is nil or ms.
local function apply_failure(base, uuid, h, outcome, err, retryable, retry_after, now, woken)
  local a = 'a' .. h.att
  local snow = s(now)
  h[a .. 'e'], h[a .. 'o'], h[a .. 'x'] = snow, outcome, err
  local to, ra, rd, fa = settle(h, uuid, retryable, retry_after, now)
  h.ra, h.rd, h.fa = ra, rd, fa
  local wrote = written_error(h.err, err)
  h.err, h.ua = err, snow
  drop_lease(h)
  move(base, uuid, h, to, woken, wrote)
end

-- Why a lease whose attempt ended another way is lost.
-- Mirrors baton_core::raw::rules::ended_lease_lost.
local ENDED_WHY = {
  lease_expired = 'the lease expired and the execution was reclaimed',
  cancelled = 'the execution was cancelled',
  expired = "the execution's deadline passed",
  released = 'the lease was handed back to wait; a later claim runs it again',
  paused = 'an operator paused the execution; a claim after its resume runs it again',
  completed = 'the attempt already ended',
  failed = 'the attempt already ended',
}

-- What a renew answers for a lease (attempt `att` as decimal text, `nonce`)
-- it could not extend, `h` being the record (empty when there is none):
-- 'cancelled' or 'paused' when a cancel or a pause ended the lease's own
-- attempt (the worker stops), else 'lost'.
-- Mirrors baton_core::raw::rules::renew_refusal.
local function renew_refusal(h, att, nonce)
  local ended = h['a' .. att .. 'o']
  if (ended == 'cancelled' or ended == 'paused') and h['a' .. att .. 'n'] == nonce then
    return ended
  end
  return 'lost'
end

-- Classifies a lease (attempt, nonce) against an execution record `h` (nil:
-- there is none).
-- Answers h, nil, nil for the live lease; h, nil, outcome when the lease's
-- attempt already ended; nil, reply when the caller must answer `reply`.
-- `attempt` is the attempt number as decimal text.
-- Mirrors baton_core::raw::rules::judge_lease.
local function check_loaded(h, attempt, nonce, now)
  if not h then return nil, { 'not_found' } end
  local a = 'a' .. attempt
  if not h[a .. 'w'] then
    return nil, { 'lost', 'attempt ' .. attempt .. ' was never granted' }
  end
  if h[a .. 'n'] ~= nonce then
    return nil, { 'lost', 'the lease token does not match the one granted for this attempt' }
  end
  if h[a .. 'o'] then return h, nil, h[a .. 'o'] end
  if h.st ~= 'running' or h.att ~= attempt then
    return nil, { 'corrupt', 'attempt ' .. attempt .. ' is open but the execution is ' ..
      tostring(h.st) .. ' at attempt ' .. tostring(h.att) }
  end
  local dl = tsnum(h.dl)
  if dl and dl <= now then
    return nil, { 'lost', "the execution's deadline " .. fmt_ts(dl) .. ' has passed' }
  end
  local le = tsnum(h.le)
  if le and now < le then return h, nil, nil end
  local at = ''
  if le then at = fmt_ts(le) end
  return nil, { 'lost', 'the lease expired at ' .. at ..
    '; the engine will reclaim and retry the execution' }
end

-- check_loaded for the stored execution `uuid`.
local function check_lease(base, uuid, attempt, nonce, now)
  return check_loaded(load(base, uuid), attempt, nonce, now)
end

-- Capabilities: `caps` is the stored JSON array of names (which contain no
-- quotes), `offered` a set of the worker's names.
local function caps_ok(caps, offered)
  if caps == nil or caps == false or caps == '[]' then return true end
  for name in string.gmatch(caps, '"([^"]*)"') do
    if not offered[name] then return false end
  end
  return true
end

-- Sessions (library generation 16). A session's lock lives in the
-- partition that holds the session's work (every execution of a session is
-- created in baton_core::raw::rules::session_partition), so the call that
-- claims the work checks and takes the lock, on a cluster too (see the key
-- schema: `ses` and `sesx`). A lock is a table: worker, expires (ms), idle
-- (ms: how long its worker keeps the session after its last claim or renew
-- of the session's work).

-- The `ses` field of session `ses` of namespace `ns`.
local function session_field(ns, ses) return ns .. '/' .. ses end

-- The stored lock of session field `field`, or nil. A worker id holds no
-- '|', so the value splits at its last two.
local function session_lock(base, field)
  local v = redis.call('HGET', base .. ':ses', field)
  if not v then return nil end
  local w, e, i = string.match(v, '^(.+)|(%d+)|(%d+)$')
  if not w then error('session lock ' .. field .. ' holds ' .. v) end
  return { worker = w, expires = tonumber(e), idle = tonumber(i) }
end

-- Whether `worker` may claim work of a session whose lock is `lock` (nil:
-- none) at `now` (ms).
-- Mirrors baton_core::raw::rules::session_claimable.
local function session_claimable(lock, worker, now)
  if not lock then return true end
  return lock.worker == worker or lock.expires <= now
end

-- When a session lock lapses after a claim or renew at `now` under a lease
-- until `lease_expires` by a worker keeping idle sessions `idle` ms, the
-- lock lapsing at `current` before (nil: new, or another worker's); ms.
-- Mirrors baton_core::raw::rules::session_lock_until.
local function session_lock_until(current, now, lease_expires, idle)
  local t = now + idle
  if lease_expires > t then t = lease_expires end
  if current and current > t then t = current end
  return t
end

-- Whether a claim accepting the version keys `min`..`max` (nil: open) may
-- take an execution whose version key is `key` (nil: no version). Every
-- key has the same length, digits and dots alike in place, so text order
-- is version order.
-- Mirrors baton_core::raw::rules::version_key_accepted.
local function version_key_accepted(key, min, max)
  if not key then return true end
  return (min == nil or key >= min) and (max == nil or key <= max)
end

-- Writes the lock of session field `field` for `worker` after a claim or
-- renew at `now` of the session's work under a lease until `expires`
-- (ms), keeping it `idle` ms once idle; `lock` is the lock stored before.
local function hold_session(base, field, lock, worker, now, expires, idle)
  local current = nil
  if lock and lock.worker == worker then current = lock.expires end
  local t = s(session_lock_until(current, now, expires, idle))
  redis.call('HSET', base .. ':ses', field, worker .. '|' .. t .. '|' .. s(idle))
  redis.call('ZADD', base .. ':sesx', t, field)
end

-- Drops the lock of session field `field` when `worker` holds it.
local function release_session(base, field, worker)
  local lock = session_lock(base, field)
  if lock and lock.worker == worker then
    redis.call('HDEL', base .. ':ses', field)
    redis.call('ZREM', base .. ':sesx', field)
    return true
  end
  return false
end

-- Reports lane `lid` in `woken` (once) after a session lock was released:
-- claimers parked on a lane that was not empty (it held the session's work
-- they could not take) learn it holds work for them now.
local function wake_released(woken, lid)
  for i = 1, #woken do
    if woken[i] == lid then return end
  end
  woken[#woken + 1] = lid
end

-- Drops the locks lapsed by `now` (ms), earliest first, at most `max`. An
-- index entry behind its lock (one written again since) is scored anew.
local function sweep_sessions(base, now, max)
  local due = redis.call('ZRANGEBYSCORE', base .. ':sesx', '-inf', s(now), 'LIMIT', 0, max)
  for _, field in ipairs(due) do
    local lock = session_lock(base, field)
    if lock and lock.expires > now then
      redis.call('ZADD', base .. ':sesx', s(lock.expires), field)
    else
      redis.call('HDEL', base .. ':ses', field)
      redis.call('ZREM', base .. ':sesx', field)
    end
  end
  return #due
end

-- What a claim brings to the routing checks: `vmin`, `vmax` (version keys,
-- '' for an open end), the worker, and a cache of the session locks read.
local function routing(vmin, vmax, worker)
  if vmin == '' then vmin = nil end
  if vmax == '' then vmax = nil end
  return { vmin = vmin, vmax = vmax, worker = worker, locks = {} }
end

-- Whether the claim of `route` may take the loaded execution `h` at `now`
-- by its version and session (its lock read once per call).
local function routable(base, route, h, now)
  if not version_key_accepted(h.vk, route.vmin, route.vmax) then return false end
  if not h.ses then return true end
  local field = session_field(h.ns, h.ses)
  local lock = route.locks[field]
  if lock == nil then
    lock = session_lock(base, field) or false
    route.locks[field] = lock
  end
  return session_claimable(lock or nil, route.worker, now)
end

-- The next due score of a zset as an integer reply element, or ''.
local function first_score(key)
  local r = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #r == 0 then return '' end
  return r[2]
end

-- Choosing work (shared by baton_peek and baton_claim). ARGV layout of
-- both: now, namespace, want, capabilities (comma separated), lane count L,
-- L lanes; each caller passes its routing (see routing()).

-- Up to `want` eligible members of zset `key`, in claim order.
local function eligible(base, key, conditional_set, want, now, offered, route)
  if not conditional_set then
    return redis.call('ZRANGE', key, 0, want - 1)
  end
  local out = {}
  local start = 0
  while #out < want do
    local ms = redis.call('ZRANGE', key, start, start + 63)
    if #ms == 0 then return out end
    for _, m in ipairs(ms) do
      local h = load(base, string.sub(m, 25))
      local dl = h and tsnum(h.dl)
      if h and (dl == nil or dl > now) and caps_ok(h.caps, offered)
        and routable(base, route, h, now) then
        out[#out + 1] = m
        if #out >= want then return out end
      end
    end
    start = start + 64
  end
  return out
end

-- The lanes of `lanes` (names) that are not paused in this partition for
-- namespace `ns`: one HMGET of a key that is absent unless an operator
-- paused a lane of the namespace.
local function unpaused_lanes(base, ns, lanes)
  if #lanes == 0 then return lanes end
  local flags = redis.call('HMGET', base .. ':lp:' .. ns, unpack(lanes))
  local out = {}
  for i = 1, #lanes do
    if not flags[i] then out[#out + 1] = lanes[i] end
  end
  return out
end

-- The lanes of `lanes` (names) that no limit of namespace `ns` covers in
-- this partition's copy (`lim:<ns>`), and those it covers: one HMGET of a
-- key that is absent unless the namespace has limits.
local function split_limited(base, ns, lanes)
  if #lanes == 0 then return lanes, {} end
  local flags = redis.call('HMGET', base .. ':lim:' .. ns, '', unpack(lanes))
  if flags[1] then return {}, lanes end
  local free, limited = {}, {}
  for i = 1, #lanes do
    if flags[i + 1] then limited[#limited + 1] = lanes[i] else free[#free + 1] = lanes[i] end
  end
  return free, limited
end

-- The first `want` members over every lane's two sets: each set is already
-- in claim order, so a merge (not a sort) picks them. Answers the members
-- and, in step, the set each came from. Lanes a limit covers are left out
-- (the backend claims their work through baton_limit_claim): `limited`
-- lists those, as <ns>/<lane>, and `lanes` holds them too, so an empty one
-- is still reported empty.
local function choose(keys, args, route)
  local base = keys[1]
  local now = tonumber(args[1])
  local ns = args[2]
  local want = tonumber(args[3])
  local offered = {}
  for name in string.gmatch(args[4], '[^,]+') do offered[name] = true end
  local nlanes = tonumber(args[5])
  local names = {}
  for i = 1, nlanes do names[i] = args[5 + i] end
  -- A paused lane is skipped, and not reported empty: its hint stays for
  -- its resume.
  names = unpaused_lanes(base, ns, names)
  local held
  names, held = split_limited(base, ns, names)
  local lanes, lists, sets, limited = {}, {}, {}, {}
  for i = 1, #held do
    limited[i] = ns .. '/' .. held[i]
    lanes[#lanes + 1] = limited[i]
  end
  for i = 1, #names do
    local lid = ns .. '/' .. names[i]
    lanes[#lanes + 1] = lid
    for _, cond in ipairs({ false, true }) do
      local key = base .. (cond and ':wx:' or ':w:') .. lid
      local l = eligible(base, key, cond, want, now, offered, route)
      if #l > 0 then
        lists[#lists + 1] = l
        sets[#sets + 1] = key
      end
    end
  end
  local members, from = {}, {}
  if #lists == 1 then
    members = lists[1]
    for i = 1, #members do from[i] = sets[1] end
  elseif #lists > 1 then
    local pos = {}
    for i = 1, #lists do pos[i] = 1 end
    while #members < want do
      local best = nil
      for i = 1, #lists do
        local m = lists[i][pos[i]]
        if m and (best == nil or m < lists[best][pos[best]]) then best = i end
      end
      if best == nil then break end
      members[#members + 1] = lists[best][pos[best]]
      from[#from + 1] = sets[best]
      pos[best] = pos[best] + 1
    end
  end
  return base, now, lanes, members, from, nlanes, limited
end

local function empties(base, lanes)
  local e = {}
  for i = 1, #lanes do
    if lane_empty(base, lanes[i]) then e[#e + 1] = lanes[i] end
  end
  return e
end

-- The lanes of `limited` (as <ns>/<lane>) holding waiting work here: what a
-- claim or peek tells the backend to claim through the limited path.
local function with_work(base, limited)
  local out = {}
  for i = 1, #limited do
    if not lane_empty(base, limited[i]) then out[#out + 1] = limited[i] end
  end
  return out
end

-- Takes the waiting executions of `items` (each { m = its member, set = the
-- waiting set holding it, uuid, h = its record or nil, held = whether the
-- claim took limit slots for it }): each still waiting is claimed, in order,
-- for `worker` until `expires` (ms text) at `snow`, and the k-th claimed
-- takes the k-th nonce of `nonces` (16 hex digits each), as the backend
-- pairs them. One of a session another worker holds stays waiting; one of
-- a session is claimed with the session's lock, kept `idle` ms past the
-- claim (see hold_session). Writes records, indexes, counts and locks;
-- answers the CLAIM_ENTRY reply values per claimed execution that
-- baton_claim describes, flat.
local CLAIM_ENTRY = 12

local function take(base, ns, items, worker, expires, nonces, snow, idle)
  local removed, adds, counts, writes = {}, {}, {}, {}
  local reply = {}
  local now, until_ms = tonumber(snow), tonumber(expires)
  for i = 1, #items do
    local it = items[i]
    local m, h, uuid = it.m, it.h, it.uuid
    local blocked = false
    if h and h.st == 'waiting' and h.ses then
      local field = session_field(h.ns, h.ses)
      local lock = session_lock(base, field)
      if session_claimable(lock, worker, now) then
        hold_session(base, field, lock, worker, now, until_ms, idle)
      else
        blocked = true
      end
    end
    -- An entry of work still waiting for its session stays; any other
    -- leaves its set: claimed, or without its waiting execution.
    if not blocked then push(removed, it.set, m) end
    if h and h.st == 'waiting' and not blocked then
      if h.fk then
        push(removed, fair_set(base, h, h.fk), m)
        h.fk = nil
      end
      local att = NEXT_ATTEMPT[h.att] or s(tonumber(h.att) + 1)
      local a = 'a' .. att
      local k = #reply / CLAIM_ENTRY + 1
      local nonce = string.sub(nonces, (k - 1) * 16 + 1, k * 16)
      h.st, h.att, h.wid, h.ln, h.le, h.ua = 'running', att, worker, nonce, expires, snow
      h[a .. 'w'], h[a .. 'n'], h[a .. 's'] = worker, nonce, snow
      if it.held then h.lh = '1' end
      record_transition(base, uuid, h, 'waiting', nil)
      writes[#writes + 1] = base .. ':e:' .. uuid
      writes[#writes + 1] = cmsgpack.pack(h)
      push(adds, base .. ':leases', expires, uuid)
      local lid = ns .. '/' .. h.lane
      counts[lid .. '/waiting'] = (counts[lid .. '/waiting'] or 0) - 1
      counts[lid .. '/running'] = (counts[lid .. '/running'] or 0) + 1
      local r = #reply
      reply[r + 1], reply[r + 2], reply[r + 3], reply[r + 4] = m, uuid, h.lane, h.kind
      reply[r + 5], reply[r + 6], reply[r + 7], reply[r + 8] = att, h.dl or '', h.tags or '{}',
        h.deps or ''
      reply[r + 9], reply[r + 10] = h.wl or '', h.sn or ''
      reply[r + 11], reply[r + 12] = h.ses or '', h.ver or ''
    end
  end
  if #writes > 0 then redis.call('MSET', unpack(writes)) end
  for set, members in pairs(removed) do redis.call('ZREM', set, unpack(members)) end
  flush(base, adds, counts)
  return reply
end

-- One node's heartbeat: with `live` nodes alive each owns at most its fair
-- share; the node keeps the lowest partitions it holds (`mine`, ascending)
-- up to the share, frees the rest and takes `take` free ones.
-- Answers share, keep, release, take. Pure.
-- Mirrors baton_core::raw::rules::plan_ownership.
local function plan_ownership(count, live, mine)
  if live < 1 then live = 1 end
  local share = math.floor((count + live - 1) / live)
  local keep, release = {}, {}
  for _, p in ipairs(mine) do
    if p < count then
      if #keep < share then keep[#keep + 1] = p else release[#release + 1] = p end
    end
  end
  return share, keep, release, share - #keep
end

-- Waiting without a worker (library generation 5): release, suspend,
-- signals and wait timeouts.

-- Text clipped to `max` bytes, as baton_core::Limits::clip_text does (the
-- texts clipped here are ASCII: names and ids, so bytes are characters).
local function clip(text, max)
  if #text > max then return string.sub(text, 1, max) end
  return text
end

-- Hands back the running attempt of `h` at `snow` without spending it: the
-- attempt closes `released` (its lease is dead at once), `rl` counts it, and
-- the lease fields go. The caller moves and saves `h`.
local function hand_back(h, snow)
  local a = 'a' .. h.att
  h[a .. 'e'], h[a .. 'o'] = snow, 'released'
  h.rl = s((tonumber(h.rl) or 0) + 1)
  h.ua = snow
  drop_lease(h)
end

-- The reply to a release or suspend under a lease whose attempt already
-- ended `ended`: nil when the call answers the stored record (the attempt
-- was released and no later attempt started), else the error reply.
-- Mirrors baton_core::raw::rules::released_replay.
local function released_replay(h, attempt, ended)
  if ended == 'released' and h.att == attempt then return nil end
  if ended == 'completed' or ended == 'failed' then
    return { 'conflict', h.st, 'attempt ' .. attempt .. ' already ' .. ended }
  end
  return { 'lost', ENDED_WHY[ended] or 'the attempt already ended' }
end

-- The waitpoint names of a stored `wp`, in order ('' for a sleep: none).
local function waitpoints(wp)
  local out = {}
  for name in string.gmatch(wp or '', '[^,]+') do out[#out + 1] = name end
  return out
end

-- Per waitpoint, the earliest buffered signal of its name; their seqs,
-- ascending. `buffered` holds { seq, name } pairs.
local function earliest_per_waitpoint(points, buffered)
  local found = {}
  for _, w in ipairs(points) do
    local best = nil
    for _, b in ipairs(buffered) do
      if b[2] == w and (best == nil or b[1] < best) then best = b[1] end
    end
    if best then found[#found + 1] = best end
  end
  table.sort(found)
  return found
end

-- The seqs of the buffered signals ({ seq, name } pairs) that satisfy a
-- wait on `points` under `condition` ('all' | 'any'), ascending, or nil
-- when it is not met. A sleep (no waitpoints) is never met by signals.
-- Mirrors baton_core::raw::rules::satisfying.
local function satisfying(points, condition, buffered)
  if #points == 0 then return nil end
  local found = earliest_per_waitpoint(points, buffered)
  local met
  if condition == 'all' then
    met = #found == #points
  elseif condition == 'any' then
    met = #found > 0
  else
    error('execution record with wait condition ' .. tostring(condition))
  end
  if met then return found end
  return nil
end

-- The seqs a wait on `points` whose timeout passed consumes when it
-- resumes (a partial `all` consumes what came).
-- Mirrors baton_core::raw::rules::timed_out_consumes.
local function timed_out_consumes(points, buffered)
  return earliest_per_waitpoint(points, buffered)
end

-- Judges a signal for an execution in state `st` holding `held` signals
-- (`key_seen`: its idempotency key is among them), at most `max` held:
-- 'duplicate', 'ignored' or 'store'; or nil and the conflict's reason.
-- Mirrors baton_core::raw::rules::signal_admission.
local function signal_admission(st, key_seen, held, max)
  if key_seen then return 'duplicate' end
  if TERMINAL[st] then return 'ignored' end
  if held >= max then
    return nil, 'it already holds ' .. s(held) .. ' signals no wait consumed, the limit; a ' ..
      'signal stays buffered until a wait on its name consumes it'
  end
  return 'store'
end

-- nil when an execution that ended `ended` waits may wait again (at most
-- `max`), else the conflict's reason.
-- Mirrors baton_core::raw::rules::check_wait_room.
local function check_wait_room(ended, max)
  if ended >= max then
    return 'it already waited ' .. s(ended) .. ' times, the limit; split the work into child ' ..
      'executions'
  end
  return nil
end

-- What the passed timeout of a wait (stored wp, wc, wo) does: 'resume', or
-- 'fail' / 'cancel' and the text naming what timed out.
-- Mirrors baton_core::raw::rules::timeout_verdict.
local function timeout_verdict(wp, wc, wo)
  if wo == 'resume' then return 'resume' end
  if wo ~= 'fail' and wo ~= 'cancel' then
    error('execution record with on_timeout ' .. tostring(wo))
  end
  local points = waitpoints(wp)
  local what
  if #points == 0 then
    what = 'its sleep ended'
  elseif #points == 1 then
    what = 'its wait for signal ' .. points[1] .. ' timed out'
  else
    what = 'its wait for signals ' .. table.concat(points, ', ') .. ' (' .. wc ..
      ' of them) timed out'
  end
  return wo, what
end

-- The signals execution `uuid` holds, decoded; index = seq.
local function load_signals(base, uuid)
  local raw = redis.call('LRANGE', base .. ':sg:' .. uuid, 0, -1)
  local out = {}
  for i = 1, #raw do out[i] = cmsgpack.unpack(raw[i]) end
  return out
end

-- The { seq, name } pairs of the signals no wait consumed yet.
local function buffered_of(signals)
  local out = {}
  for i = 1, #signals do
    if not signals[i].w then out[#out + 1] = { i, signals[i].n } end
  end
  return out
end

-- Ends the wait of `h` with `letter` ('s' | 't') in its wait log: the
-- signals `seqs` (of `signals`, as load_signals answers them) are tagged
-- with the wait's number. Appends seq, signal pairs of what it tagged to
-- `reply` when given. The caller saves `h`.
local function end_wait(base, uuid, h, signals, seqs, letter, reply)
  local log = h.wl or ''
  local wait = s(#log + 1)
  local key = base .. ':sg:' .. uuid
  for _, seq in ipairs(seqs) do
    local e = signals[seq]
    e.w = wait
    local packed = cmsgpack.pack(e)
    redis.call('LSET', key, s(seq - 1), packed)
    if reply then
      reply[#reply + 1] = seq
      reply[#reply + 1] = packed
    end
  end
  h.wl = log .. letter
  if #seqs > 0 then h.sb = s(math.max((tonumber(h.sb) or 0) - #seqs, 0)) end
end

-- Checkpointed steps (library generation 6).

-- Judges a record of step `name` of an execution holding `held` steps (at
-- most `max`): `existing` is the stored step (its decoded map; nil or false
-- when new), `status` the record's ('done' | 'failed') and `output` a done
-- record's output. Answers 'unchanged' (the same output for a done step: the
-- stored step is the answer), or 'write' with the status and failure count
-- to store; or nil and the conflict's reason.
-- Mirrors baton_core::raw::rules::judge_step.
local function judge_step(name, existing, status, output, held, max)
  local failures
  if not existing then
    if held >= max then
      return nil, 'it already recorded ' .. s(held) .. ' steps, the limit; split the work ' ..
        'into child executions'
    end
    failures = 0
  elseif existing.s == 'done' then
    if status == 'done' and existing.o == output then return 'unchanged' end
    if status == 'done' then
      return nil, 'step ' .. name .. ' is done with another output; a done step never changes'
    end
    return nil, 'step ' .. name .. ' is done; a done step never changes'
  elseif existing.s == 'failed' then
    failures = tonumber(existing.f)
    if not failures then error('step record with failures ' .. tostring(existing.f)) end
  else
    error('step record with status ' .. tostring(existing.s))
  end
  if status == 'done' then return 'write', 'done', failures end
  -- The rule counts in a u32 and saturates.
  return 'write', 'failed', math.min(failures + 1, 4294967295)
end

-- Key-value state, custom status and progress frames (library generation 7).

-- Judges a write to state key `key` of an execution holding `held` keys (at
-- most `max`): `existing` is the key's stored value (nil or false when not
-- held), `value` the new one (nil: clear the key). Answers 'unchanged',
-- 'set' or 'clear'; or nil and the conflict's reason.
-- Mirrors baton_core::raw::rules::judge_state.
local function judge_state(key, existing, value, held, max)
  if value == nil then
    if existing then return 'clear' end
    return 'unchanged'
  end
  if existing then
    if existing == value then return 'unchanged' end
    return 'set'
  end
  if held >= max then
    return nil, 'it already holds ' .. s(held) .. ' state keys, the limit; clear keys it no ' ..
      'longer needs before setting ' .. key
  end
  return 'set'
end

-- The version a custom status write leaves: `current` is the stored status
-- (nil when never set) at `version`; `new` the status written. Answers
-- whether it changed, and the version.
-- Mirrors baton_core::raw::rules::status_version.
local function status_version(current, version, new)
  if current == new then return false, version end
  return true, version + 1
end

-- The number of the oldest progress frame kept once frame `seq` is
-- appended, at most `max` being kept (at least one).
-- Mirrors baton_core::raw::rules::first_kept_frame.
local function first_kept_frame(seq, max)
  if max < 1 then max = 1 end
  local first = seq - max
  if first < 0 then first = 0 end
  return first + 1
end

-- Operator control (library generation 8).

-- Why an execution in state `st` refuses a priority edit, or nil.
-- Mirrors baton_core::raw::rules::check_priority_edit.
local function priority_edit_refusal(st)
  if TERMINAL[st] then
    return 'it already finished; its priority no longer decides anything'
  end
  return nil
end

-- Why an execution in state `st` refuses a revoke, or nil.
-- Mirrors baton_core::raw::rules::check_revoke.
local function revoke_refusal(st)
  if st ~= 'running' then return 'only a running execution holds a lease to revoke' end
  return nil
end

-- The error a revoke settles for the running attempt of `h`.
-- Mirrors baton_core::raw::rules::revoke_failure.
local function revoke_error(h)
  return 'lease revoked by an operator: worker ' .. (h.wid or '?') .. ' held attempt ' ..
    tostring(h.att)
end

-- Judges setting tag `key` of the decoded tags `tags` to `value` (nil:
-- removing it), at most `max` tags held. Answers 'unchanged', or 'write'
-- and the tags after (`tags` itself, changed); or nil and the conflict's
-- reason. The value was checked by the backend before the call.
-- Mirrors baton_core::raw::rules::tag_edit.
local function tag_edit(tags, key, value, max)
  local held = tags[key]
  if held == value then return 'unchanged' end
  if held == nil then
    local n = 0
    for _ in pairs(tags) do n = n + 1 end
    if n >= max then
      return nil, 'it already has ' .. s(max) .. ' tags, the limit; remove one before adding ' ..
        key
    end
  end
  tags[key] = value
  return 'write', tags
end

-- Tags as the record stores them: a JSON object in key order (as the
-- backend writes them at create), or nil for none (the absent field).
local function encode_tags(tags)
  local keys = {}
  for k in pairs(tags) do keys[#keys + 1] = k end
  if #keys == 0 then return nil end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = cjson.encode(k) .. ':' .. cjson.encode(tags[k]) end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- Pause, resume and replay (library generation 9).

local FINISHED_WHY = 'it already finished; replay a failed, cancelled, expired or skipped ' ..
  'execution to run it again'

-- What a pause does to an execution in state `st`: the state resume
-- returns it to ('waiting' for a running one); false for one already
-- paused (pausing again changes nothing); nil and the conflict's reason for
-- a finished one.
-- Mirrors baton_core::raw::rules::check_pause.
function pause_verdict(st)
  if st == 'paused' then return false end
  if TERMINAL[st] then return nil, FINISHED_WHY end
  if st == 'running' then return 'waiting' end
  return st
end

-- Whether a resume acts on an execution in state `st`: true for a paused
-- one, false for one neither paused nor finished (left as it is); nil and
-- the conflict's reason for a finished one.
-- Mirrors baton_core::raw::rules::check_resume.
local function resume_verdict(st)
  if st == 'paused' then return true end
  if TERMINAL[st] then return nil, FINISHED_WHY end
  return false
end

-- Why an execution in state `st` refuses a replay, or nil.
-- Mirrors baton_core::raw::rules::check_replay.
local function replay_refusal(st)
  if st == 'failed' or st == 'cancelled' or st == 'expired' or st == 'skipped' then return nil end
  if st == 'completed' then
    return 'it completed; submit a new execution to run the work again'
  end
  return 'it has not finished; only a failed, cancelled, expired or skipped execution is replayed'
end

-- The deadline (ms text, nil: none) a replayed execution keeps at `now`:
-- its own while still ahead, none once it passed.
-- Mirrors baton_core::raw::rules::replay_deadline.
local function replay_deadline(dl, now)
  local at = tsnum(dl)
  if at and at > now then return dl end
  return nil
end

-- The state a paused execution that left `from` is resumed to at `now`:
-- `ra` its run_at (nil: none), `oc` its unfinished children, `dp dt dd db`
-- its dependency policy and counters (dp nil: no dependencies),
-- `signalled` whether the signals it holds satisfy its stored wait.
-- Mirrors baton_core::raw::rules::resume_target.
local function resume_target(from, ra, oc, dp, dt, dd, db, signalled, now)
  if from == 'delayed' then
    if ra and ra > now then return 'delayed' end
    return 'waiting'
  elseif from == 'blocked' then
    if dp and judge_dependencies(dp, dt, dd, db) == 'pending' then return 'blocked' end
    if oc == 0 then return 'waiting' end
    return 'blocked'
  elseif from == 'suspended' and signalled then
    return 'waiting'
  end
  return from
end

-- Pauses the loaded execution `h` (neither finished nor paused) at `snow`,
-- remembering `from` (what pause_verdict answered) and `via` (the pausing
-- ancestor's id text; nil when paused itself), and saves it. A running
-- attempt ends 'paused': its lease is dead at once and `rl` counts it, so
-- it spends no attempt. A paused execution leaves every index that would
-- claim, promote or time it out (see leave()); it stays in `deadlines`.
function pause_record(base, uuid, h, from, via, snow, woken)
  if h.st == 'running' then
    local a = 'a' .. h.att
    h[a .. 'e'], h[a .. 'o'] = snow, 'paused'
    h.rl = s((tonumber(h.rl) or 0) + 1)
    drop_lease(h)
  end
  h.ua = snow
  move(base, uuid, h, 'paused', woken)
  h.pf, h.pv = from, via
  return save(base, uuid, h)
end

-- Resumes the loaded paused execution `h` at `snow` (ms text) to what
-- resume_target answers on what it holds now, and saves it. One that left
-- `suspended` whose held signals satisfy its stored wait consumes them as a
-- signal would (its wait log gains 's'); a waiting one is eligible from
-- now (its lane, when it turns non-empty, goes to `woken`).
function resume_record(base, uuid, h, snow, woken)
  local now = tonumber(snow)
  local from = h.pf
  if not from then error('execution record ' .. uuid .. ' paused without the state it left') end
  local signals, seqs
  if from == 'suspended' and h.sc then
    local points = waitpoints(h.wp)
    if #points > 0 then
      signals = load_signals(base, uuid)
      seqs = satisfying(points, h.wc, buffered_of(signals))
    end
  end
  local to = resume_target(from, tsnum(h.ra), tonumber(h.oc) or 0, h.dp, tonumber(h.dt) or 0,
    tonumber(h.dd) or 0, tonumber(h.db) or 0, seqs ~= nil, now)
  if to == 'waiting' then
    if seqs then end_wait(base, uuid, h, signals, seqs, 's') end
    h.rd = snow
  end
  h.ua = snow
  move(base, uuid, h, to, woken)
  return save(base, uuid, h)
end

-- Cancels, replays and removes (library generation 11; units of cancels
-- and replays, generation 14): the one code path of a cancel, shared by
-- baton_cancel, baton_cancel_units and a forced delete, the one code path
-- of a replay, shared by baton_replay and baton_replay_units, and the one
-- code path of removing an execution, shared by the trim pass and deletes.

-- Cancels what is below execution `uuid` with reason `why` (stored on each
-- descendant it cancels): walks its descendants visiting at most `budget`
-- children, queues the places it did not reach for the cascade pass, and
-- tells the dependents of what it cancelled within what the walk left of
-- the budget, queueing the rest. Answers how many it cancelled, whether
-- it queued anything, and how many children and dependents it visited
-- (what the budget counts).
local function cancel_below(base, uuid, why, budget, snow, woken)
  local stack = { { uuid, '' } }
  local visited, cancelled = cascade_walk(base, stack, budget, why, snow, woken)
  local queued = #stack > 0
  if queued then cascade_queue(base, stack, why) end
  local told_visited, _, told = tell_dependents(base, budget - visited, snow, woken)
  return cancelled, queued or told, visited + told_visited
end

-- Cancels the loaded execution `h` (not finished; a cancelled one is kept
-- as it is) with reason `why` (nil: none) at `snow`: its own dependents
-- are told within `budget`, and with `tree` its descendants are cancelled
-- with reason `below_why` (see cancel_below). Answers its encoded record,
-- how many descendants were cancelled, whether the walk below queued
-- work, and how many children and dependents were visited (its own
-- dependents told and the walk below: what a unit of cancels charges).
local function cancel_execution(base, uuid, h, why, tree, below_why, budget, snow, woken)
  local record
  if h.st == 'cancelled' then
    record = cmsgpack.pack(h)
  else
    record = cancel_record(base, uuid, h, why, snow, woken)
  end
  local visited = 0
  if woken.told then visited = tell_dependents(base, budget, snow, woken) end
  local cascaded, pending, below = 0, false, 0
  if tree then
    cascaded, pending, below = cancel_below(base, uuid, below_why, budget, snow, woken)
  end
  return record, cascaded, pending, visited + below
end

-- Cancels execution `uuid` as asked of baton_cancel (or of one id of
-- baton_cancel_units), with the arguments of cancel_execution. Refused
-- when it is missing, or finished otherwise than cancelled; a refused one
-- is judged before anything is written, so it changes nothing. Answers
-- the refusal ({ 'not_found' } or { 'conflict', state, reason }), or nil
-- and then its encoded record, how many descendants were cancelled,
-- whether the walk below queued work, whether it acted (it had not
-- finished: false for one already cancelled, kept as it is), and how many
-- children and dependents it visited (see cancel_execution).
-- Its verdict mirrors baton_core::raw::rules::cancel_acts.
local function cancel_one(base, uuid, why, tree, below_why, budget, snow, woken)
  local h = load(base, uuid)
  if not h then return { 'not_found' } end
  if TERMINAL[h.st] and h.st ~= 'cancelled' then
    return { 'conflict', h.st, 'it already finished' }
  end
  local acted = h.st ~= 'cancelled'
  local record, cascaded, pending, visited = cancel_execution(base, uuid, h, why, tree, below_why,
    budget, snow, woken)
  return nil, record, cascaded, pending, acted, visited
end

-- Replays execution `uuid` at `now` (ms), the one code path of
-- baton_replay and of each id of baton_replay_units: a failed, cancelled,
-- expired or skipped execution runs again (a dead-letter requeue):
-- waiting, eligible now, with a fresh attempt budget (`rl` = its
-- attempts, so the retry policy counts only attempts after this one; the
-- attempt numbers go on). Its finish time and cancel reason go, its
-- deadline stays only while still ahead (back in `deadlines`); attempts,
-- signals, steps and state stay as history.
-- A flow member re-opens its flow: its root's `open:` count goes up (the
-- flow is not trimmed while it runs) and a parent that has not finished
-- counts it as an unfinished child again; a root leaves `done` (or `kept`:
-- it keeps its `kp`, counted from its next finish).
-- Its dependents were told when it finished and are not told again: `hd`
-- goes with its dependents set (a dependent created later sets both anew,
-- and only those are told at its next end). While the partition's cascade
-- queue holds work, a queued walk could still act on the replayed run as
-- on the old one (cancel its new children, tell its dependents of its old
-- end): the replay is refused with 'contention' and is retried once the
-- cascade pass has emptied the queue. Every refusal is judged before
-- anything is written.
-- A lane that turns non-empty goes to `woken`. Answers the refusal ({
-- 'not_found' }, { 'conflict', state, reason } for any other state, or {
-- 'contention' }), or nil and its encoded record.
-- Its check mirrors baton_core::raw::rules::check_replay, the deadline it
-- keeps baton_core::raw::rules::replay_deadline.
local function replay_one(base, uuid, now, woken)
  local snow = s(now)
  local h = load(base, uuid)
  if not h then return { 'not_found' } end
  local why = replay_refusal(h.st)
  if why then return { 'conflict', h.st, why } end
  if redis.call('LLEN', base .. ':cq') > 0 then return { 'contention' } end
  if (tonumber(h.att) or 0) > 0 then h.rl = h.att else h.rl = nil end
  h.dl = replay_deadline(h.dl, now)
  h.fa, h.cr = nil, nil
  h.rd, h.ua = snow, snow
  if h.fl then
    local key = base .. ':open:' .. simple_uuid(h.rt)
    redis.call('INCR', key)
    local pu = simple_uuid(h.par)
    local ph = load(base, pu)
    if ph and not TERMINAL[ph.st] then
      ph.oc = s((tonumber(ph.oc) or 0) + 1)
      save(base, pu, ph)
    end
  else
    unplace_finished(base, uuid)
  end
  if h.hd then
    redis.call('DEL', base .. ':dn:' .. uuid)
    h.hd = nil
  end
  move(base, uuid, h, 'waiting', woken)
  if h.dl then redis.call('ZADD', base .. ':deadlines', h.dl, uuid) end
  local record = save(base, uuid, h)
  announce_change(base, uuid, now)
  return nil, record
end

-- Removes the loaded execution `h` with everything it consists of, at
-- `now` (ms): its record and payload, attempts (in the record), signals,
-- steps, state, progress frames and history, its entries in the indexes
-- of its state, of its namespace, of its parent's children and child keys,
-- of its root's members, of its upstreams' dependents, its own dependents
-- set, its idempotency key, its deadline, timeout and `done` or `kept`
-- entries and its count. A reader waiting for it to change is told (it
-- reads NotFound at once). Its own children and members must already be
-- gone.
local function remove_execution(base, uuid, h, now)
  leave(base, uuid, h)
  if h.ik then
    local field = idem_field(h.ns, h.lane, h.ses, h.ik)
    if redis.call('HGET', base .. ':idem', field) == uuid then
      redis.call('HDEL', base .. ':idem', field)
    end
  end
  if h.par then
    local pu = simple_uuid(h.par)
    redis.call('ZREM', base .. ':ch:' .. pu, uuid)
    if h.ck and redis.call('HGET', base .. ':ck:' .. pu, h.ck) == uuid then
      redis.call('HDEL', base .. ':ck:' .. pu, h.ck)
    end
  end
  if h.rt then redis.call('ZREM', base .. ':tr:' .. simple_uuid(h.rt), uuid) end
  if h.deps then
    for up in string.gmatch(h.deps, '%x+') do redis.call('ZREM', base .. ':dn:' .. up, uuid) end
  end
  if h.hd then redis.call('DEL', base .. ':dn:' .. uuid) end
  if h.sc then redis.call('DEL', base .. ':sg:' .. uuid, base .. ':sk:' .. uuid) end
  if h.sn then redis.call('DEL', base .. ':st:' .. uuid) end
  if h.kc then redis.call('DEL', base .. ':kv:' .. uuid) end
  if h.pq then redis.call('DEL', base .. ':pg:' .. uuid) end
  if h.ev then redis.call('DEL', base .. ':ev:' .. uuid) end
  if announce_change(base, uuid, now) then redis.call('ZREM', base .. ':watch', uuid) end
  if h.wt or h.wp then redis.call('ZREM', base .. ':timeouts', uuid) end
  redis.call('ZREM', base .. ':ns:' .. h.ns, uuid)
  redis.call('ZREM', base .. ':deadlines', uuid)
  -- A member counted by its root (fl) never enters `done` nor `kept`.
  if not h.fl then unplace_finished(base, uuid) end
  count(base, h, h.st, -1)
  redis.call('DEL', base .. ':e:' .. uuid, base .. ':p:' .. uuid)
end

-- Judges a delete of an execution in state `st` (`has_parent`: it is a
-- child; `open_below`: some descendant has not finished; `force` as asked):
-- 'remove' or 'cancel_first'; or nil and the conflict's reason.
-- Mirrors baton_core::raw::rules::check_delete.
local function delete_verdict(st, has_parent, open_below, open_dependents, force)
  if TERMINAL[st] and not open_below and not open_dependents then return 'remove' end
  local what = 'it has not finished'
  if TERMINAL[st] then
    if open_below then
      what = 'some of its descendants have not finished'
    else
      what = 'executions that have not finished depend on it or its descendants'
    end
  end
  if has_parent then
    return nil, what .. ', and a child is deleted alone only once it and its descendants ' ..
      'finished; cancel it first, or delete the root of its flow with force'
  end
  if not force then return nil, what .. '; pass force to cancel and delete it' end
  return 'cancel_first'
end

-- Limits (library generation 15): the verdicts of a claim in lanes a limit
-- covers, mirrored from baton_core::raw::rules::limits, and the routines
-- over a namespace's limit slot `lim` (B:{lim:<ns>}). A limit is held as a
-- table: name, lane ('' for every lane), key ('kind', 'lane' or
-- 'tag:<k>'), max (nil: no cap), rc and rp (rate count and window ms; nil:
-- no rate).

-- The value `limit` counts an execution of `lane` and `kind` with `tags`
-- (a table) under; nil when it does not cover it (another lane, or the tag
-- it counts by is missing).
-- Mirrors baton_core::raw::rules::limit_key_value.
local function limit_key_value(limit, lane, kind, tags)
  if limit.lane ~= '' and limit.lane ~= lane then return nil end
  if limit.key == 'kind' then return kind end
  if limit.key == 'lane' then return lane end
  local tag = string.match(limit.key, '^tag:(.+)$')
  if not tag then error('limit ' .. tostring(limit.name) .. ' with key ' .. tostring(limit.key)) end
  local v = tags[tag]
  if type(v) ~= 'string' then return nil end
  return v
end

-- How a rate's window (claim instants in ms, ascending) stands at `now` for
-- `count` claims per `per` ms: the claims in it, and, when they fill it,
-- the instant it has room again (nil while it has room).
-- Mirrors baton_core::raw::rules::window_room.
local function window_room(window, count, per, now)
  local since = now - per
  local inside = {}
  for i = 1, #window do
    if window[i] > since then inside[#inside + 1] = window[i] end
  end
  if #inside < count then return #inside, nil end
  return #inside, inside[#inside - count + 1] + per
end

-- One claim's view of `limits` at `now`: per limit and key value what runs
-- and the window's claims (ascending), each key read on first use by
-- `load(limit, value, state)` when given (else empty until set).
-- Mirrors baton_core::raw::rules::Admission (new, set_running and
-- set_window are the state's fields).
local function admission(limits, now, load)
  local order = {}
  for i = 1, #limits do order[i] = i end
  table.sort(order, function(a, b) return limits[a].name < limits[b].name end)
  return { limits = limits, order = order, now = now, keys = {}, load = load }
end

-- The state of key `value` of the adm.limits[i].
local function admission_state(adm, i, value)
  local k = i .. '\n' .. value
  local st = adm.keys[k]
  if not st then
    st = { i = i, value = value, running = 0, window = {} }
    adm.keys[k] = st
    if adm.load then adm.load(adm.limits[i], value, st) end
  end
  return st
end

-- Why key `value` of adm.limits[i] has no room now ({ limit, value,
-- running, max | until_ms }), or nil.
-- Mirrors Admission::judge of baton_core::raw::rules.
local function admission_judge(adm, i, value)
  local limit = adm.limits[i]
  local st = admission_state(adm, i, value)
  if limit.max and st.running >= limit.max then
    return { limit = limit.name, value = value, running = st.running, max = limit.max }
  end
  if limit.rc then
    local _, until_ms = window_room(st.window, limit.rc, limit.rp, adm.now)
    if until_ms then
      return { limit = limit.name, value = value, running = st.running, until_ms = until_ms }
    end
  end
  return nil
end

-- Why the limits hold an execution of `lane` and `kind` with `tags` back
-- (the first limit by name without room for its key), or nil.
-- Mirrors baton_core::raw::rules::Admission::check.
local function admission_check(adm, lane, kind, tags)
  for _, i in ipairs(adm.order) do
    local v = limit_key_value(adm.limits[i], lane, kind, tags)
    if v then
      local why = admission_judge(adm, i, v)
      if why then return why end
    end
  end
  return nil
end

-- Takes the execution when every limit covering it has room: counts it
-- running under each of its keys and adds `now` to each rate's window,
-- and answers nil and the states it was counted in; otherwise changes
-- nothing and answers why.
-- Mirrors baton_core::raw::rules::Admission::admit.
local function admission_admit(adm, lane, kind, tags)
  local why = admission_check(adm, lane, kind, tags)
  if why then return why, nil end
  local now = adm.now
  local took = {}
  for i = 1, #adm.limits do
    local limit = adm.limits[i]
    local v = limit_key_value(limit, lane, kind, tags)
    if v then
      local st = admission_state(adm, i, v)
      st.running = st.running + 1
      if limit.rc then
        local kept = {}
        for _, t in ipairs(st.window) do
          if t > now - limit.rp then kept[#kept + 1] = t end
        end
        kept[#kept + 1] = now
        st.window = kept
      end
      took[#took + 1] = st
    end
  end
  return nil, took
end

-- The keys without room now, per limit in adm.limits order: { limit,
-- every = true } for a cap of 0, else { limit, values } (sorted), for the
-- limits with any.
-- Mirrors baton_core::raw::rules::Admission::blocked.
local function admission_blocked(adm)
  local values = {}
  for _, st in pairs(adm.keys) do
    if admission_judge(adm, st.i, st.value) then
      local list = values[st.i]
      if not list then
        list = {}
        values[st.i] = list
      end
      list[#list + 1] = st.value
    end
  end
  local out = {}
  for i = 1, #adm.limits do
    local limit = adm.limits[i]
    if limit.max == 0 then
      out[#out + 1] = { limit = limit, every = true }
    elseif values[i] then
      table.sort(values[i])
      out[#out + 1] = { limit = limit, values = values[i] }
    end
  end
  return out
end

-- The limits stored in the namespace slot `lim`. One whose definition is
-- still adopting what runs at `now` (`ad`, written by set_limit until it
-- counted every run it found) holds its work back as a cap of 0 would.
local function stored_limits(lim, now)
  local raw = redis.call('HGETALL', lim .. ':def')
  local out = {}
  for i = 1, #raw, 2 do
    local d = cjson.decode(raw[i + 1])
    -- A limit with neither cap nor rate (fair only) holds nothing back.
    if d.max ~= nil or d.rc ~= nil then
      local limit = {
        name = raw[i], lane = d.lane or '', key = d.key, max = d.max, rc = d.rc, rp = d.rp,
      }
      if d.ad and d.ad > now then limit.max = 0 end
      out[#out + 1] = limit
    end
  end
  return out
end

-- Counts `holder` in the runs of key `value` of limit `name` until `lapse`
-- (ms text; a later lapse it already has is kept), and notes the value in
-- the limit's value index until then. Answers the set's name.
local function hold_in(lim, name, value, holder, lapse)
  local set = name .. '/' .. value
  redis.call('ZADD', lim .. ':r:' .. set, 'GT', lapse, holder)
  redis.call('ZADD', lim .. ':v:' .. name, 'GT', lapse, value)
  return set
end

-- Frees `holder`: it leaves every set it is counted in and the index; with
-- `windows` (a claim that never took place) its rate window entries go too.
local function free_holder(lim, holder, windows)
  local held = redis.call('HGET', lim .. ':hk', holder)
  if held then
    for set in string.gmatch(held, '[^\n]+') do
      redis.call('ZREM', lim .. ':r:' .. set, holder)
      if windows then redis.call('ZREM', lim .. ':q:' .. set, holder) end
    end
    redis.call('HDEL', lim .. ':hk', holder)
  end
  redis.call('ZREM', lim .. ':hold', holder)
end

-- Keeps the value index of `limit` (a table, as stored_limits answers it)
-- naming every key value that has a runs set or a window set, so the
-- forget of baton_limit_define finds them all: a value whose index entry
-- passed by `now` leaves the index only once its sets hold nothing live
-- (lapsed runs and claims out of the window are dropped, and empty sets
-- vanish with them); one still holding something is scored again by its
-- latest lapse or window end. At most `max` values per call.
local function prune_values(lim, limit, now, max)
  local index = lim .. ':v:' .. limit.name
  local due = redis.call('ZRANGEBYSCORE', index, '-inf', '(' .. s(now), 'LIMIT', 0, max)
  for _, value in ipairs(due) do
    local set = limit.name .. '/' .. value
    local runs, window = lim .. ':r:' .. set, lim .. ':q:' .. set
    redis.call('ZREMRANGEBYSCORE', runs, '-inf', s(now))
    local live = nil
    local top = redis.call('ZRANGE', runs, -1, -1, 'WITHSCORES')
    if top[2] then live = tonumber(top[2]) end
    if limit.rc then
      redis.call('ZREMRANGEBYSCORE', window, '-inf', s(now - limit.rp))
      local last = redis.call('ZRANGE', window, -1, -1, 'WITHSCORES')
      if last[2] then
        local ends = tonumber(last[2]) + limit.rp
        if not live or ends > live then live = ends end
      end
    else
      redis.call('DEL', window)
    end
    if live then
      redis.call('ZADD', index, s(live), value)
    else
      redis.call('ZREM', index, value)
    end
  end
end

-- Frees the holders whose slots lapsed by `now` (a release that never
-- arrived), earliest first, at most `max` of them.
local function lapse_holders(lim, now, max)
  local gone = redis.call('ZRANGEBYSCORE', lim .. ':hold', '-inf', s(now), 'LIMIT', 0, max)
  for i = 1, #gone do free_holder(lim, gone[i], false) end
end
