-- read.lua — one shard's part of a funnel's analytics, read in one call (funnelctl and the
-- daemon's snapshot/bottleneck evaluation sum the replies of every shard). Read-only.
-- needs:
--
-- KEYS[1] the shard's counters "<prefix>:{<shard>}:stats" (the other keys of the shard are
--   named from it, as analytics.lua writes them)
-- ARGV: 1 funnel 2 number of stages 3 window plan 4 baseline plan: space-separated buckets,
--   "h<hour>" (whole hour, hour = floor(ms / 1 h)) or "m<minute>" (minute = floor(ms / 1 min))
--   5 '0': leave the sketches out (empty), for a bottleneck judgment of a past tick; else '1'
--   (absent: '1', as sent before ARGV[5] existed) 6 '1': read the cost figures over the
--   window too (absent or else: not) 7 '1': read the breakdowns' flows over the window and
--   the baseline too
-- Returns {counters: flat {name, value, ...} of this funnel's fields without "<funnel>|",
--   sketches: {stage 0 flat {bucket, count, ...}, ..., stage n-1, conversion},
--   window flows: flat {"e|<k>" or "a|<k>", sum, ...}, baseline flows: the same,
--   window cost figures: flat {"<what><side>|<name>", sum, ...} (analytics.lua; {} unless
--   asked for), window breakdown flows: flat {"<e|a>|<k>|<dim>|<value>", sum, ...} (the
--   same; {} unless asked for), baseline breakdown flows: the same}

local stats = KEYS[1]
local base = string.sub(stats, 1, -#K.KEY_STATS - 1)
local f, n = ARGV[1], tonumber(ARGV[2])
local pre = f .. '|'

local counters = {}
local all = redis.call('HGETALL', stats)
for j = 1, #all, 2 do
  if string.sub(all[j], 1, #pre) == pre then
    counters[#counters + 1] = string.sub(all[j], #pre + 1)
    counters[#counters + 1] = all[j + 1]
  end
end

local sketches = {}
local want_sketches = ARGV[5] ~= '0'
for k = 0, n do
  local which = k < n and string.format('%d', k) or 'conv'
  local sk = base .. K.KEY_SKETCH .. f .. ':' .. which
  sketches[#sketches + 1] = want_sketches and redis.call('HGETALL', sk) or {}
end

local function flows(plan)
  local sums = {}
  for res, idx in string.gmatch(plan, '([hm])(%d+)') do
    idx = tonumber(idx)
    local hour = idx
    if res == 'm' then hour = math.floor(idx / 60) end
    local key = base .. 'flow:' .. f .. ':' .. string.format('%d', hour)
    local fields = {}
    for k = 0, n - 1 do
      for _, w in ipairs({'e', 'a'}) do
        local fld = w .. '|' .. k
        if res == 'm' then fld = fld .. '|' .. string.format('%d', idx % 60) end
        fields[#fields + 1] = fld
      end
    end
    local v = redis.call('HMGET', key, unpack(fields))
    for j = 1, #fields do
      if v[j] then
        local name = string.match(fields[j], '^([ea]|%d+)')
        sums[name] = (sums[name] or 0) + tonumber(v[j])
      end
    end
  end
  local out = {}
  for name, sum in pairs(sums) do
    out[#out + 1] = name
    out[#out + 1] = string.format('%d', sum)
  end
  return out
end

-- Sums over the plan's buckets of one kind of hash pair (analytics.lua): whole hours from
-- the hour hash (hkey), the minutes at the edges from the minute hash of their hour (mkey,
-- read once per hour); split(field) of a minute hash gives the field's name without the
-- minute, and the minute, or nil.
local function sum_buckets(plan, hkey, mkey, split)
  local sums, minutes = {}, {}
  local function add(name, v)
    sums[name] = (sums[name] or 0) + (tonumber(v) or 0)
  end
  for res, idx in string.gmatch(plan, '([hm])(%d+)') do
    idx = tonumber(idx)
    if res == 'h' then
      local all = redis.call('HGETALL', base .. hkey .. f .. ':' .. string.format('%d', idx))
      for j = 1, #all, 2 do add(all[j], all[j + 1]) end
    else
      local hour = string.format('%d', math.floor(idx / 60))
      if not minutes[hour] then
        minutes[hour] = {}
        local all = redis.call('HGETALL', base .. mkey .. f .. ':' .. hour)
        for j = 1, #all, 2 do
          local name, m = split(all[j])
          if name then
            minutes[hour][m] = minutes[hour][m] or {}
            minutes[hour][m][#minutes[hour][m] + 1] = {name, all[j + 1]}
          end
        end
      end
      for _, nv in ipairs(minutes[hour][string.format('%d', idx % 60)] or {}) do add(nv[1], nv[2]) end
    end
  end
  local out = {}
  for name, sum in pairs(sums) do
    out[#out + 1] = name
    out[#out + 1] = string.format('%.17g', sum)
  end
  return out
end

-- cost figures: "<what><side>|<name>|<minute>" in the minute hash
local function market_split(field)
  return string.match(field, '^(.*)|(%d+)$')
end

-- breakdown flows: "<e|a>|<k>|<minute>|<dim>|<value>" in the minute hash
local function bflow_split(field)
  local wk, m, rest = string.match(field, '^([ea]|%d+)|(%d+)|(.*)$')
  if not wk then return nil end
  return wk .. '|' .. rest, m
end

local function market(plan)
  return sum_buckets(plan, K.KEY_MARKET, K.KEY_MARKET_MIN, market_split)
end

local bd = ARGV[7] == '1'
return {counters, sketches, flows(ARGV[3]), flows(ARGV[4]),
  ARGV[6] == '1' and market(ARGV[3]) or {},
  bd and sum_buckets(ARGV[3], K.KEY_BFLOW, K.KEY_BFLOW_MIN, bflow_split) or {},
  bd and sum_buckets(ARGV[4], K.KEY_BFLOW, K.KEY_BFLOW_MIN, bflow_split) or {}}
