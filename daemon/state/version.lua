-- version.lua — a lead hash's version, its field K.F_VERSION (keys.def): every script that
-- writes a lead hash moves it on, once per call (a script runs whole, so once is enough).
-- The fast path's apply (fast.lua) writes only while the version is the one the daemon read
-- with the hash, so a write by anything else in between sends the event the whole step's
-- way. A hash made anew starts from the clock, in thousandths of a millisecond, not from 1:
-- one erased and made again never repeats a version the one before had (that would take a
-- thousand writes a millisecond).
-- needs:

-- The version after v (the stored text, or nil), a new hash's at now_ms.
local function version_next(v, now_ms)
  local n = tonumber(v)
  return string.format('%d', n and n + 1 or now_ms * 1000)
end

-- Moves the version of hash lead on; does nothing to a lead that does not exist.
local function version_move(lead, now_ms)
  local v = redis.call('HGET', lead, K.F_VERSION)
  if v or redis.call('EXISTS', lead) == 1 then
    redis.call('HSET', lead, K.F_VERSION, version_next(v, now_ms))
  end
end
