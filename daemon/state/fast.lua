-- fast.lua — the fast path's apply: a touchpoint whose step the daemon decided itself
-- (daemon/state/fast.c, which reads the lead first) is written here, whole, or not at all.
-- It is the second function of the step's library (cmake/embed.cmake), so it runs beside
-- the preludes the step runs with, and on a Redis Cluster its keys share the lead's slot.
--   KEYS[1] the lead hash   KEYS[2] its seen set   KEYS[3] the due zset of the event's
--   partition in the lead's shard   KEYS[4] the lead's pending results
-- ARGV: 1 the lead's version as read ('' none), 2 the event id, 3 its seen score, 4 the seen
--   set's new expiry in ms ('' to leave it), 5 the daemon's clock in ms on a pruning call
--   (K.STEP_PRUNE_ONE_IN, step.h), '' on others, 6 the de-duplication window in ms, 7 the
--   number n of timers to add to KEYS[3], then n (score, member) pairs, then the lead's
--   fields to set (name, value pairs; the version after this write among them).
-- Returns 'ok', or 'stale' and writes nothing when the hash's version is not the one read
-- (something wrote it since: a timer fired, a merge, another daemon's step) or the event
-- is in the seen set: the daemon then sends the event's whole step (step.lua), which
-- decides again from what is there. The writes are step.lua's for such an event, in its
-- order: timers, the lead, the prune, the seen set.
-- needs: (none of its own: it runs beside the step's preludes, seen.lua's seen_prune among them)

local lead, seen, due = KEYS[1], KEYS[2], KEYS[3]
if (redis.call('HGET', lead, K.F_VERSION) or '') ~= ARGV[1] or
    redis.call('ZSCORE', seen, ARGV[2]) then
  return 'stale'
end
local at = 8
for _ = 1, tonumber(ARGV[7]) do
  redis.call('ZADD', due, ARGV[at], ARGV[at + 1])
  at = at + 2
end
redis.call('HSET', lead, unpack(ARGV, at))
if ARGV[5] ~= '' then seen_prune(seen, KEYS[4], tonumber(ARGV[5]), tonumber(ARGV[6])) end
redis.call('ZADD', seen, ARGV[3], ARGV[2])
if ARGV[4] ~= '' then redis.call('PEXPIRE', seen, ARGV[4]) end
return 'ok'
