-- fire.lua — claims the retargeting timers that are due in one zset and hands them out
-- through the outbox, atomically (SPEC §4 retargeting, §5 time, §6 at-least-once). The
-- functions it uses are in timer.lua, prepended at build time.
-- needs: version.lua position.lua timer.lua
--
-- A timer is claimed by removing it from its zset inside this script, so however many daemons
-- run it, each timer fires once. A fired trigger is in the shard's outbox before it is
-- returned: the daemon deletes it only when Kafka acknowledged it, and an entry whose lease
-- ran out (its daemon died or is stuck) is handed out again, with the same content and so
-- the same id (the daemon computes ids from funnel, lead id, reason and cause event).
--
-- KEYS[1] timers of one partition in one shard (zset)   KEYS[2] the shard's outbox (hash:
--   entry key -> entry)   KEYS[3] the shard's outbox leases (zset: score lease end, wall ms)
--   KEYS[4] shard counters
-- ARGV: 1 now by the partition's clock 2 wall now 3 most timers to fire 4 '1' to only hand
--   out entries whose lease ran out, '2' to only renew the leases of the entries ARGV[6..]
--   (those the calling daemon still holds) 5 trigger caps ("name=max,per;...")
-- Returns {next due time in KEYS[1] or '', {entry, ...}, capped, opted_out}; an entry is the
-- JSON text of {entry key, lead id, funnel, reason, stage, due, last activity in the funnel,
-- last touch channel, type, at, value, cause event id}, all strings (cjson would print epoch
-- milliseconds as 1.79e+12).

local due_key, outbox, leases, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, wall = tonumber(ARGV[1]), tonumber(ARGV[2])
local limit = ARGV[3] -- a count, as the daemon wrote it: redis.call takes text (see step.lua)
local caps = caps_parse(ARGV[5])
local kbase = shard_base(stats)
local function I(n) return string.format('%d', n) end

if ARGV[4] == '2' then
  -- Only existing leases: an entry cleared meanwhile must not get one back.
  for i = 6, #ARGV do redis.call('ZADD', leases, 'XX', I(wall + LEASE_MS), ARGV[i]) end
  return {'', {}, 0, 0}
end

-- The due timers, read before any write: on a Redis Cluster whose slot is being resharded,
-- a lead hash that already moved fails the call here, with nothing written (the lead hashes
-- are not declared keys; see touch_undeclared in daemon/state/step.lua).
local due = {}
if ARGV[4] ~= '1' then
  due = redis.call('ZRANGEBYSCORE', due_key, '-inf', I(now), 'WITHSCORES', 'LIMIT', '0', limit)
  for j = 1, #due, 2 do
    local lead = timer_member_parse(due[j], kbase)
    if lead then redis.call('EXISTS', lead) end
  end
end

local out = {}
for _, k in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', I(wall), 'LIMIT', '0', limit)) do
  local e = redis.call('HGET', outbox, k)
  if e then
    redis.call('ZADD', leases, I(wall + LEASE_MS), k)
    out[#out + 1] = e
  else
    redis.call('ZREM', leases, k)
  end
end
if ARGV[4] == '1' then return {'', out, 0, 0} end

-- Each member met is claimed, or moved to its field's later due (a step moved the timer
-- without touching the zset; timer.lua), or, without a matching field (an erased lead's
-- left-over), only removed. The claimed ones fire in order of their fields' due times, as
-- they would had every step moved its member. A member that names the whole lead key
-- (written before members named its tail) is moved under the tail's name; while both are
-- in the zset (a step armed the timer anew since), the timer is claimed once.
local n_capped, n_opted_out = 0, 0
local fire, claimed = {}, {}
for j = 1, #due, 2 do
  local member, score = due[j], tonumber(due[j + 1])
  local lead, f, reason = timer_member_parse(member, kbase)
  local tv = redis.call('HGET', lead, f .. K.FF_TIMER .. reason)
  local tdue, _, tzkey = nil, nil, nil
  if tv then tdue, _, tzkey = timer_parse(tv, kbase) end
  tdue = tonumber(tdue)
  local name = timer_member(lead, kbase, f, reason)
  if tdue and tzkey == due_key and tdue > now then
    if name ~= member then redis.call('ZREM', due_key, member) end
    redis.call('ZADD', due_key, I(tdue), name)
  else
    redis.call('ZREM', due_key, member)
    if tdue and tzkey == due_key and tdue >= score and not claimed[name] then
      claimed[name] = true
      fire[#fire + 1] = {tdue, name, lead, f, reason, tv}
    end
  end
end
table.sort(fire, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
for _, t in ipairs(fire) do
  local lead, f, reason, tv = t[3], t[4], t[5], t[6]
  local e, why = timer_fire(lead, f, reason, t[1], tv, timer_fields(lead, f), caps, wall,
    outbox, leases, stats)
  timer_set_tn(lead, wall)
  if e then out[#out + 1] = e end
  if why == 'capped' then n_capped = n_capped + 1 end
  if why == 'opted_out' then n_opted_out = n_opted_out + 1 end
end

local nxt = redis.call('ZRANGE', due_key, '0', '0', 'WITHSCORES')
return {nxt[2] or '', out, n_capped, n_opted_out}
