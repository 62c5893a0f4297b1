-- step.lua — the one atomic, idempotent Redis step per touchpoint event (SPEC §3, §6).
--
-- The daemon decides in C what the event means for every position the lead could be in
-- (the "plan", see include/funneld/rules.h); this script reads the lead's real position,
-- applies the plan's entry for it, and updates the lead, the de-duplication record and the
-- per-funnel counters in one go. Redis runs a script atomically, so a crash can never leave
-- half an event applied, and the de-duplication check makes a replay change nothing.
--
-- All keys share the hash tag of the lead's shard, so the script runs on Redis Cluster too:
--   KEYS[1] lead hash      KEYS[2] seen event ids (zset, score = wall ms when processed)
--   KEYS[3] pending outputs (hash event_id -> result not yet acknowledged by Kafka)
--   KEYS[4] shard counters (hash, fields "<funnel>|<counter>[|<stage>]")
-- ARGV: 1 now_ms 2 dedupe_ttl_ms 3 lead_id 4 event_id 5 ts_ms 6 kind (t touch, c consent,
--   e erase) 7 channel 8 type 9 campaign 10 source 11 value 12 marketing ('1','0','')
--   13 the sender's token "<instance>:<message>" (instance random per process, message a
--   counter), 14 number of funnels, then per funnel: name, number of stages, plan.
-- Returns {status, at, value, {first ch, campaign, source, at, last ch, campaign, source, at},
--   {{funnel, kind, from, to, time_in_stage_ms, cycle_ms, touches}, ...}}
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
-- in milliseconds into "1.79e+12", which HINCRBY and the daemon would reject.

local lead, seen, pending, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local lead_id, event_id, ts, kind = ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local token = ARGV[13]
local nfun = tonumber(ARGV[14])

local function I(n) return string.format('%d', n) end

local stored_id = redis.call('HGET', lead, 'id')
if stored_id and stored_id ~= lead_id then return {'collision'} end

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

-- Forget event ids older than the de-duplication window, a few at a time.
local old = redis.call('ZRANGEBYSCORE', seen, '-inf', '(' .. I(now - ttl), 'LIMIT', 0, 64)
if #old > 0 then
  redis.call('ZREM', seen, unpack(old))
  redis.call('HDEL', pending, unpack(old))
end

local function remember(result, has_outputs)
  redis.call('ZADD', seen, I(now), event_id)
  redis.call('PEXPIRE', seen, I(ttl))
  if has_outputs then
    redis.call('HSET', pending, event_id, token .. '|' .. cjson.encode(result))
    redis.call('PEXPIRE', pending, I(ttl))
  end
  return result
end

if kind == 'e' then
  -- Erasure: the lead leaves every funnel's population; anonymous counters stay.
  for i = 0, nfun - 1 do
    local f = ARGV[15 + 3 * i]
    local st = redis.call('HMGET', lead, f .. '|x', f .. '|k')
    if st[1] == 'a' or st[1] == 'c' then
      redis.call('HINCRBY', stats, f .. '|p|' .. st[2], -1)
    end
  end
  -- The seen set stays (event ids only): a replay of the lead's earlier events after a crash
  -- must stay a duplicate, not bring the erased lead back and count it twice.
  redis.call('DEL', lead, pending)
  return remember({'erased', I(ts), '', {}, {}}, true)
end

if kind == 'c' then
  redis.call('HSET', lead, 'id', lead_id, 'c', ARGV[12])
  return remember({'ok', I(ts), '', {}, {}}, false)
end

