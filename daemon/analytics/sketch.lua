-- sketch.lua — the bucket of the quantile sketch, the Lua twin of fn_sketch_bucket
-- (include/funneld/sketch.h has the formula). The field of a sketch hash is this index, and
-- the daemon reads it back with the C function, so both must agree for every duration:
-- tests/unit/test_sketch.c checks the C function against a table this function produced.
-- Lua 5.1's math.log and math.ceil are C's log and ceil, and the constant is the same
-- literal as FN_SKETCH_LOG_GAMMA, so the arithmetic is identical. Never change it on a live
-- data set. Prepended to the scripts that need it; defines locals only.
-- needs:

local SKETCH_LOG_GAMMA = 0.040005334613699164 -- ln((1 + 0.02) / (1 - 0.02)) = ln(51/49)
local SKETCH_MAX_MS = 315576000000 -- 10 years of 365.25 days

-- Bucket index (0 .. 663) of a duration in ms: 0 below 1 ms, then
-- 1 + ceil(log(ms) / ln gamma), with ms truncated to whole ms and capped at 10 years.
local function sketch_bucket(ms)
  ms = tonumber(ms)
  if not ms or ms ~= ms or ms < 1 then return 0 end
  ms = math.floor(ms)
  if ms > SKETCH_MAX_MS then ms = SKETCH_MAX_MS end
  return 1 + math.ceil(math.log(ms) / SKETCH_LOG_GAMMA)
end
