-- step.lua — the one atomic, idempotent Redis step per touchpoint event (SPEC §3, §6).
--
-- The daemon decides in C what the event means for every position the lead could be in
-- (the "plan", see include/funneld/rules.h); this script reads the lead's real position,
-- applies the plan's entry for it, and updates the lead, the de-duplication record and the
-- per-funnel counters in one go. Redis runs a script atomically, so a crash can never leave
-- half an event applied, and the de-duplication check makes a replay change nothing.
--
-- All keys share the hash tag of the lead's shard, so the script runs on Redis Cluster too:
--   KEYS[1] lead hash      KEYS[2] seen event ids (zset, seen.lua)
--   KEYS[3] pending outputs (hash event_id -> result not yet acknowledged by Kafka)
--   KEYS[4] shard counters (hash, fields "<funnel>|<counter>[|<stage>]")
--   KEYS[5] retargeting timers of the message's partition in this shard (zset, see
--   daemon/timers/timer.lua, which is prepended to this script)   KEYS[6] the shard's
--   trigger outbox   KEYS[7] its leases
-- ARGV: 1 now_ms 2 dedupe_ttl_ms 3 lead_id 4 event_id 5 ts_ms 6 kind (t touch, c consent,
--   e erase, k cost) 7 channel 8 type 9 campaign 10 source 11 value (a cost's amount in
--   hundredths) 12 marketing ('1','0','')
--   13 the sender's token "<instance>:<message>" (instance random per process, message a
--   counter), 14 '1' on a Redis Cluster (see touch_undeclared), 15 number of funnels, then
--   per funnel: name, number of stages, plan, timer
--   spec (see fn_rules_timer_spec in include/funneld/rules.h); then trigger caps
--   ("name=max,per;..."), the time up to which the lead's pending timers are due, each
--   funnel's max_breakdown ("100,20,..." in the order of the funnels above), and their
--   marketing analytics (attribution, cohorts: step.h, FN_STEP_TAIL_MARKETING).
-- The lead's recent touches (attribution.lua) are a key of its slot named from KEYS[1].
-- Returns {status, at, value, {first ch, campaign, source, at, last ch, campaign, source, at}
--   (or '' without transitions), {{funnel, kind, from, to, time_in_stage_ms, cycle_ms,
--   touches[, credit]}, ...} (or ''), earliest due time this step armed in KEYS[5] or '',
--   {trigger outbox entry, ...} (or '')}. An empty list goes as '': Redis turns each table
--   of a script's reply into a reply of its own, at several look-ups a table, and most steps
--   have neither transitions nor triggers. (A stored result from before may hold {}.)
--
-- Timers of the lead that were already due when this event happened fire first, here, as
-- fire.lua would have: whether the clock's tick or the lead's next event gets there first,
-- the same triggers come out, so a replay gives the same triggers at any speed.
-- status: 'ok', 'erased', 'collision' (another lead id hashes to this key), 'dup' (already
-- applied, and nothing to emit) or 'dup-ok' / 'dup-erased' (already applied, and the tail
-- repeats the stored result, whose outputs were never acknowledged).
--
-- A pending result names the message that wrote it. The same message sent again (its reply
-- was lost with a connection) gets the result it never saw. Another message of the same live
-- instance is a duplicate copy in the stream: that instance is delivering or has delivered
-- the outputs (it never drops one), so the copy stays silent. A result left by another
-- instance (one that crashed, or lost the partition) is emitted again, with the same ids.
-- Deciding this here, atomically, leaves no window between a delivery and the clearing of
-- its pending result.
-- Every number crosses the boundary as a decimal string: Lua's tostring would turn an epoch
-- in milliseconds into "1.79e+12", which HINCRBY and the daemon would reject. So does every
-- argument of redis.call, constants too ('1', not 1): Redis writes a Lua number out with
-- snprintf("%.17g"), dearer than the rest of a HINCRBY.
--
-- A step that fails must leave Redis as it was: Redis never rolls a script's writes back, so
-- everything that could raise (the arguments, the stored fields this event reads, a counter
-- this event would overflow) is checked before the first write, and refused with an error
-- reply that says "nothing written". What is left to fail after that is a key under the
-- prefix that something other than funneld made of another type; the daemon never retries a
-- refused step (daemon/state/store.c), so even then nothing is applied twice.
--
-- K.F_ID and the like are the key and lead-hash field names of daemon/state/keys.def and
-- the numbers of include/funneld/step.h: the build writes their text in (keys_lua.cmake).
-- needs: version.lua position.lua timer.lua seen.lua sketch.lua analytics.lua attribution.lua

local lead, seen, pending, stats, due_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local outbox, leases = KEYS[6], KEYS[7]
local kbase = shard_base(stats) -- "<prefix>:{<shard>}:"

-- The argument layout is include/funneld/step.h's: the fixed arguments at its FN_STEP_ARG_
-- indices, funnel i's at FA(i, an FN_STEP_FARG_ index), the ones after the last funnel at
-- FA(nfun, an FN_STEP_TAIL_ index).

local ACTIVE, CONVERTED, LOST = K.STATUS_ACTIVE, K.STATUS_CONVERTED, K.STATUS_LOST

local function refuse(what)
  error({err = 'ERR funneld step refused, nothing written: ' .. what})
end

-- v: a string, or nil or false (a field the lead lacks)
local function is_int(v) return v and #v <= 19 and string.find(v, '^%-?%d+$') end
-- the finite number v reads as, or nil
local function is_num(v)
  local x = tonumber(v)
  if x and x == x and x ~= math.huge and x ~= -math.huge then return x end
