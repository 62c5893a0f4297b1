-- analytics.lua — the aggregates funnel analytics read (SPEC §4 bottlenecks and snapshots),
-- updated by step.lua in the same atomic call that moves the lead, so they are exact under
-- replay (a duplicate never reaches them). Prepended to step.lua at build time, after
-- sketch.lua. Every key is in the lead's shard ("<prefix>:{<shard>}:", taken from the
-- counters key), so one step stays in one Redis Cluster slot; readers sum over the shards.
--
--   <prefix>:{s}:flow:<funnel>:<hour>  hash, hour = floor(event time / 1 h): "e|<k>" leads
--     that entered stage k and "a|<k>" leads that advanced from k to a later stage in that
--     hour, and the same per minute of the hour as "e|<k>|<minute>", "a|<k>|<minute>".
--     Kept FLOW_RETENTION_MS (32 days) after the hour ends: baselines are at most 30 days.
--     The expiry is absolute, by Redis's clock, so the flows of events older than that are
--     never stored; the evaluation's catch-up skips such ticks (FN_WINDOW_RETENTION_MS in
--     include/funneld/window.h is this value, and must stay equal to it).
--   <prefix>:{s}:sk:<funnel>:<k>      hash, quantile sketch of time spent in stage k by the
--     leads that left it (field = sketch bucket, see sketch.lua), and ...:sk:<funnel>:conv of
--     time to convert (cycle time).

local FLOW_RETENTION_MS = 32 * 86400000

local function analytics_base(stats_key)
  return string.sub(stats_key, 1, -6) -- strip "stats"
end

-- Counts `what` ("e" or "a") for stages lo..hi of funnel f at event time t.
local function flow_add(base, f, what, lo, hi, t)
  if hi < lo then return end
  local hour = math.floor(t / 3600000)
  local minute = math.floor((t % 3600000) / 60000)
  local key = base .. 'flow:' .. f .. ':' .. string.format('%d', hour)
  local created = false
  for s = lo, hi do
    local field = what .. '|' .. string.format('%d', s)
    if redis.call('HINCRBY', key, field, 1) == 1 then created = true end
    redis.call('HINCRBY', key, field .. '|' .. string.format('%d', minute), 1)
  end
  -- The expiry depends on the hour only, so it is set when a field is created (which is the
  -- case whenever the key is), not on every call: one command less for most steps.
  if created then
    redis.call('PEXPIREAT', key, string.format('%d', (hour + 1) * 3600000 + FLOW_RETENTION_MS))
  end
end

local function sketch_add(base, f, which, ms)
  if ms < 0 then ms = 0 end
  redis.call('HINCRBY', base .. 'sk:' .. f .. ':' .. which, string.format('%d', sketch_bucket(ms)), 1)
end
