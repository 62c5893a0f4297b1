-- analytics.lua — the aggregates funnel analytics read (SPEC §4 bottlenecks and snapshots),
-- updated by step.lua in the same atomic call that moves the lead, so they are exact under
-- replay (a duplicate never reaches them). Prepended to step.lua at build time, after
-- sketch.lua. Every key is in the lead's shard ("<prefix>:{<shard>}:", taken from the
-- counters key), so one step stays in one Redis Cluster slot; readers sum over the shards.
-- needs: sketch.lua
--
--   <prefix>:{s}:flow:<funnel>:<hour>  hash, hour = floor(event time / 1 h): "e|<k>" leads
--     that entered stage k and "a|<k>" leads that advanced from k to a later stage in that
--     hour, and the same per minute of the hour as "e|<k>|<minute>", "a|<k>|<minute>".
--     Kept FLOW_RETENTION_MS (32 days) after the hour ends: baselines are at most 30 days.
--     The expiry is absolute, by Redis's clock, so the flows of events older than that are
--     never stored; the evaluation's catch-up skips such ticks (FN_WINDOW_RETENTION_MS in
--     include/funneld/window.h is this value, and must stay equal to it).
--   <prefix>:{s}:stats fields "<funnel>|conv_ch|<value>" and "<funnel>|conv_cp|<value>":
--     conversions by first-touch channel and campaign, at most the funnel's max_breakdown
--     values by name per shard (breakdown_add), the rest under "(other)".
--   <prefix>:{s}:mkt:<funnel>:<hour> and ...:mkm:<funnel>:<hour>  hashes of the cost figures
--     (SPEC §11) by event time, for funnels with attribution: "<what><side>|<name>" per hour
--     in mkt, and with "|<minute>" appended per minute of the hour in mkm (a window's edges
--     read the minutes of two hours at most, its middle whole hours). what: '$' cost and 'r'
--     credited revenue in cents, 'n' new leads (by first touch), 'v' conversions credited by
--     the funnel's first model in millionths; side: 'c' channel, 'p' campaign. All time, the
--     stats hash keeps "<funnel>|$c|<name>", "|$p|", "|nc|", "|np|" (credited conversions and
--     revenue are the model's own counters, attribution.lua). Kept as long as the flows.
--   Breakdowns (SPEC §11): a lead's value of each of the funnel's dimensions is fixed when it
--     enters the funnel (lead field "<funnel>|d|<dimension>", bounded by max_breakdown like
--     every breakdown); its moves count under that value: stats "<funnel>|bp|<dim>|<k>|<value>"
--     population and "<funnel>|be|<dim>|<k>|<value>" entered (all time), and per hour
--     <prefix>:{s}:bfl:<funnel>:<hour> "e|<k>|<dim>|<value>", "a|<k>|<dim>|<value>" entered
--     and advanced, per minute ...:bfm:<funnel>:<hour> the same with "|<minute>" after <k>
--     (the value last: it may hold any character). Kept as long as the flows.
--   <prefix>:{s}:sk:<funnel>:<k>      hash, quantile sketch of time spent in stage k by the
--     leads that left it (field = sketch bucket, see sketch.lua), and ...:sk:<funnel>:conv of
--     time to convert (cycle time).

local FLOW_RETENTION_MS = 32 * 86400000

-- Counts `what` ("e" or "a") for stages lo..hi of funnel f at event time t.
local function flow_add(base, f, what, lo, hi, t)
  if hi < lo then return end
  local hour = math.floor(t / 3600000)
  local minute = math.floor((t % 3600000) / 60000)
  local key = base .. K.KEY_FLOW .. f .. ':' .. string.format('%d', hour)
  local created = false
  for s = lo, hi do
    local field = what .. '|' .. string.format('%d', s)
    if redis.call('HINCRBY', key, field, '1') == 1 then created = true end
    redis.call('HINCRBY', key, field .. '|' .. string.format('%d', minute), '1')
  end
  -- The expiry depends on the hour only, so it is set when a field is created (which is the
  -- case whenever the key is), not on every call: one command less for most steps.
  if created then
    redis.call('PEXPIREAT', key, string.format('%d', (hour + 1) * 3600000 + FLOW_RETENTION_MS))
  end
end

local function sketch_add(base, f, which, ms)
  if ms < 0 then ms = 0 end
  redis.call('HINCRBY', base .. K.KEY_SKETCH .. f .. ':' .. which,
    string.format('%d', sketch_bucket(ms)), '1')
end

-- Breakdown cardinality is bounded (SPEC §11, max_breakdown): a value is counted by name if it
-- already is, or while fewer than max values are (per shard: the step sees its shard only;
-- the reader keeps the max largest sums over the shards, analytics.c); any other is summed
-- under "(other)". "<f>|<dim>#" counts the values kept by name. Sums stay exact; memory and
-- snapshots stay bounded whatever the input's values (5,000 campaigns outgrew a Kafka message).
local BREAKDOWN_OTHER = '(other)'
-- The name value is counted under in dimension dim: itself, or "(other)" once max are kept.
local function breakdown_name(stats, f, dim, value, max)
  -- HGET, not HEXISTS: one command less in the ACL
  if not redis.call('HGET', stats, f .. '|' .. dim .. '|' .. value) then
    local kept = f .. '|' .. dim .. '#'
    if (tonumber(redis.call('HGET', stats, kept)) or 0) >= max then
      return BREAKDOWN_OTHER
    elseif value ~= BREAKDOWN_OTHER then
      redis.call('HINCRBY', stats, kept, '1')
    end
  end
  return value
end

-- breakdown_name for counters not named "<f>|<dim>|<value>" themselves (a Markov move names
-- two channels): a value newly kept by name gets that field as its mark, so the next call
-- finds it (without one, every call would look new and use up the bound).
local function breakdown_mark(stats, f, dim, value, max)
  local field = f .. '|' .. dim .. '|' .. value
  if redis.call('HGET', stats, field) then return value end
  local name = breakdown_name(stats, f, dim, value, max)
  if name == value then redis.call('HSET', stats, field, '1') end
  return name
end

local function breakdown_add(stats, f, dim, value, max)
  redis.call('HINCRBY', stats, f .. '|' .. dim .. '|' .. breakdown_name(stats, f, dim, value, max), '1')
end

-- The i-th (from 0) of the comma-separated max_breakdown values the step was sent, one per
-- funnel in the order of its funnel arguments (100, the default, when absent or below 1).
local function breakdown_max(list, i)
  local n = 0
  for v in string.gmatch(list or '', '[^,]+') do
    if n == i then
      local max = tonumber(v)
      if max and max >= 1 then return max end
      return 100
    end
    n = n + 1
  end
  return 100
end

-- Adds n (a positive integer, as text) to field fld of funnel f's cost figures of event
-- time t, in the hour's and the minute's hash (see the top). HINCRBYFLOAT of integers: exact
-- below 2^53, and never an overflow error half-way through a step. As in flow_add, a key's
-- expiry is set when a field is created (the sum is then n), which it is whenever the key is.
local function market_bucket(base, f, fld, n, t)
  local hour = string.format('%d', math.floor(t / 3600000))
  local minute = string.format('%d', math.floor((t % 3600000) / 60000))
  local expiry = string.format('%d', (math.floor(t / 3600000) + 1) * 3600000 + FLOW_RETENTION_MS)
  local hkey = base .. K.KEY_MARKET .. f .. ':' .. hour
  local mkey = base .. K.KEY_MARKET_MIN .. f .. ':' .. hour
  local x = tonumber(n)
  if tonumber(redis.call('HINCRBYFLOAT', hkey, fld, n)) == x then
    redis.call('PEXPIREAT', hkey, expiry)
  end
  if tonumber(redis.call('HINCRBYFLOAT', mkey, fld .. '|' .. minute, n)) == x then
    redis.call('PEXPIREAT', mkey, expiry)
  end
end

-- Records what ('$' a cost in cents, 'n' a new lead) for channel ch and campaign cp in funnel
-- f at event time t, over all time and in its hour and minute, each name bounded by bmax.
local function market_add(stats, base, f, what, ch, cp, n, t, bmax)
  for _, d in ipairs({{what .. 'c', ch}, {what .. 'p', cp}}) do
    local fld = d[1] .. '|' .. breakdown_name(stats, f, d[1], d[2], bmax)
    redis.call('HINCRBYFLOAT', stats, f .. '|' .. fld, n)
    market_bucket(base, f, fld, n, t)
  end
end

-- The hour keys of the cost figures at event time t (for a cluster's check of the keys a
-- step may write before it writes, step.lua's touch_undeclared).
local function market_keys(base, f, t, keys)
  local hour = string.format('%d', math.floor(t / 3600000))
  keys[base .. K.KEY_MARKET .. f .. ':' .. hour] = true
  keys[base .. K.KEY_MARKET_MIN .. f .. ':' .. hour] = true
end

-- Counts `what` ("e" or "a") of stages lo..hi under breakdown value v of dimension dim of
-- funnel f at event time t, in the hour's and the minute's hash.
local function bd_flow(base, f, what, lo, hi, t, dim, v)
  if hi < lo then return end
  local hour = string.format('%d', math.floor(t / 3600000))
  local minute = string.format('%d', math.floor((t % 3600000) / 60000))
  local expiry = string.format('%d', (math.floor(t / 3600000) + 1) * 3600000 + FLOW_RETENTION_MS)
  local hkey = base .. K.KEY_BFLOW .. f .. ':' .. hour
  local mkey = base .. K.KEY_BFLOW_MIN .. f .. ':' .. hour
  local hnew, mnew = false, false -- the expiry is set when a field is created (flow_add)
  for s = lo, hi do
    local k = string.format('%d', s)
    if redis.call('HINCRBY', hkey, what .. '|' .. k .. '|' .. dim .. '|' .. v, '1') == 1 then
      hnew = true
    end
    if redis.call('HINCRBY', mkey, what .. '|' .. k .. '|' .. minute .. '|' .. dim .. '|' .. v, '1') == 1 then
      mnew = true
    end
  end
  if hnew then redis.call('PEXPIREAT', hkey, expiry) end
  if mnew then redis.call('PEXPIREAT', mkey, expiry) end
end

-- A move of a lead of funnel f whose breakdown values are vals ({{dim, value}, ...}): out of
-- stage from (-1: none), into stage to (-1: none, it was lost), entering stages lo..to, and
-- advancing from max(from, 0)..to - 1 when advance, at event time t.
local function bd_move(stats, base, f, vals, from, to, lo, advance, t)
  for _, dv in ipairs(vals) do
    local dim, v = dv[1], dv[2]
    local pre = f .. '|bp|' .. dim .. '|'
    if from >= 0 then redis.call('HINCRBY', stats, pre .. string.format('%d', from) .. '|' .. v, '-1') end
    if to >= 0 then
      redis.call('HINCRBY', stats, pre .. string.format('%d', to) .. '|' .. v, '1')
      for s = lo, to do
        redis.call('HINCRBY', stats, f .. '|be|' .. dim .. '|' .. string.format('%d', s) .. '|' .. v, '1')
      end
      bd_flow(base, f, 'e', lo, to, t, dim, v)
      if advance then bd_flow(base, f, 'a', math.max(from, 0), to - 1, t, dim, v) end
    end
  end
end

-- The breakdown values a lead of funnel f has stored, for dimensions bds ({{dim, ...}, ...}):
-- {{dim, value}, ...}, leaving out a dimension it has none of (it entered before the
-- dimension was configured: it is counted under none).
local function bd_stored(lead, f, bds)
  if #bds == 0 then return {} end
  local names = {}
  for j, b in ipairs(bds) do names[j] = f .. K.FF_BREAKDOWN .. b.dim end
  local got = redis.call('HMGET', lead, unpack(names))
  local vals = {}
  for j, b in ipairs(bds) do
    if got[j] then vals[#vals + 1] = {b.dim, got[j]} end
  end
  return vals
end
