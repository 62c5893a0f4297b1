-- merge.lua — the steps of an identity merge (SPEC §10; README, "Identity merges").
--
-- The two leads of a merge live in different hash slots (and, on a Redis Cluster, perhaps on
-- different masters), so a merge cannot be one script. It is a short sequence of these
-- steps, each atomic on one lead's slot and each idempotent, driven by the daemon
-- (daemon/core/merge_flow.c) for one identify event, the "cause":
--
--   root    the kept lead (lead_id) or, when it was itself merged, the lead it went into
--   detach  the absorbed lead (previous_id) is linked to the root ("mi", "mc" = the cause,
--           "mp" = pending), leaves its shard's people counters, and its timers leave their
--           zsets; its hash, now frozen, is returned as the snapshot the root absorbs
--   read    the root's hash, unless the cause is already applied there (its event id seen)
--   apply   the merged lead the daemon computed (merge.h) is written, if the root's hash is
--           still exactly as read: field writes, counter deltas, timer members, the ids it
--           now holds, the cause's outputs as its pending result, and the cause as seen
--   finish  the absorbed lead's "mp" goes: its events may now go to the root
--   ids, forget, unlink: an erasure of a person also deletes the ids merged into it, then
--           the set that names them
--
-- A kill between two steps leaves a state the next run of the same identify (a replay)
-- finishes: detach recognises its own cause and returns the same snapshot, apply is
-- de-duplicated by the cause's event id, finish is a no-op the second time. An event of
-- the absorbed id that meets "mp" waits until the merge is finished.
--
-- ARGV[1] names the step; the others are listed with each. Every number is a decimal string.
-- needs: version.lua position.lua timer.lua seen.lua

local op = ARGV[1]
local function I(n) return string.format('%d', n) end

local function collides(lead, id)
  local stored = redis.call('HGET', lead, K.F_ID)
  return stored and stored ~= id
end

-- root: KEYS[1] a lead hash, 2 its ids set, 3 its seen set, 4 its pending results; ARGV[2]
-- its id, 3 the identify's event id when this is its lead_id ('' when following a chain).
-- Returns {'done', its stored result or ''} when that identify was handled before (see
-- 'done'), {'moved', id it was merged into} or {'root', ids it holds, itself included}.
if op == 'root' then
  if collides(KEYS[1], ARGV[2]) then return {'collision'} end
  if ARGV[3] ~= '' and redis.call('ZSCORE', KEYS[3], ARGV[3] .. '\0') then
    return {'done', redis.call('HGET', KEYS[4], ARGV[3]) or ''}
  end
  local mi = redis.call('HGET', KEYS[1], K.F_MERGED_INTO)
  if mi then return {'moved', mi} end
  return {'root', I(redis.call('SCARD', KEYS[2]) + 1)}
end