end
if not is_int(ARGV[K.STEP_ARG_NFUN]) then refuse('the funnel count is not an integer') end
local nfun = tonumber(ARGV[K.STEP_ARG_NFUN])
if nfun < 0 or #ARGV ~= K.STEP_ARGV_FIXED + K.STEP_ARGV_PER_FUNNEL * nfun + K.STEP_ARGV_TAIL then
  refuse(string.format('%d arguments for %d funnels', #ARGV, nfun))
end
-- ARGV index of argument j of funnel i (from 0)
local function FA(i, j) return K.STEP_ARGV_FIXED + K.STEP_ARGV_PER_FUNNEL * i + j end
local CAPS_AT, BOUND_AT = FA(nfun, K.STEP_TAIL_CAPS), FA(nfun, K.STEP_TAIL_BOUND)
local BREAKDOWN_AT = FA(nfun, K.STEP_TAIL_BREAKDOWN)
local function need_int(j)
  if not is_int(ARGV[j]) then refuse('ARGV[' .. j .. '] is not an integer') end
end
need_int(K.STEP_ARG_NOW); need_int(K.STEP_ARG_DEDUPE_TTL); need_int(K.STEP_ARG_TS); need_int(BOUND_AT)
local kind = ARGV[K.STEP_ARG_KIND]
if kind ~= 't' and kind ~= 'c' and kind ~= 'e' and kind ~= 'k' then refuse('unknown event kind') end
local value_n -- the event's value as a number, read once (nil: none)
if ARGV[K.STEP_ARG_VALUE] ~= '' then
  value_n = is_num(ARGV[K.STEP_ARG_VALUE])
  if not value_n then refuse('the value is not a finite number') end
end
if kind == 'k' and not is_int(ARGV[K.STEP_ARG_VALUE]) then refuse('the cost is not an integer') end
local nstages = {} -- per funnel (from 0), its stage count
for i = 0, nfun - 1 do
  local n = ARGV[FA(i, K.STEP_FARG_STAGES)]
  nstages[i] = is_int(n) and tonumber(n)
  if not string.find(ARGV[FA(i, K.STEP_FARG_NAME)], '^[^|]+$') or not nstages[i] or nstages[i] < 1 then
    refuse('funnel ' .. i .. ' has a malformed name or stage count')
  end
  local plan = ARGV[FA(i, K.STEP_FARG_PLAN)]
  if plan ~= '' and #plan ~= 2 * (nstages[i] + 3) then
    refuse('funnel ' .. i .. "'s plan does not match its stage count")
  end
end
-- Marketing analytics, per funnel (from 0): its attribution (attribution.lua, {} when off)
-- and cohorts flag ('' off, '1', 'r'); how many touches a lead keeps, and the event's route.
-- An empty word (no funnel named has either) costs nothing more.
-- Breakdowns, per funnel: {{dim, last, src ('channel', 'campaign', 'source' or 'prop'),
-- value (a prop's, of this event; nil when absent)}, ...}.
local attr_specs, cohorts, any_attr, touch_cap, route = {}, {}, false, 0, ''
local bds, NO_BD = {}, {}
local AT, touches_key -- attribution.lua's functions and the lead's touches, when needed
local mk = ARGV[FA(nfun, K.STEP_TAIL_MARKETING)]
if mk ~= '' then
  local cap, rest
  local nl = string.find(mk, '\n', 1, true)
  local values, vpos = nl and string.sub(mk, nl + 1) or '', 1
  -- the next props value ("<bytes>:<text>", "-1:" absent): the text, or nil
  local function next_value()
    local len, at_ = string.match(values, '^(%-?%d+):()', vpos)
    len = tonumber(len)
    if not len or len > K.STEP_BD_VALUE_MAX or at_ + len - 1 > #values then
      refuse('the breakdown values are malformed')
    end
    vpos = at_ + math.max(len, 0)
    if len < 0 then return nil end
    return string.sub(values, at_, at_ + len - 1)
  end
  cap, route, rest = string.match(nl and string.sub(mk, 1, nl - 1) or mk, '^(%d+),([^;]*)(.*)$')
  if not cap or #cap > 4 then refuse('the marketing word is malformed') end
  touch_cap = tonumber(cap)
  local i = 0
  for spec, co, bd in string.gmatch(rest, ';([^;/]*)/([^;/]*)/([^;]*)') do
    bds[i] = {}
    for item in string.gmatch(bd, '[^,]+') do
      local t, dim = string.sub(item, 1, 1), string.sub(item, 2)
      local b = {dim = dim, last = t == 'l', src = dim}
      if string.sub(dim, 1, 6) == 'props.' then b.src = 'prop'; b.value = next_value() end
      if (t ~= 'f' and t ~= 'l') or not string.find(dim, '^[%w_.-]+$') or
        (b.src ~= 'prop' and b.src ~= 'channel' and b.src ~= 'campaign' and b.src ~= 'source') then
        refuse('funnel ' .. i .. "'s breakdowns are malformed")
      end
      bds[i][#bds[i] + 1] = b
    end
    attr_specs[i] = {}
    if spec ~= '' then
      AT = AT or attribution()
      attr_specs[i] = AT.spec_parse(spec)
    end
    if not attr_specs[i] or (co ~= '' and co ~= '1' and co ~= 'r') then
      refuse('funnel ' .. i .. "'s marketing analytics are malformed")
    end
    if attr_specs[i].models then any_attr = true end
    cohorts[i] = co
    i = i + 1
  end
  if i ~= nfun then refuse('the marketing word names ' .. i .. ' funnels, not ' .. nfun) end
  if vpos ~= #values + 1 then refuse('the breakdown values are malformed') end
end
if (any_attr and kind == 't') or kind == 'e' then
  touches_key = kbase .. K.KEY_TOUCHES .. string.sub(lead, #kbase + #K.KEY_LEAD + 1)
end

local now, ttl = tonumber(ARGV[K.STEP_ARG_NOW]), tonumber(ARGV[K.STEP_ARG_DEDUPE_TTL])
local lead_id, event_id, ts = ARGV[K.STEP_ARG_LEAD_ID], ARGV[K.STEP_ARG_EVENT_ID], tonumber(ARGV[K.STEP_ARG_TS])
local token = ARGV[K.STEP_ARG_TOKEN]

-- A number as decimal text. string.format is dear in Redis's Lua (a sprintf each), and most
-- numbers a step writes are small (stages, touch counts): those are made from their digits.
local function I(n)
  if n >= 0 and n < 100 and n % 1 == 0 then
    if n < 10 then return string.char(48 + n) end
    local d = n % 10
    return string.char(48 + (n - d) / 10, 48 + d)
  end
  return string.format('%d', n)
end
local ts_s = I(ts) -- a number is formatted once per step

-- The lead's hash, read whole in one command: it brings the stored id for the collision
-- check too. A lead keeps a few dozen fields (a listpack, see deploy/), and a step asks for
-- most of them; an HMGET of thirty names looked each one up along the listpack, the ones the
-- lead lacks (merge marks, consent, a value) through all of it, and cost more than reading
-- every field once and indexing them here.
local function read_lead()
  local all, h = redis.call('HGETALL', lead), {}
  for j = 1, #all, 2 do h[all[j]] = all[j + 1] end
  return h
end
local cur = read_lead()
local stored_id, seen_until = cur[K.F_ID], cur[K.F_SEEN_EXPIRY]
-- The lead's version after this step (version.lua), written with its other fields. A timer
-- that fired first moved it too; moving it on from the hash as first read still changes it.
local function next_version() return version_next(cur[K.F_VERSION], now) end
if stored_id and stored_id ~= lead_id then return {'collision'} end
local merged_into, merge_pending, forgotten =
  cur[K.F_MERGED_INTO], cur[K.F_MERGE_PENDING], cur[K.F_FORGOTTEN]

if redis.call('ZSCORE', seen, event_id) then
  local r = redis.call('HGET', pending, event_id)
  if r then
    local sep = string.find(r, '|', 1, true)
    local owner = string.sub(r, 1, sep - 1)
    if owner == token or string.match(owner, '^[^:]*') ~= string.match(token, '^[^:]*') then
      local t = cjson.decode(string.sub(r, sep + 1))
      t[1] = 'dup-' .. t[1]
      return t
    end
  end
  return {'dup'}
end
-- An id that was merged into a person who was erased since starts over, but the events it
-- had applied at that person (noted "<event id>\0" in its seen set) stay duplicates.
if forgotten and redis.call('ZSCORE', seen, event_id .. '\0') then return {'dup'} end

-- An id merged into another lead (merge.lua) keeps only its link: its events count for the
-- lead it went into, which the daemon sends them to (README, "Identity merges"). An event
-- this id saw before the merge is still a duplicate (above). While the merge is pending, the
-- kept lead may not have this id's state yet: the daemon waits and asks again.
if merged_into then return {'redirect', merged_into, merge_pending or ''} end

-- The stale_after of stage k (from 0) in a timer spec's list ("<ms>,<ms>,..."), 0 if none.
local function stale_of(list, k)
  local j = 0
  for ms in string.gmatch(list, '%d+') do
    if j == k then return tonumber(ms) end
    j = j + 1
  end
  return 0
end

-- ---- a touchpoint's decisions, taken (and everything they read checked) before any write ----
local at, at_s, lead_value, set, moves
local old_value, new_value -- the lead's value before and after, as numbers (nil: none)
local nset -- #set, kept: put runs a dozen times a step
local function put(k, v) set[nset + 1] = k; set[nset + 2] = v; nset = nset + 2 end
-- A new lead's fields enter its listpack in the order first written, and Redis finds a field
-- by walking the listpack from its start: the fields most touches rewrite (the time, the last
-- touch, each funnel's touch count, activity and timers) go first (put), those set once or
-- on a move after them (put_cold; in the same HSET). For a lead that exists, order is moot.
local cold, ncold -- nil unless the lead is new
local function put_cold(k, v)
  if cold then cold[ncold + 1] = k; cold[ncold + 2] = v; ncold = ncold + 2
  else set[nset + 1] = k; set[nset + 2] = v; nset = nset + 2 end
end
local f_ch, f_cp, f_src, f_at, l_ch, l_cp, l_src, l_at
if kind == 't' then
  -- A late event never moves the lead backwards in time: "at" is the latest time seen.
  local prev_ts = tonumber(cur[K.F_TS])
  at, at_s = ts, ts_s
  if prev_ts and prev_ts > at then at, at_s = prev_ts, I(prev_ts) end

  local channel, campaign = ARGV[K.STEP_ARG_CHANNEL], ARGV[K.STEP_ARG_CAMPAIGN]
  local source, value = ARGV[K.STEP_ARG_SOURCE], ARGV[K.STEP_ARG_VALUE]
  -- Only what changes is written: a listpack hash (deploy/ keeps lead hashes so) finds
  -- and rewrites each field written in place, so an unchanged one costs as much as another.
  set, nset = {}, 0
  if not stored_id then cold, ncold = {}, 0 end
  if cur[K.F_LAST_TYPE] ~= ARGV[K.STEP_ARG_TYPE] then put(K.F_LAST_TYPE, ARGV[K.STEP_ARG_TYPE]) end
  if stored_id ~= lead_id then put_cold(K.F_ID, lead_id) end
  if cur[K.F_TS] ~= at_s then put(K.F_TS, at_s) end -- text: a stored "1e3" is written anew

  -- Attribution by event time: first touch is the earliest event, last touch the latest.
  f_ch, f_cp, f_src = cur[K.F_FIRST_CH], cur[K.F_FIRST_CP], cur[K.F_FIRST_SRC]
  f_at = tonumber(cur[K.F_FIRST_AT])
  l_ch, l_cp, l_src = cur[K.F_LAST_CH], cur[K.F_LAST_CP], cur[K.F_LAST_SRC]
  l_at = tonumber(cur[K.F_LAST_AT])
  if not f_at or ts < f_at then
    f_ch, f_cp, f_src, f_at = channel, campaign, source, ts
    put_cold(K.F_FIRST_CH, channel); put_cold(K.F_FIRST_CP, campaign)
    put_cold(K.F_FIRST_SRC, source); put_cold(K.F_FIRST_AT, ts_s)
  end
  if not l_at or ts >= l_at then
    if l_ch ~= channel then put(K.F_LAST_CH, channel) end
    if l_cp ~= campaign then put(K.F_LAST_CP, campaign) end
    if l_src ~= source then put(K.F_LAST_SRC, source) end
    if cur[K.F_LAST_AT] ~= ts_s then put(K.F_LAST_AT, ts_s) end
    l_ch, l_cp, l_src, l_at = channel, campaign, source, ts
  end
  local v = cur[K.F_VALUE]
  old_value = is_num(v) -- read once: the weighted pipeline below moves by it
  if v and v ~= '' and not old_value then
    refuse('lead field ' .. K.F_VALUE .. ' is not a number')
  end
  lead_value, new_value = v or '', old_value
  if value ~= '' then
    local vt = tonumber(cur[K.F_VALUE_AT])
    if not vt or ts >= vt then
      lead_value, new_value = value, value_n
      put_cold(K.F_VALUE, value); put_cold(K.F_VALUE_AT, ts_s)
    end
  end

  -- Per funnel: the move the plan gives the stored position, and the timer spec, parsed.
  moves = {}
  local conv = {}
  for i = 0, nfun - 1 do
    local f, plan = ARGV[FA(i, K.STEP_FARG_NAME)], ARGV[FA(i, K.STEP_FARG_PLAN)]
    local n = nstages[i]
    local n_s, _, x, k_s, e_s, b_s, old = pos_get(cur, f) -- position.lua
    if x and x ~= ACTIVE and x ~= CONVERTED and x ~= LOST then
      refuse('lead field ' .. f .. K.FF_POS .. ' or ' .. f .. K.FF_STATUS .. ' is malformed')
    end
    if x == ACTIVE and not is_int(k_s) then
      refuse('lead field ' .. f .. K.FF_POS .. ' or ' .. f .. K.FF_STAGE .. ' is malformed')
    end
    local k = tonumber(k_s)

    local slot
    if not x then slot = 0
    elseif x == ACTIVE then slot = 1 + k
    elseif x == CONVERTED then slot = n + 1
    else slot = n + 2 end

    local op, to = 'T', 0
    -- A stored position the plan does not cover (the funnel lost stages in a config change)
    -- is a touch.
    if plan ~= '' and not (x == ACTIVE and (k >= n or k < 0)) then
      op = string.sub(plan, 2 * slot + 1, 2 * slot + 1)
      to = string.byte(plan, 2 * slot + 2) - 48
      if not string.find('TEFBCL', op, 1, true) or to < 0 or to >= n then
        refuse('funnel ' .. f .. "'s plan is malformed")
      end
    end
    local m = {f = f, x = x, k = k, op = op, to = to, from = -1, in_stage = 0,
               touches = (tonumber(n_s) or 0) + 1, k_s = k_s, e_s = e_s, b_s = b_s,
               old = old and pos_old_fields(f)}
    if op ~= 'T' then
      -- when and since when the lead is in its stage: read (and checked) only for a move
      if x == ACTIVE then
        local entered, began = tonumber(e_s), tonumber(b_s)
        if not (entered and began) then
          refuse('lead field ' .. f .. K.FF_POS .. ' (its entered times) is malformed')
        end
        m.from, m.in_stage, m.began = k, at - entered, began
      end
      if m.from < 0 then m.began = at end
      m.cycle = at - m.began
      if op == 'C' then conv[#conv + 1] = m end
    end

    local spec = ARGV[FA(i, K.STEP_FARG_TIMERS)]
    if spec ~= '' then
      local stale_list, rules = string.match(spec, '^([%d,]*)(.*)$')
      local bad = rules ~= '' and
        (string.gsub((string.gsub(rules, '|A%d+:[^|]+', '')), '|U:[^|]+', '')) ~= ''
      if not stale_list or bad then
        refuse('funnel ' .. f .. "'s timer spec is malformed")
      end
      m.stale, m.rules = stale_list, rules -- read by stale_of, for the one stage it needs
    end
    moves[i] = m
  end

  -- The one counter a hostile stream could overflow (a cycle time can be millennia): checked
  -- here, so that HINCRBY never refuses it half-way through the writes.
  if #conv > 0 then
    local q = {}
    for j, m in ipairs(conv) do q[j] = m.f .. '|cyc_sum' end
    local sums = redis.call('HMGET', stats, unpack(q))
    for j, m in ipairs(conv) do
      local c = sums[j]
      if c and not is_int(c) then refuse('counter ' .. q[j] .. ' is not an integer') end
      if (tonumber(c) or 0) + m.cycle >= 9.2e18 then refuse('counter ' .. q[j] .. ' would overflow') end
    end
  end
end

-- Forget event ids older than the de-duplication window, a few at a time, on about one step in
-- PRUNE_ONE_IN (picked by the wall clock's millisecond, not by anything of the event, so no
-- id scheme can avoid it): the look-up was one command in twelve per event, for a set whose
-- old members are few, since the whole key expires a window or a little more (see
-- seen_expiry) after the lead's last event. An id past the window stays until one of the
-- lead's later steps prunes (eight on average) or the key expires; until then a copy of its
-- event still counts as a duplicate.
-- On a Redis Cluster, a slot being resharded moves its keys a few at a time. Redis checks
-- the declared keys (KEYS) before a script runs, and answers TRYAGAIN or ASK when one has
-- moved; a key the script finds on its own (the lead's other timer zsets, the analytics
-- flows and sketches, the lead's touches) it checks only when the script touches it, and an error there, after
-- a write, would leave half a step. So on a cluster every such key this step may write is
-- read first, before any write: one that moved fails the step with "nothing written", and
-- the store sends it again once the slot has moved (daemon/state/store.c).
if ARGV[K.STEP_ARG_CLUSTER] == '1' then -- touch_undeclared: a block, no closure per step
  local keys = {}
  for field, v in pairs(cur) do
    if string.find(field, K.FF_TIMER, 1, true) then
      local _, _, zkey = timer_parse(v, kbase)
      if zkey and zkey ~= '' and zkey ~= due_key then keys[zkey] = true end
    end
  end
  if kind == 't' then
    for i = 0, nfun - 1 do
      local m = moves[i]
      if m.op ~= 'T' then
        if m.from >= 0 then keys[kbase .. K.KEY_SKETCH .. m.f .. ':' .. I(m.from)] = true end
        if m.op == 'C' then keys[kbase .. K.KEY_SKETCH .. m.f .. ':conv'] = true end
        if m.op ~= 'L' then
          keys[kbase .. K.KEY_FLOW .. m.f .. ':' .. I(math.floor(at / 3600000))] = true
        end
        if attr_specs[i] and attr_specs[i].models and (m.from < 0 or m.op == 'C') then
          market_keys(kbase, m.f, at, keys) -- analytics.lua
        end
        if (bds[i] or NO_BD)[1] and m.op ~= 'L' then
          local hour = I(math.floor(at / 3600000))
          keys[kbase .. K.KEY_BFLOW .. m.f .. ':' .. hour] = true
          keys[kbase .. K.KEY_BFLOW_MIN .. m.f .. ':' .. hour] = true
        end
      end
    end
  end
  if kind == 'k' then
    for i = 0, nfun - 1 do market_keys(kbase, ARGV[FA(i, K.STEP_FARG_NAME)], ts, keys) end
  end
  if touches_key then keys[touches_key] = true end
  for k in pairs(keys) do redis.call('EXISTS', k) end
end

local PRUNE_ONE_IN = K.STEP_PRUNE_ONE_IN
if now % PRUNE_ONE_IN == 0 then seen_prune(seen, pending, now, ttl) end

-- The seen set must outlive the lead's last event by a window. Its expiry moves only when
-- less than that is left, and then an eighth of a window further: the lead's "sx" keeps the
-- time it was set to (by the daemon's clock), so the usual step sends no PEXPIRE. The set
-- lives up to 9/8 of a window past the lead's last event. The sampled steps (as for the
-- prune) move it anyway: a set that lost its TTL some other way (PERSIST, a restore without
-- TTLs, an eviction under a volatile-* policy followed by a new event) gets one again within
-- about eight of the lead's steps. seen_expiry: the new "sx", or nil when the expiry still
-- holds.
local SEEN_SLACK_DIV = 8
local seen_keep = ttl + math.floor(ttl / SEEN_SLACK_DIV)
local seen_expiry = nil
do
  local t = tonumber(seen_until)
  if not (t and t >= now + ttl and now % PRUNE_ONE_IN ~= 0) then seen_expiry = I(now + seen_keep) end
end

-- Records the event id (and moves the expiry when sx, from seen_expiry, says so) after every
-- other write of the step, so that a step cut short by a foreign key of another type (see the
-- top) is never taken for applied by a later copy of its event.
local function record_seen(sx)
  redis.call('ZADD', seen, seen_score(ARGV[K.STEP_ARG_NOW]), event_id)
  if sx then redis.call('PEXPIRE', seen, I(seen_keep)) end
end

local function remember(result, has_outputs)
  if has_outputs then
    redis.call('HSET', pending, event_id, token .. '|' .. cjson.encode(result))
    redis.call('PEXPIRE', pending, I(ttl))
  end
  return result
end

-- ---- retargeting timers ----
-- Each kind of event first fires, in due order, the lead's timers due at or before
-- fire_bound (see the top), by the "tn" it read: timer_fire_due (timer.lua) returns true when
-- it looked (and may have changed the lead's hash), and appends the triggers to fired.
local fired = {}

-- Removes the timer whose field value is v (nil: none; an empty zset key marks a stalled
-- timer that already fired, kept so that it fires once per stall), from the lead's hash and
-- from cur, which the rules below read it from. Returns true when a pending timer was
-- cancelled.
local function timer_cancel(f, reason, v)
  if not v then return false end
  local tf = f .. K.FF_TIMER .. reason
  redis.call('HDEL', lead, tf)
  cur[tf] = nil
  local _, tstage, zkey = timer_parse(v, kbase)
  if zkey == '' and reason == 'stalled' then
    redis.call('HINCRBY', stats, f .. '|stl|' .. tstage, '-1')
  end
  if not zkey or zkey == '' then return false end
  redis.call('ZREM', zkey, timer_member(lead, kbase, f, reason))
  return true
end

-- Cancels every timer of the lead (of funnel only_f when given); counts each as suppressed
-- for why when why is given.
local function timer_cancel_all(only_f, why)
  local all = redis.call('HGETALL', lead)
  for j = 1, #all, 2 do
    local f, reason = string.match(all[j], '^([^|]+)|t|(.+)$')
    if f and (not only_f or f == only_f) and timer_cancel(f, reason, all[j + 1]) and why then
      redis.call('HINCRBY', stats, f .. '|sup|' .. why, '1')
    end
  end
end

local min_due = nil
local lead_tn, tn_dirty = nil, false
local due_ref -- timer_zref of due_key, made once
-- Arms (or moves) a timer into this partition's zset; the field is written by the caller's
-- batched HSET through put. A timer pending in this zset that only moves later keeps its
-- member where it is (timer.lua: the field's due is the truth, the member's score a lower
-- bound; fire.lua moves the member when it meets it early), which spares the ZADD that most
-- touches would otherwise make: each re-arms its stage's stalled timer a little later.
-- tdue, tstage, zkey: the timer's field as timer_parse(v, kbase) reads it (nil: it has none),
-- parsed once by the caller, which looks at it first.
local function timer_arm(f, reason, due, stage, tdue, tstage, zkey)
  if not lead_tn or due < lead_tn then lead_tn, tn_dirty = due, true end
  local later = zkey == due_key and tonumber(tdue) <= due
  if zkey and zkey ~= '' and zkey ~= due_key then
    redis.call('ZREM', zkey, timer_member(lead, kbase, f, reason))
  end
  if zkey == '' and reason == 'stalled' then
    redis.call('HINCRBY', stats, f .. '|stl|' .. tstage, '-1')
  end
  local due_s = I(due)
  if not later then
    redis.call('ZADD', due_key, due_s, timer_member(lead, kbase, f, reason))
  end
  due_ref = due_ref or timer_zref(due_key, kbase)
  put(f .. K.FF_TIMER .. reason, due_s .. '|' .. I(stage) .. '|' .. due_ref .. '|' .. event_id)
  if not min_due or due < min_due then min_due = due end
end

local fire_bound = tonumber(ARGV[BOUND_AT])

if kind == 'e' then
  -- Timers already due by the erasure's clock fire first, as for any other event: the tick
  -- may fire them before this step runs, so firing them here too is what makes the outcome
  -- the same whatever the timing (and under replay). Every later one is cancelled.
  timer_fire_due(lead, kbase, fire_bound, cur[K.F_TIMERS_NEXT], ARGV[CAPS_AT], now, outbox,
    leases, stats, fired)
  timer_cancel_all(nil, 'erased')
  -- Erasure: the lead leaves every funnel's population; anonymous counters stay. Read before
  -- any write (nothing above changes a position); a malformed field is skipped, never a
  -- reason to refuse an erasure.
  local v = cur[K.F_VALUE]
  for i = 0, nfun - 1 do
    local f = ARGV[FA(i, K.STEP_FARG_NAME)]
    local _, _, x, k = pos_get(cur, f)
    if (x == ACTIVE or x == CONVERTED) and is_int(k) then
      redis.call('HINCRBY', stats, f .. '|p|' .. k, '-1')
      for _, dv in ipairs(bd_stored(lead, f, bds[i] or NO_BD)) do -- analytics.lua
        redis.call('HINCRBY', stats, f .. '|bp|' .. dv[1] .. '|' .. k .. '|' .. dv[2], '-1')
      end
      if x == ACTIVE and is_num(v) then
        redis.call('HINCRBYFLOAT', stats, f .. '|pv|' .. k, string.format('%.17g', -tonumber(v)))
      end
    end
  end
  -- The seen set stays (event ids only): a replay of the lead's earlier events after a crash
  -- must stay a duplicate, not bring the erased lead back and count it twice. So do the
  -- results of its earlier events not yet acknowledged by Kafka: a crash before they are
  -- must still emit them (with the lead id, which downstream erases on lead_erased); each
  -- goes when acknowledged, like any other, and the hash expires with the window.
  redis.call('DEL', lead, touches_key)
  local r = remember({'erased', ts_s, '', '', '', ''}, true)
  record_seen(seen_expiry)
  r[7] = fired[1] and fired or ''
  return r
end

-- A cost (SPEC §11) is spend, not something a lead did: lead_id names whoever spent (an ad
-- account), whose hash keeps only its id and whose seen set makes a copy a duplicate. It is
-- counted for each funnel it was sent for (those with attribution, daemon/state/step.c).
if kind == 'k' then
  local cents = ARGV[K.STEP_ARG_VALUE]
  for i = 0, nfun - 1 do
    market_add(stats, kbase, ARGV[FA(i, K.STEP_FARG_NAME)], '$', ARGV[K.STEP_ARG_CHANNEL],
      ARGV[K.STEP_ARG_CAMPAIGN], cents, ts, breakdown_max(ARGV[BREAKDOWN_AT], i))
  end
  local kset = {K.F_ID, lead_id, K.F_VERSION, next_version()}
  local sx = seen_expiry
  if sx then kset[5], kset[6] = K.F_SEEN_EXPIRY, sx end
  redis.call('HSET', lead, unpack(kset))
  local r = remember({'ok', ts_s, '', '', '', ''}, false)
  record_seen(sx)
  r[7] = ''
  return r
end

if kind == 'c' then
  timer_fire_due(lead, kbase, fire_bound, cur[K.F_TIMERS_NEXT], ARGV[CAPS_AT], now, outbox,
    leases, stats, fired)
  -- An opt-out cancels what is pending; an opt-in lets the lead's next activity arm again.
  if ARGV[K.STEP_ARG_MARKETING] == '0' then timer_cancel_all(nil, 'opted_out') end
  local cset = {K.F_ID, lead_id, K.F_CONSENT, ARGV[K.STEP_ARG_MARKETING], K.F_CONSENT_AT, ts_s,
    K.F_VERSION, next_version()}
  local sx = seen_expiry
  if sx then cset[9], cset[10] = K.F_SEEN_EXPIRY, sx end
  redis.call('HSET', lead, unpack(cset))
  local r = remember({'ok', ts_s, '', '', '', ''}, false)
  record_seen(sx)
  r[7] = fired[1] and fired or ''
  return r
end

-- cur was read at the top (nothing since touched the lead's hash). Usually nothing is due and
-- that one read serves; after firing, read again what changed (only timer fields can have).
lead_tn = tonumber(cur[K.F_TIMERS_NEXT])
if timer_fire_due(lead, kbase, fire_bound, lead_tn, ARGV[CAPS_AT], now, outbox, leases, stats,
  fired) then
  cur = read_lead()
  lead_tn = tonumber(cur[K.F_TIMERS_NEXT])
end

-- Weighted pipeline: the sum of the values of the leads active in each stage.
local oldv, newv = old_value or 0, new_value or 0
local function pv_add(f, k, delta)
  redis.call('HINCRBYFLOAT', stats, f .. '|pv|' .. I(k), string.format('%.17g', delta))
end

-- A touch is kept for attribution when a funnel it reaches credits touches (attribution.lua).
if any_attr and touch_cap > 0 then
  redis.call('ZADD', touches_key, ts_s, AT.touch_member(ARGV[K.STEP_ARG_CHANNEL],
    ARGV[K.STEP_ARG_CAMPAIGN], route, event_id))
  redis.call('ZREMRANGEBYRANK', touches_key, '0', I(-(touch_cap + 1)))
end

local transitions = {}
local old_fields -- the old layout's position fields this step replaces (position.lua)
for i = 0, nfun - 1 do
  local m = moves[i]
  local f, x, k, op, to, from = m.f, m.x, m.k, m.op, m.to, m.from
  -- the position's text after this touch (position.lua), written once below
  local px, pk, pe, pb = x, m.k_s, m.e_s, m.b_s

  if op ~= 'T' then
    local in_stage, cycle, credit = m.in_stage, m.cycle, nil
    if from < 0 then
      pb = at_s
      redis.call('HINCRBY', stats, f .. '|leads', '1')
      -- a new lead for the cost figures, by its first touch (analytics.lua)
      if attr_specs[i] and attr_specs[i].models then
        market_add(stats, kbase, f, 'n', f_ch or '', f_cp or '', '1', at,
          breakdown_max(ARGV[BREAKDOWN_AT], i))
      end
    end
    if from >= 0 then sketch_add(kbase, f, I(from), in_stage) end
    if x == ACTIVE and oldv ~= 0 then pv_add(f, from, -oldv) end

    if op == 'L' then
      px, pe = LOST, at_s
      redis.call('HINCRBY', stats, f .. '|p|' .. I(from), '-1')
      redis.call('HINCRBY', stats, f .. '|lost', '1')
      redis.call('HINCRBY', stats, f .. '|lostfrom|' .. I(from), '1')
      to = -1
    else
      -- Stages passed over count as entered and left now, so counts never grow down the
      -- funnel; a step back re-enters only the stage it lands on.
      local lo = from + 1
      if op == 'B' then lo = to end
      for s = lo, to do redis.call('HINCRBY', stats, f .. '|e|' .. I(s), '1') end
      -- Entry cohorts: the week the lead entered the funnel counts each stage it reached
      -- once (a step back and forward again reaches nothing new: "r" keeps the highest).
      local co = cohorts[i]
      if co and co ~= '' and op ~= 'B' then
        local clo = from + 1
        if co == 'r' then
          local h = tonumber(cur[f .. K.FF_HIGHEST]) or -1
          if h + 1 > clo then clo = h + 1 end
          if to > h then put_cold(f .. K.FF_HIGHEST, I(to)) end
        end
        local week = I(math.floor((m.began - K.STEP_WEEK_OFFSET_MS) / K.STEP_WEEK_MS))
        for s = clo, to do
          redis.call('HINCRBY', stats, f .. '|coh|' .. week .. '|' .. I(s), '1')
        end
      end
      flow_add(kbase, f, 'e', lo, to, at)
      if op ~= 'B' then flow_add(kbase, f, 'a', math.max(from, 0), to - 1, at) end
      if from >= 0 then redis.call('HINCRBY', stats, f .. '|p|' .. I(from), '-1') end
      redis.call('HINCRBY', stats, f .. '|p|' .. I(to), '1')
      pk, pe = I(to), at_s
      if op == 'C' then
        px = CONVERTED
        redis.call('HINCRBY', stats, f .. '|conv', '1')
        redis.call('HINCRBY', stats, f .. '|cyc_sum', I(cycle))
        local bmax = breakdown_max(ARGV[BREAKDOWN_AT], i) -- analytics.lua
        breakdown_add(stats, f, 'conv_ch', f_ch or '', bmax)
        breakdown_add(stats, f, 'conv_cp', f_cp or '', bmax)
        if any_attr and attr_specs[i].models then
          credit = AT.credit(stats, kbase, touches_key, f, at, attr_specs[i], lead_value, bmax)
        end
        sketch_add(kbase, f, 'conv', cycle)
        if lead_value ~= '' then
          redis.call('HINCRBYFLOAT', stats, f .. '|val_sum', lead_value)
          redis.call('HINCRBY', stats, f .. '|val_n', '1')
        end
      else
        px = ACTIVE
        if newv ~= 0 then pv_add(f, to, newv) end
      end
    end
    -- Breakdowns: the values are taken when the lead enters, then its moves count under them.
    if (bds[i] or NO_BD)[1] then
      local vals
      if from < 0 then
        vals = {}
        local bmax = breakdown_max(ARGV[BREAKDOWN_AT], i)
        for _, b in ipairs(bds[i]) do
          local raw = b.value
          if b.src == 'channel' then raw = b.last and l_ch or f_ch
          elseif b.src == 'campaign' then raw = b.last and l_cp or f_cp
          elseif b.src == 'source' then raw = b.last and l_src or f_src end
          -- "<f>|bd:<dim>|<value>" counts the leads that took the value (and marks it kept)
          local name = breakdown_name(stats, f, 'bd:' .. b.dim, raw or '', bmax)
          redis.call('HINCRBY', stats, f .. '|bd:' .. b.dim .. '|' .. name, '1')
          put_cold(f .. K.FF_BREAKDOWN .. b.dim, name)
          vals[#vals + 1] = {b.dim, name}
        end
      else
        vals = bd_stored(lead, f, bds[i])
      end
      local blo = from + 1
      if op == 'B' then blo = to end
      bd_move(stats, kbase, f, vals, from, to, blo, op ~= 'B' and op ~= 'L', at)
    end
    transitions[#transitions + 1] =
      {f, op, I(from), I(to), I(in_stage), I(cycle), I(m.touches), credit}
  elseif x == ACTIVE and newv ~= oldv then
    pv_add(f, k, newv - oldv)
  end
  -- A position without its times (a hash damaged by hand) is written with the lead's time.
  if px then pe = pe or at_s; pb = pb or pe end
  put(f .. K.FF_POS, pos_text(I(m.touches), at_s, px, pk, pe, pb))
  if m.old then
    old_fields = old_fields or {}
    for _, name in ipairs(m.old) do old_fields[#old_fields + 1] = name end
  end

  -- Data-driven attribution: the journey's move to this touch's channel (attribution.lua).
  if any_attr and attr_specs[i].markov and x ~= CONVERTED and x ~= LOST then
    AT.markov_touch(stats, lead, f, ARGV[K.STEP_ARG_CHANNEL], op,
      op == 'C' and AT.cents(lead_value) or 0, breakdown_max(ARGV[BREAKDOWN_AT], i), put)
  end

  -- Retargeting: a lead that converted or was lost has nothing left to nudge; otherwise
  -- this activity re-arms the stalled timer of its stage, and the rules do what spec says.
  if op == 'C' or op == 'L' then
    timer_cancel_all(f, nil)
  elseif m.stale then
    local nx, nk = x, k
    if op ~= 'T' then nx, nk = ACTIVE, to end
    local opted_out = cur[K.F_CONSENT] == '0'
    local tv = cur[f .. K.FF_TIMER .. 'stalled']
    local stale_ms = 0
    if nx == ACTIVE and not opted_out then stale_ms = stale_of(m.stale, nk) end
    if stale_ms > 0 then
      local due = at + stale_ms
      local tdue, tstage, zkey
      if tv then
        tdue, tstage, zkey = timer_parse(tv, kbase)
        tdue = tonumber(tdue)
      end
      -- A late event is activity in the past: it neither moves the due time nor the cause.
      if not (tdue and tdue >= due and tonumber(tstage) == nk) then
        timer_arm(f, 'stalled', due, nk, tdue, tstage, zkey)
      end
    elseif tv then
      timer_cancel(f, 'stalled', tv)
    end
    for act, within, name in string.gmatch(m.rules, '|([AU])(%d*):([^|]+)') do
      local rv = cur[f .. K.FF_TIMER .. name]
      if act == 'U' then
        timer_cancel(f, name, rv)
      elseif nx == CONVERTED or nx == LOST then
        -- touches after the end of the journey arm nothing
      elseif opted_out then
        redis.call('HINCRBY', stats, f .. '|sup|opted_out', '1')
      else
        local stage = -1
        if nx == ACTIVE then stage = nk end
        local tdue, tstage, zkey
        if rv then tdue, tstage, zkey = timer_parse(rv, kbase) end
        timer_arm(f, name, ts + tonumber(within), stage, tdue, tstage, zkey)
      end
    end
  end
end

if tn_dirty then put(K.F_TIMERS_NEXT, I(lead_tn)) end
put(K.F_VERSION, next_version())
local sx = seen_expiry
if sx then put(K.F_SEEN_EXPIRY, sx) end
if cold then
  for j = 1, ncold do set[nset + j] = cold[j] end
  nset = nset + ncold
end
if nset > 0 then redis.call('HSET', lead, unpack(set)) end
if old_fields then redis.call('HDEL', lead, unpack(old_fields)) end

-- The first and last touch go with transitions only (nothing else of the daemon's reads them).
local touch = ''
if transitions[1] then
  touch = {f_ch or '', f_cp or '', f_src or '', f_at == ts and ts_s or I(f_at or at),
    l_ch or '', l_cp or '', l_src or '', l_at == ts and ts_s or I(l_at or at)}
end
local result = {'ok', at_s, lead_value, touch, transitions[1] and transitions or '',
  min_due and I(min_due) or ''}
local r = remember(result, transitions[1] ~= nil)
record_seen(sx)
r[7] = fired[1] and fired or ''
return r