-- Read everything this event may need in one round trip inside Redis.
local fields = {'ts', 'v', 'vt', 'f.ch', 'f.cp', 'f.src', 'f.at', 'l.ch', 'l.cp', 'l.src', 'l.at'}
for i = 0, nfun - 1 do
  local f = ARGV[15 + 3 * i]
  for _, s in ipairs({'|x', '|k', '|e', '|b', '|n'}) do fields[#fields + 1] = f .. s end
end
local cur = redis.call('HMGET', lead, unpack(fields))

-- A late event never moves the lead backwards in time: "at" is the latest time seen.
local prev_ts = tonumber(cur[1])
local at = ts
if prev_ts and prev_ts > at then at = prev_ts end

local channel, campaign, source, value = ARGV[7], ARGV[9], ARGV[10], ARGV[11]
local set = {'id', lead_id, 'ts', I(at), 'l.ty', ARGV[8]}
local function put(k, v) set[#set + 1] = k; set[#set + 1] = v end

-- Attribution by event time: first touch is the earliest event, last touch the latest.
local f_ch, f_cp, f_src, f_at = cur[4], cur[5], cur[6], tonumber(cur[7])
local l_ch, l_cp, l_src, l_at = cur[8], cur[9], cur[10], tonumber(cur[11])
if not f_at or ts < f_at then
  f_ch, f_cp, f_src, f_at = channel, campaign, source, ts
  put('f.ch', channel); put('f.cp', campaign); put('f.src', source); put('f.at', I(ts))
end
if not l_at or ts >= l_at then
  l_ch, l_cp, l_src, l_at = channel, campaign, source, ts
  put('l.ch', channel); put('l.cp', campaign); put('l.src', source); put('l.at', I(ts))
end
local lead_value = cur[2] or ''
local vt = tonumber(cur[3])
if value ~= '' and (not vt or ts >= vt) then
  lead_value = value
  put('v', value); put('vt', I(ts))
end

local transitions = {}
for i = 0, nfun - 1 do
  local f, n, plan = ARGV[15 + 3 * i], tonumber(ARGV[16 + 3 * i]), ARGV[17 + 3 * i]
  local base = 11 + 5 * i
  local x, k = cur[base + 1], tonumber(cur[base + 2])
  local entered, began = tonumber(cur[base + 3]), tonumber(cur[base + 4])
  local touches = (tonumber(cur[base + 5]) or 0) + 1
  put(f .. '|n', I(touches))
  put(f .. '|a', I(at))

  local slot
  if not x then slot = 0
  elseif x == 'a' then slot = 1 + k
  elseif x == 'c' then slot = n + 1
  else slot = n + 2 end

  local op, to = 'T', 0
  if plan ~= '' then
    op = string.sub(plan, 2 * slot + 1, 2 * slot + 1)
    to = string.byte(plan, 2 * slot + 2) - 48
  end

  if op ~= 'T' then
    local from = -1
    if x == 'a' then from = k end
    local in_stage = 0
    if from >= 0 then in_stage = at - entered end
    if from < 0 then
      began = at
      put(f .. '|b', I(at))
      redis.call('HINCRBY', stats, f .. '|leads', 1)
    end
    local cycle = at - began

    if op == 'L' then
      put(f .. '|x', 'l')
      put(f .. '|e', I(at))
      redis.call('HINCRBY', stats, f .. '|p|' .. I(from), -1)
      redis.call('HINCRBY', stats, f .. '|lost', 1)
      redis.call('HINCRBY', stats, f .. '|lostfrom|' .. I(from), 1)
      to = -1
    else
      -- Stages passed over count as entered and left now, so counts never grow down the
      -- funnel; a step back re-enters only the stage it lands on.
      local lo = from + 1
      if op == 'B' then lo = to end
      for s = lo, to do redis.call('HINCRBY', stats, f .. '|e|' .. I(s), 1) end
      if from >= 0 then redis.call('HINCRBY', stats, f .. '|p|' .. I(from), -1) end
      redis.call('HINCRBY', stats, f .. '|p|' .. I(to), 1)
      put(f .. '|k', I(to))
      put(f .. '|e', I(at))
      if op == 'C' then
        put(f .. '|x', 'c')
        redis.call('HINCRBY', stats, f .. '|conv', 1)
        redis.call('HINCRBY', stats, f .. '|cyc_sum', I(cycle))
        redis.call('HINCRBY', stats, f .. '|conv_ch|' .. (f_ch or ''), 1)
        if lead_value ~= '' then
          redis.call('HINCRBYFLOAT', stats, f .. '|val_sum', lead_value)
          redis.call('HINCRBY', stats, f .. '|val_n', 1)
        end
      else
        put(f .. '|x', 'a')
      end
    end
    transitions[#transitions + 1] =
      {f, op, I(from), I(to), I(in_stage), I(cycle), I(touches)}
  end
end

redis.call('HSET', lead, unpack(set))

local result = {'ok', I(at), lead_value,
  {f_ch or '', f_cp or '', f_src or '', I(f_at or at), l_ch or '', l_cp or '', l_src or '',
   I(l_at or at)},
  transitions}
return remember(result, #transitions > 0)
