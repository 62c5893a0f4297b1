-- seen.lua — a lead's seen set (daemon/state/README.md), shared by step.lua and merge.lua.
-- An id's score is the time it was recorded, in whole seconds (FN_STEP_SEEN_UNIT_MS, step.h):
-- a listpack keeps such a score in 32 bits where a millisecond epoch took 64, and the window
-- (dedupe_ttl) is days, so a second more or less of it matters nothing. Scores of
-- K.STEP_SEEN_LEGACY_MIN or more are milliseconds, written before; seen_old finds those too.
-- needs:

-- The score of an id recorded at ms, a time in milliseconds as decimal text (as the daemon
-- sends it, checked to be an integer): the text without its last three digits. Text, not a
-- number: Redis writes out a number passed to redis.call with snprintf, dearer than this.
local function seen_score(ms)
  if #ms > 3 and string.byte(ms, 1) ~= 45 then return string.sub(ms, 1, -4) end -- 45: '-'
  return '0'
end

-- Up to `max` ids of the set recorded before now_ms - window_ms (numbers). An id is never
-- taken early: a score is the second it was recorded in, so an id stays up to a second past
-- its window. legacy: look for millisecond scores too (the sets written before hold them
-- until pruned; a second look-up, so the caller asks on fewer steps).
local function seen_old(seen, now_ms, window_ms, max, legacy)
  local cut = string.format('%d', now_ms - window_ms)
  local old = redis.call('ZRANGEBYSCORE', seen, '-inf', '(' .. seen_score(cut), 'LIMIT', '0',
    string.format('%d', max))
  if legacy and #old < max then
    local ms = redis.call('ZRANGEBYSCORE', seen, string.format('%d', K.STEP_SEEN_LEGACY_MIN),
      '(' .. cut, 'LIMIT', '0', string.format('%d', max - #old))
    for j = 1, #ms do old[#old + 1] = ms[j] end
  end
  return old
end

-- The prune of a sampled step (step.lua's PRUNE_ONE_IN; the fast path's too): up to
-- K.STEP_PRUNE_MAX ids past the window leave the set, and their pending results the lead's
-- pending hash; on one such step in K.STEP_PRUNE_ONE_IN, millisecond scores of before too.
local function seen_prune(seen, pending, now_ms, window_ms)
  local old = seen_old(seen, now_ms, window_ms, K.STEP_PRUNE_MAX,
    now_ms % (K.STEP_PRUNE_ONE_IN * K.STEP_PRUNE_ONE_IN) == 0)
  if #old > 0 then
    redis.call('ZREM', seen, unpack(old))
    redis.call('HDEL', pending, unpack(old))
  end
end
