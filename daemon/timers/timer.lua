-- timer.lua — retargeting timers, shared by step.lua and fire.lua (prepended to each at
-- build time, so both scripts fire a timer the same way). Lead-hash field names are
-- written K.F_ID and the like: the build puts in their text from daemon/state/keys.def.
-- needs: version.lua position.lua
--
-- A pending timer is a zset member "<lead>|<funnel>|<reason>" (score = due time) in the
-- zset of the partition whose event armed it, plus the lead hash field "<funnel>|t|<reason>"
-- = "<due>|<stage>|<zset>|<cause event id>"; both change together. <lead> is the lead key's
-- tail after "<prefix>:{<shard>}:lead:" (its hash in hex; the zset is in the lead's shard):
-- the whole key, as written before and still read (timer_member_parse), repeated the key
-- prefix in every member, the larger part of a member's memory. <zset> is the zset key's
-- tail after "<prefix>:{<shard>}:due:" (the lead's own prefix and shard), "<topic>:<partition>":
-- the whole key made the field longer than Redis keeps in a compact listpack
-- (hash-max-listpack-value, 64 bytes by default), and a lead hash with one such field is a
-- hash table of about twice the memory; a whole key, as written before, still reads. A
-- stalled timer that fired stays as a marker with an empty <zset>, so that it fires once per
-- stall: only activity newer than the stall re-arms it. The lead field "tn" is a lower bound
-- of the lead's pending due times, so a step can tell cheaply whether one is already due. The
-- member's score is a lower bound too: a step that moves a pending timer later in the same
-- zset writes the field only, and fire.lua, meeting the member before the field's due, puts
-- it at that due then. The field's due is when the timer fires.
--
-- Firing claims the timer (the caller removed the member atomically in the same script),
-- checks consent and the funnel's frequency cap, and writes the trigger to the shard's
-- outbox with a lease; the daemon deletes it once Kafka acknowledged it.

local LEASE_MS = 60000

-- The shard's key prefix "<prefix>:{<shard>}:", from its counters' key.
local function shard_base(stats_key)
  return string.sub(stats_key, 1, -#K.KEY_STATS - 1) -- strip "stats"
end

-- The zset member of timer (f, reason) of lead (a key of shard base kbase).
local function timer_member(lead, kbase, f, reason)
  return string.sub(lead, #kbase + #K.KEY_LEAD + 1) .. '|' .. f .. '|' .. reason
end

-- The lead key, funnel and reason of member, of a zset of shard base kbase (nil when
-- malformed). A lead key's tail is hex: a member naming the whole key (it has a ':') was
-- written before members named the tail.
local function timer_member_parse(member, kbase)
  local lead, f, reason = string.match(member, '^(.*)|([^|]+)|([^|]+)$')
  if lead and not string.find(lead, ':', 1, true) then lead = kbase .. K.KEY_LEAD .. lead end
  return lead, f, reason
end

-- Returns due, stage, zset key, cause of a timer field. base (shard_base) makes the zset key
-- whole; without it the zset part is as stored (enough to tell pending from fired, '').
local function timer_parse(v, base)
  local due, stage, z, cause = string.match(v, '^(%-?%d+)|(%-?%d+)|([^|]*)|(.*)$')
  if base and z and z ~= '' and string.sub(z, 1, #base) ~= base then
    z = base .. K.KEY_DUE .. z
  end
  return due, stage, z, cause
end

-- What a timer field stores of the zset key due_key (the tail timer_parse makes whole again).
local function timer_zref(due_key, base)
  return string.sub(due_key, #base + #K.KEY_DUE + 1)
end

-- "name=max,per;..." for the funnels that have a trigger_cap.
local function caps_parse(s)
  local caps = {}
  for name, mx, per in string.gmatch(s, '([^=;]+)=(%d+),(%d+)') do
    caps[name] = {tonumber(mx), tonumber(per)}
  end
  return caps
end

-- The lead fields firing needs, for funnel f, from h (field name -> value).
local function timer_fields_of(h, f)
  local _, a, x, k = pos_get(h, f) -- position.lua
  return {id = h[K.F_ID], c = h[K.F_CONSENT], x = x, k = k, lch = h[K.F_LAST_CH],
          lty = h[K.F_LAST_TYPE], lat = h[K.F_LAST_AT], v = h[K.F_VALUE], cap = h[f .. K.FF_CAP],
          a = a}
end

-- The same, read from hash lead. A lead written before 2026-12-07 keeps its position in the
-- old fields (position.lua), asked for only when "|p" is absent: an HMGET walks the whole
-- listpack for each field the hash lacks.
local function timer_fields(lead, f)
  local names = {K.F_ID, K.F_CONSENT, K.F_LAST_CH, K.F_LAST_TYPE, K.F_LAST_AT, K.F_VALUE,
                 f .. K.FF_CAP, f .. K.FF_POS}
  local v, h = redis.call('HMGET', lead, unpack(names)), {}
  for j = 1, #names do h[names[j]] = v[j] or nil end
  if not h[f .. K.FF_POS] then
    local old = {f .. K.FF_TOUCHES, f .. K.FF_ACTIVE, f .. K.FF_STATUS, f .. K.FF_STAGE}
    local ov = redis.call('HMGET', lead, unpack(old))
    for j = 1, #old do h[old[j]] = ov[j] or nil end
  end
  return timer_fields_of(h, f)
end

-- Fires the timer (f, reason) of lead, due at score, whose field value is tv; its member is
-- already out of its zset. h is timer_fields(lead, f). Returns the outbox entry, or nil and
-- the suppression reason ('opted_out', 'capped'), or nil when it no longer applies.
local function timer_fire(lead, f, reason, score, tv, h, caps, wall, outbox, leases, stats)
  local tdue, tstage, _, cause = timer_parse(tv)
  local tf = f .. K.FF_TIMER .. reason
  local x = h.x
  local stalls = reason == 'stalled' and h.id and x == K.STATUS_ACTIVE and h.k == tstage
  if stalls then
    -- The marker also counts the lead as stalled in its stage ("<f>|stl|<k>") until its
    -- next activity, for the bottleneck events' "stalled".
    redis.call('HSET', lead, tf, tdue .. '|' .. tstage .. '||' .. cause)
    redis.call('HINCRBY', stats, f .. '|stl|' .. tstage, '1')
  else
    redis.call('HDEL', lead, tf)
  end
  if not h.id or x == K.STATUS_CONVERTED or x == K.STATUS_LOST then return nil end
  if reason == 'stalled' and not stalls then return nil end
  if h.c == '0' then
    redis.call('HINCRBY', stats, f .. '|sup|opted_out', '1')
    return nil, 'opted_out'
  end
  local cap = caps[f]
  if cap then
    -- Due times of the lead's earlier triggers in this funnel, within the cap's span.
    local kept = {}
    for t in string.gmatch(h.cap or '', '[^,]+') do
      -- (an entry that is not a number is dropped: never an error half-way through a step)
      if (tonumber(t) or -math.huge) > score - cap[2] then kept[#kept + 1] = t end
    end
    local full = #kept >= cap[1]
    if not full then kept[#kept + 1] = string.format('%d', score) end
    redis.call('HSET', lead, f .. K.FF_CAP, table.concat(kept, ','))
    h.cap = table.concat(kept, ',')
    if full then
      redis.call('HINCRBY', stats, f .. '|sup|capped', '1')
      return nil, 'capped'
    end
  end
  local stage = tstage
  if reason ~= 'stalled' then
    stage = '-1'
    if x == K.STATUS_ACTIVE then stage = h.k end
  end
  local key = lead .. '|' .. f .. '|' .. reason .. '|' .. cause
  local e = cjson.encode({key, h.id, f, reason, stage, string.format('%d', score), h.a or '',
    h.lch or '', h.lty or '', h.lat or '', h.v or '', cause})
  redis.call('HSET', outbox, key, e)
  redis.call('ZADD', leases, string.format('%d', wall + LEASE_MS), key)
  redis.call('HINCRBY', stats, f .. '|trig|' .. reason, '1')
  return e
end

-- Sets the lead's "tn" to the earliest due time of its pending timers. Called whenever timers
-- fire, by the tick or by a step, so that the lead's state afterwards is the same whichever
-- of the two fired them (cancelling leaves "tn" low; the next firing corrects it). Every
-- firing ends here, so here a firing moves the lead's version on (version.lua; now_ms: the
-- caller's clock).
local function timer_set_tn(lead, now_ms)
  local all = redis.call('HGETALL', lead)
  if #all == 0 then return end
  local tn, v = nil, nil
  for j = 1, #all, 2 do
    if all[j] == K.F_VERSION then
      v = all[j + 1]
    elseif string.find(all[j], K.FF_TIMER, 1, true) then
      local d, _, zkey = timer_parse(all[j + 1])
      if zkey and zkey ~= '' and (not tn or tonumber(d) < tn) then tn = tonumber(d) end
    end
  end
  -- the version as version_move would write it, from the hash already read
  local w = version_next(v, now_ms)
  if tn then
    redis.call('HSET', lead, K.F_VERSION, w, K.F_TIMERS_NEXT, string.format('%d', tn))
  else
    redis.call('HSET', lead, K.F_VERSION, w)
    redis.call('HDEL', lead, K.F_TIMERS_NEXT)
  end
end

-- Fires, in due order, the timers of lead due at or before bound, as fire.lua would have (the
-- step and the merge steps call it before they read the lead, so that whether the clock's
-- tick or the lead's next event or merge gets there first, the same triggers come out);
-- tn is the lead's "tn" field as read; caps_text the trigger caps, parsed only when a timer
-- is due (most steps find none). Appends the outbox entries to fired. Returns true when it
-- looked (and may have changed the lead's hash).
local function timer_fire_due(lead, kbase, bound, tn, caps_text, now, outbox, leases, stats,
                              fired)
  tn = tonumber(tn)
  if not tn or tn > bound then return false end
  local caps = caps_parse(caps_text)
  local all = redis.call('HGETALL', lead)
  local h = {}
  for j = 1, #all, 2 do h[all[j]] = all[j + 1] end
  local due = {}
  for j = 1, #all, 2 do
    local f, reason = string.match(all[j], '^([^|]+)|t|(.+)$')
    if f then
      local tdue, _, tzkey = timer_parse(all[j + 1], kbase)
      if tzkey and tzkey ~= '' and tonumber(tdue) <= bound then
        due[#due + 1] = {tonumber(tdue), all[j], f, reason, tzkey, all[j + 1]}
      end
    end
  end
  table.sort(due, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
  for _, t in ipairs(due) do
    local d, f, reason, tzkey, tv = t[1], t[3], t[4], t[5], t[6]
    redis.call('ZREM', tzkey, timer_member(lead, kbase, f, reason))
    local fh = timer_fields_of(h, f)
    local e = timer_fire(lead, f, reason, d, tv, fh, caps, now, outbox, leases, stats)
    h[f .. K.FF_CAP] = fh.cap
    if e then fired[#fired + 1] = e end
  end
  timer_set_tn(lead, now)
  return true
end
