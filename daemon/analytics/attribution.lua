-- attribution.lua — multi-touch attribution (SPEC §11), a prelude piece of step.lua.
--
-- A lead's recent touches live in one zset per lead (K.KEY_TOUCHES, in its shard): score the
-- event time, member the touch's channel, campaign, the funnel the event was routed to (empty:
-- every funnel) and 8 hex digits of its event id's SHA-1, so two touches alike in all else
-- stay two. The zset keeps the step's touch cap of the most recent (by event time), the
-- largest max_touches of the funnels with attribution. At a conversion the touches of the
-- funnel within its lookback, at most its max_touches, share one credit per model; the credit
-- is added to the shard's counters of conversions and revenue per channel and campaign, in the
-- same atomic step, so a replay counts nothing twice. The models are plain functions of the
-- touch list: the weights are exactly reproducible, whatever the speed of the replay.
--
-- Counter fields, per funnel f and model number m (fn_attr_model_t): "<f>|a<m>c|<channel>"
-- and "<f>|a<m>p|<campaign>" credited conversions (in millionths), "<f>|a<m>c$|<channel>"
-- and "<f>|a<m>p$|<campaign>" credited revenue (weight × the lead's value, in cents), names
-- bounded like every breakdown (breakdown_name, analytics.lua).
--
-- Data-driven attribution (markov): a first-order Markov chain of the channels of each
-- journey in the funnel, counted exactly per touch (A.markov_touch) in "<f>|mv|<from>\t<to>"
-- (from "" is the start; channel names hold no control characters, so the tab cannot be
-- part of one), "<f>|mc|<channel>" moves to a conversion, "<f>|mn|<channel>" to null (a
-- lost lead) and "<f>|mr" the converted revenue in cents ("<f>|mk|<channel>" marks a channel
-- kept by name, "<f>|mk#" counts them); the reader solves the chain for
-- each channel's removal effect (daemon/analytics/markov.c).
--
-- The functions are made by attribution() on first use, not at the script's top level: a
-- script's top level runs on every call, and a step without attribution should not pay for
-- closures it never calls.
-- needs: analytics.lua

local function attribution()
  local A = {}

  -- "<models>|<lookback>|<max touches>|<half-life>" (step.h, FN_STEP_TAIL_MARKETING), or nil
  -- when malformed; {} for an empty spec (attribution off).
  function A.spec_parse(spec)
    if spec == '' then return {} end
    local ms, lb, mx, hl = string.match(spec, '^([0-5]+)|(%d+)|(%d+)|(%d+)$')
    if not ms or #lb > 15 or #mx > 4 or #hl > 15 then return nil end
    -- models: those that credit each conversion (markov does not: see A.markov_touch)
    local models, markov = {}, false
    for d in string.gmatch(ms, '%d') do
      if tonumber(d) == K.STEP_MODEL_MARKOV then markov = true
      else models[#models + 1] = tonumber(d) end
    end
    return {models = models, markov = markov, lookback = tonumber(lb), max = tonumber(mx),
            half = tonumber(hl)}
  end

  local function attr_field(s)
    return string.format('%d:', #s) .. s
  end

  function A.touch_member(channel, campaign, route, event_id)
    return attr_field(channel) .. attr_field(campaign) .. attr_field(route) ..
      string.sub(redis.sha1hex(event_id), 1, 8)
  end

  -- channel, campaign, route of a member; nil when it is not one
  local function attr_touch_parse(m)
    local out, p = {}, 1
    for j = 1, 3 do
      local c = string.find(m, ':', p, true)
      local n = c and tonumber(string.sub(m, p, c - 1))
      if not n then return nil end
      out[j] = string.sub(m, c + 1, c + n)
      p = c + n + 1
    end
    return out[1], out[2], out[3]
  end

  -- The touches funnel f credits for a conversion at time at: {{t = ms, ch, cp}, ...} oldest
  -- first (equal times in member order), those routed to another funnel left out, those older
  -- than lookback too, at most max (the most recent).
  local function attr_touches(key, f, at, spec)
    local all = redis.call('ZRANGEBYSCORE', key, string.format('%d', at - spec.lookback),
      string.format('%d', at), 'WITHSCORES')
    local list = {}
    for j = 1, #all, 2 do
      local ch, cp, route = attr_touch_parse(all[j])
      if ch and (route == '' or route == f) then
        list[#list + 1] = {t = tonumber(all[j + 1]), ch = ch, cp = cp}
      end
    end
    local drop = #list - spec.max
    if drop > 0 then
      local kept = {}
      for j = drop + 1, #list do kept[#kept + 1] = list[j] end
      list = kept
    end
    return list
  end

  -- The weights model m gives the n touches of list (oldest first), adding up to 1.
  local function attr_weights(m, list, half)
    local n, w = #list, {}
    for j = 1, n do w[j] = 0 end
    if n == 0 then return w end
    if m == 0 then -- first_touch
      w[1] = 1
    elseif m == 1 then -- last_touch
      w[n] = 1
    elseif m == 2 then -- linear
      for j = 1, n do w[j] = 1 / n end
    elseif m == 3 then -- time_decay: halves every half-life before the conversion
      -- counted from the newest touch, the same ratios as from the conversion, and the newest
      -- weighs 1 before the division, so old touches underflow to 0, never all of them
      local sum = 0
      for j = 1, n do
        w[j] = 2 ^ (-(list[n].t - list[j].t) / half)
        sum = sum + w[j]
      end
      for j = 1, n do w[j] = w[j] / sum end
    else -- position_based: 40 % first, 40 % last, 20 % spread over the middle
      if n == 1 then
        w[1] = 1
      elseif n == 2 then
        w[1], w[2] = 0.5, 0.5
      else
        w[1], w[n] = 0.4, 0.4
        for j = 2, n - 1 do w[j] = 0.2 / (n - 2) end
      end
    end
    return w
  end

  -- Splits the integer total in proportion to the weights ws (adding up to 1), into integers
  -- that add up to exactly total: each gets the floor of its share, and the units left go to
  -- the largest remainders, the earlier on a tie (largest remainder). The counters add these
  -- integers, never the weights themselves: a sum of fractions depends on the order it is
  -- added in, which differs between a run and its replay, while a sum of integers does not.
  local function attr_apportion(total, ws)
    local sign, parts, rems, sum = 1, {}, {}, 0
    if total < 0 then sign, total = -1, -total end
    for j = 1, #ws do
      local x = ws[j] * total
      parts[j] = math.floor(x)
      rems[j] = x - parts[j]
      sum = sum + parts[j]
    end
    local order = {}
    for j = 1, #ws do order[j] = j end
    table.sort(order, function(a, b)
      if rems[a] ~= rems[b] then return rems[a] > rems[b] end
      return a < b
    end)
    for k = 1, math.min(total - sum, #ws) do parts[order[k]] = parts[order[k]] + 1 end
    for j = 1, #ws do parts[j] = sign * parts[j] end
    return parts
  end

  -- Credited conversions are counted in millionths of a conversion, credited revenue in
  -- hundredths of the value's unit (cents), both integers (attr_apportion; step.h).
  local ATTR_CONV_UNITS, ATTR_MONEY_UNITS = K.STEP_CREDIT_CONV_UNITS, K.STEP_CREDIT_MONEY_UNITS

  -- One conversion's credit in funnel f: per model, the weights summed per (channel, campaign)
  -- in the order of first appearance, added to the counters (value: the lead's value, '' when
  -- none). Returns {model, channel, campaign, weight, ...} for the converted event.
  -- A touch of a journey not yet ended (the lead neither converted nor lost) in funnel f, by
  -- channel ch, whose move op (the plan's letter) it made; set(field, value) adds to the
  -- lead's batched HSET. Counts the move from the journey's last channel (the lead's field
  -- "<f>|m", none: the start) to ch, and from ch to a conversion or to null when the touch
  -- ends the journey (cents: the converted lead's value in cents, or 0).
  function A.markov_touch(stats, lead, f, ch, op, cents, bmax, set)
    local name = breakdown_mark(stats, f, 'mk', ch, bmax) -- analytics.lua
    local prev = redis.call('HGET', lead, f .. K.FF_MARKOV_LAST) or ''
    redis.call('HINCRBY', stats, f .. '|mv|' .. prev .. '\t' .. name, '1')
    if op == 'C' then
      redis.call('HINCRBY', stats, f .. '|mc|' .. name, '1')
      if cents ~= 0 then redis.call('HINCRBYFLOAT', stats, f .. '|mr', string.format('%d', cents)) end
    elseif op == 'L' then
      redis.call('HINCRBY', stats, f .. '|mn|' .. name, '1')
    end
    set(f .. K.FF_MARKOV_LAST, name)
  end

  -- The lead's value in cents, 0 when none or beyond 2^53 (no longer exact in a double).
  function A.cents(value)
    local v = tonumber(value)
    return v and math.abs(v * ATTR_MONEY_UNITS) < 2 ^ 53 and math.floor(v * ATTR_MONEY_UNITS + 0.5) or 0
  end

  -- The first model's credit also goes to the cost figures of the conversion's hour and
  -- minute (analytics.lua, market_bucket; base is the shard's key prefix).
  function A.credit(stats, base, key, f, at, spec, value, bmax)
    local list = attr_touches(key, f, at, spec)
    local out = {}
    local cents = A.cents(value)
    for mi, m in ipairs(spec.models) do
      local w = attr_weights(m, list, spec.half)
      local pairs_, at_of = {}, {}
      for j = 1, #list do
        if w[j] > 0 then
          local id = list[j].ch .. '\0' .. list[j].cp
          if not at_of[id] then
            pairs_[#pairs_ + 1] = {ch = list[j].ch, cp = list[j].cp, w = 0}
            at_of[id] = #pairs_
          end
          local p = pairs_[at_of[id]]
          p.w = p.w + w[j]
        end
      end
      local ws = {}
      for j, p in ipairs(pairs_) do ws[j] = p.w end
      local conv, money = attr_apportion(ATTR_CONV_UNITS, ws), attr_apportion(cents, ws)
      local dim = 'a' .. m
      for j, p in ipairs(pairs_) do
        out[#out + 1] = string.format('%d', m)
        out[#out + 1] = p.ch
        out[#out + 1] = p.cp
        out[#out + 1] = string.format('%.17g', p.w)
        for _, d in ipairs({{dim .. 'c', p.ch}, {dim .. 'p', p.cp}}) do
          local name = breakdown_name(stats, f, d[1], d[2], bmax)
          redis.call('HINCRBY', stats, f .. '|' .. d[1] .. '|' .. name, string.format('%d', conv[j]))
          if money[j] ~= 0 then
            -- HINCRBYFLOAT of integers: exact below 2^53, and never an overflow error
            redis.call('HINCRBYFLOAT', stats, f .. '|' .. d[1] .. '$|' .. name,
              string.format('%d', money[j]))
          end
          if mi == 1 then
            local side = string.sub(d[1], -1)
            market_bucket(base, f, 'v' .. side .. '|' .. name, string.format('%d', conv[j]), at)
            if money[j] ~= 0 then
              market_bucket(base, f, 'r' .. side .. '|' .. name, string.format('%d', money[j]), at)
            end
          end
        end
      end
    end
    return out
  end
  return A
end