-- detach: KEYS[1] the absorbed lead's hash, KEYS[2] its shard's counters, KEYS[3] its ids
-- set, KEYS[4] its seen set (the cause is recorded there too), KEYS[5], KEYS[6] its shard's
-- trigger outbox and leases, KEYS[7] its touches (attribution.lua); ARGV[2] its id, 3 the root's id, 4 the cause event id, 5 identity.max_ids, 6 the ids
-- the root holds, 7 the configured funnels, comma-separated, 8 now (ms), 9 the trigger caps,
-- 10 the time up to which its timers are due (they fire first, as before a step).
-- Returns {'snapshot', {field, value, ...}, {ids merged into it}, {trigger fired, ...},
-- {touch, score, ...}} (its touches stay, frozen like its hash, for a replay),
-- {'taken', the lead it went
-- into before, by which cause}, {'gone'} when this identify merged it once and the person
-- was erased since (the id started over), {'refused', why} or {'collision'}.
if op == 'detach' then
  local lead, stats, ids, seen = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
  local id, root, cause = ARGV[2], ARGV[3], ARGV[4]
  if collides(lead, id) then return {'collision'} end
  local mi, mc = unpack(redis.call('HMGET', lead, K.F_MERGED_INTO, K.F_MERGE_CAUSE))
  if mi and mc == cause then
    -- this very identify detached it before (a replay): the same snapshot again
    return {'snapshot', redis.call('HGETALL', lead), redis.call('SMEMBERS', ids), {},
      redis.call('ZRANGE', KEYS[7], '0', '-1', 'WITHSCORES')}
  end
  if redis.call('ZSCORE', seen, cause) then return {'gone'} end
  if mi then return {'taken', mi, mc or ''} end
  local n = redis.call('SCARD', ids) + 1
  local max, held = tonumber(ARGV[5]), tonumber(ARGV[6])
  if held + n > max then
    return {'refused', string.format(
      'identity.max_ids: the merged lead would hold %d ids, at most %d; nothing merged',
      held + n, max)}
  end
  local kbase = shard_base(stats)
  local fired = {}
  timer_fire_due(lead, kbase, tonumber(ARGV[10]), redis.call('HGET', lead, K.F_TIMERS_NEXT),
    ARGV[9], tonumber(ARGV[8]), KEYS[5], KEYS[6], stats, fired)
  local all = redis.call('HGETALL', lead)
  local h = {}
  for j = 1, #all, 2 do h[all[j]] = all[j + 1] end
  -- every timer zset it names is read before any write (a Redis Cluster slot being
  -- resharded fails the call here, with nothing written; see step.lua)
  local timers = {}
  for j = 1, #all, 2 do
    local f, reason = string.match(all[j], '^([^|]+)|t|(.+)$')
    if f then
      local _, tstage, zkey = timer_parse(all[j + 1], kbase)
      if zkey and zkey ~= '' then redis.call('EXISTS', zkey) end
      timers[#timers + 1] = {f, reason, tstage, zkey}
    end
  end
  -- The absorbed lead leaves the people it was counted among; the flows of what happened
  -- (entered, advanced, conversions' times) stay.
  local v = tonumber(h[K.F_VALUE]) or 0
  for f in string.gmatch(ARGV[7], '[^,]+') do
    local _, _, x, k = pos_get(h, f) -- position.lua
    if x then redis.call('HINCRBY', stats, f .. '|leads', '-1') end
    if (x == K.STATUS_ACTIVE or x == K.STATUS_CONVERTED) and k then
      redis.call('HINCRBY', stats, f .. '|p|' .. k, '-1')
      -- and the people of its breakdown values (analytics.lua)
      local pre = f .. K.FF_BREAKDOWN
      for j = 1, #all, 2 do
        if string.sub(all[j], 1, #pre) == pre then
          redis.call('HINCRBY', stats, f .. '|bp|' .. string.sub(all[j], #pre + 1) .. '|' .. k ..
            '|' .. all[j + 1], -1)
        end
      end
      if x == K.STATUS_ACTIVE and v ~= 0 then
        redis.call('HINCRBYFLOAT', stats, f .. '|pv|' .. k, string.format('%.17g', -v))
      end
    end
    if x == K.STATUS_CONVERTED then redis.call('HINCRBY', stats, f .. '|conv', '-1') end
  end
  -- Its timers leave their zsets (the kept lead arms what carries over); the fields stay in
  -- the frozen hash for the snapshot, so a member left behind would fire: one written before
  -- members named the key's tail (timer.lua) goes too.
  for _, t in ipairs(timers) do
    local f, reason, tstage, zkey = t[1], t[2], t[3], t[4]
    if zkey and zkey ~= '' then
      redis.call('ZREM', zkey, timer_member(lead, kbase, f, reason),
        lead .. '|' .. f .. '|' .. reason)
    elseif reason == 'stalled' and tstage then
      redis.call('HINCRBY', stats, f .. '|stl|' .. tstage, '-1')
    end
  end
  redis.call('HSET', lead, K.F_ID, id, K.F_MERGED_INTO, root, K.F_MERGE_CAUSE, cause,
    K.F_MERGE_PENDING, '1')
  version_move(lead, tonumber(ARGV[8])) -- every write moves it on (version.lua)
  redis.call('ZADD', seen, seen_score(ARGV[8]), cause)
  return {'snapshot', redis.call('HGETALL', lead), redis.call('SMEMBERS', ids), fired,
    redis.call('ZRANGE', KEYS[7], '0', '-1', 'WITHSCORES')}
end

-- The checks read and apply share: {'collision'}, {'dup', pending result or ''} when the
-- cause is applied at this lead already, {'moved', id} when this lead went into another
-- since, or nil. The cause is looked for before the lead's own link: a replay of an identify
-- whose root was merged away afterwards finds its merge applied here, where it was, and
-- does not absorb the same snapshot again further down the chain.
local function root_checks(lead, seen, pending, id, cause)
  if collides(lead, id) then return {'collision'} end
  if redis.call('ZSCORE', seen, cause) then
    return {'dup', redis.call('HGET', pending, cause) or ''}
  end
  local mi = redis.call('HGET', lead, K.F_MERGED_INTO)
  if mi then return {'moved', mi} end
  return nil
end

-- read: KEYS[1] the root's hash, 2 its seen set, 3 its pending results, 4 its shard's
-- counters, 5, 6 trigger outbox and leases; ARGV[2] its id, 3 the cause, 4 now (ms), 5 the
-- trigger caps, 6 the time up to which its timers are due (they fire first). Returns the
-- root checks' answer or {'lead', {field, value, ...}, {trigger fired, ...}}.
if op == 'read' then
  local r = root_checks(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[3])
  if r then return r end
  local fired = {}
  timer_fire_due(KEYS[1], shard_base(KEYS[4]), tonumber(ARGV[6]),
    redis.call('HGET', KEYS[1], K.F_TIMERS_NEXT), ARGV[5], tonumber(ARGV[4]),
    KEYS[5], KEYS[6], KEYS[4], fired)
  return {'lead', redis.call('HGETALL', KEYS[1]), fired}
end

-- apply: KEYS[1] the root's hash, 2 seen, 3 pending, 4 its shard's counters, 5 its ids set,
-- 6 the due zset new timers go to, 7 its touches; ARGV[2] its id, 3 the cause, 4 now (ms),
-- 5 how long the seen set and pending result are kept (ms), 6 the pending result, then
-- counted lists: the hash as read (field, value pairs), fields to set (pairs), fields to
-- delete, counters to add to (field, integer), counters to add to (field, decimal), ids it
-- now holds, timer members to remove (zset key, member), members to add to KEYS[6] (score,
-- member), the absorbed lead's touches (score, member); last, how many touches a lead keeps.
-- Returns the root checks' answer, {'changed'} when the hash is not as read, or {'ok'}.
if op == 'apply' then
  local lead, seen, pending, stats, ids, due = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
  local touches = KEYS[7]
  local r = root_checks(lead, seen, pending, ARGV[2], ARGV[3])
  if r then return r end
  local at = 7
  local function list(width)
    local n = tonumber(ARGV[at])
    local first = at + 1
    at = at + 1 + n * width
    return first, n
  end
  local rd, nrd = list(2)
  local cur = redis.call('HGETALL', lead)
  if #cur ~= 2 * nrd then return {'changed'} end
  local was = {}
  for j = 0, nrd - 1 do was[ARGV[rd + 2 * j]] = ARGV[rd + 2 * j + 1] end
  for j = 1, #cur, 2 do
    if was[cur[j]] ~= cur[j + 1] then return {'changed'} end
  end
  local hs, nhs = list(2)
  local hd, nhd = list(1)
  local hi, nhi = list(2)
  local hf, nhf = list(2)
  local sa, nsa = list(1)
  local zr, nzr = list(2)
  local za, nza = list(2)
  local ta, nta = list(2)
  local cap = tonumber(ARGV[at])
  at = at + 1
  if at ~= #ARGV + 1 or not cap then
    return redis.error_reply('ERR funneld merge refused, nothing written: ' .. #ARGV .. ' arguments')
  end
  for j = 0, nzr - 1 do redis.call('EXISTS', ARGV[zr + 2 * j]) end
  -- deletions first: a timer field dropped and armed again is deleted, then set
  if nhd > 0 then redis.call('HDEL', lead, unpack(ARGV, hd, hd + nhd - 1)) end
  if nhs > 0 then redis.call('HSET', lead, unpack(ARGV, hs, hs + 2 * nhs - 1)) end
  if nhd + nhs > 0 then version_move(lead, tonumber(ARGV[4])) end
  for j = 0, nhi - 1 do redis.call('HINCRBY', stats, ARGV[hi + 2 * j], ARGV[hi + 2 * j + 1]) end
  for j = 0, nhf - 1 do
    redis.call('HINCRBYFLOAT', stats, ARGV[hf + 2 * j], ARGV[hf + 2 * j + 1])
  end
  if nsa > 0 then redis.call('SADD', ids, unpack(ARGV, sa, sa + nsa - 1)) end
  for j = 0, nzr - 1 do redis.call('ZREM', ARGV[zr + 2 * j], ARGV[zr + 2 * j + 1]) end
  if nza > 0 then redis.call('ZADD', due, unpack(ARGV, za, za + 2 * nza - 1)) end
  if nta > 0 and cap > 0 then
    redis.call('ZADD', touches, unpack(ARGV, ta, ta + 2 * nta - 1))
    redis.call('ZREMRANGEBYRANK', touches, '0', I(-(cap + 1)))
  end
  local keep = tonumber(ARGV[5])
  if ARGV[6] ~= '' then
    redis.call('HSET', pending, ARGV[3], ARGV[6])
    redis.call('PEXPIRE', pending, I(keep))
  end
  redis.call('ZADD', seen, seen_score(ARGV[4]), ARGV[3])
  redis.call('PEXPIRE', seen, I(keep + math.floor(keep / 8)))
  return {'ok'}
end

-- done: KEYS[1] the identify's lead_id's seen set, 2 its pending results; ARGV[2] the cause,
-- 3 now (ms), 4 how long they are kept (ms), 5 the result to store ('' for none). The last
-- step of every identify that is not refused (merged, repeat, loop): a replay stops at
-- 'root', with the same outcome whatever happened to the leads since (an erasure). The mark
-- is the cause's id and a NUL, which no event id has: when lead_id is the root, its seen set
-- also holds the cause itself, recorded by 'apply' before the merge was finished.
if op == 'done' then
  local keep = tonumber(ARGV[4])
  redis.call('ZADD', KEYS[1], seen_score(ARGV[3]), ARGV[2] .. '\0')
  redis.call('PEXPIRE', KEYS[1], I(keep + math.floor(keep / 8)))
  if ARGV[5] ~= '' then
    redis.call('HSET', KEYS[2], ARGV[2], ARGV[5])
    redis.call('PEXPIRE', KEYS[2], I(keep))
  end
  return {'ok'}
end

-- finish: KEYS[1] the absorbed lead's hash; ARGV[2] the cause. Returns {'ok'}.
if op == 'finish' then
  if redis.call('HGET', KEYS[1], K.F_MERGE_CAUSE) == ARGV[2] then
    redis.call('HDEL', KEYS[1], K.F_MERGE_PENDING)
    version_move(KEYS[1], 0) -- it exists (its cause was just read)
  end
  return {'ok'}
end

-- ids: KEYS[1] a lead's hash, 2 its ids set; ARGV[2] its id. Returns {'moved', id} when it
-- was merged into another lead, else {'ids', {id, ...}}: the ids an erasure also deletes.
if op == 'ids' then
  if collides(KEYS[1], ARGV[2]) then return {'collision'} end
  local mi = redis.call('HGET', KEYS[1], K.F_MERGED_INTO)
  if mi then return {'moved', mi} end
  return {'ids', redis.call('SMEMBERS', KEYS[2])}
end

-- forget: KEYS[1] the hash of an id merged into an erased lead, 2 its ids set, 3 its seen
-- set, 4 its touches; ARGV[2] the id, 3 the erased lead's, 4 the erase event's id, 5 now (ms). The id
-- starts over as a new lead; its seen set stays, with the erasure in it (a replay of its
-- old events, or of the erasure, stays a duplicate). Returns {'ok'}.
if op == 'forget' then
  local h = redis.call('HMGET', KEYS[1], K.F_ID, K.F_MERGED_INTO)
  if h[1] == ARGV[2] and h[2] then
    -- the id's events applied at the person are in its seen set as "<id>\0" (the daemon
    -- notes them there); "fg" tells step.lua to look for those too
    redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
    redis.call('HSET', KEYS[1], K.F_ID, ARGV[2], K.F_FORGOTTEN, '1')
    redis.call('ZADD', KEYS[3], seen_score(ARGV[5]), ARGV[4])
  end
  return {'ok'}
end

-- unlink: KEYS[1] an erased person's ids set. Once each id in it is forgotten, the set that
-- names them (personal ids) goes too, before the person's own erase step; a replay finds it
-- empty and goes straight to that step. Returns {'ok'}.
if op == 'unlink' then
  redis.call('DEL', KEYS[1])
  return {'ok'}
end

return redis.error_reply('ERR funneld merge: unknown step ' .. tostring(op))
