-- position.lua — a lead's position in one funnel, one lead-hash field "<funnel>|p" (keys.def):
--   "<touches>|<last activity>"                      before the lead entered the funnel
--   "<touches>|<last activity>|<status><stage>|<entered stage at>|<entered funnel at>"
-- status one of K.STATUS_ACTIVE, K.STATUS_CONVERTED, K.STATUS_LOST. Every touch rewrites it
-- (its touches and activity change each time), so one listpack entry is found and rewritten
-- where six were, and the lead hash is smaller. A lead written before 2026-12-07 holds the
-- six fields "|n |a |x |k |e |b" instead: pos_get reads them when "|p" is absent, and the
-- step that next writes the position deletes them (pos_old_fields).
-- needs:

-- Funnel f's position in h (field name -> value): touches, last activity, status, stage,
-- entered stage at, entered funnel at, each the stored text or nil, then true when they came
-- from the old layout's fields. A malformed "|p" reads as status '?', which no caller takes
-- for a position.
local function pos_get(h, f)
  local p = h[f .. K.FF_POS]
  if not p then
    local n, x = h[f .. K.FF_TOUCHES], h[f .. K.FF_STATUS]
    if not (n or x) then return end
    return n, h[f .. K.FF_ACTIVE], x, h[f .. K.FF_STAGE], h[f .. K.FF_ENTERED],
      h[f .. K.FF_BEGAN], true
  end
  local n, a, rest = string.match(p, '^(%d+)|(%-?%d+)(.*)$')
  if rest == '' then return n, a end
  -- the status is one letter; the callers tell the three known ones from another
  local x, k, e, b = string.match(rest or '', '^|(%a)(%d*)|(%-?%d+)|(%-?%d+)$')
  if not x then return nil, nil, '?' end
  if k == '' then k = nil end
  return n, a, x, k, e, b
end

-- The value of "|p" (arguments as pos_get returns them, text; x nil: not entered).
local function pos_text(n, a, x, k, e, b)
  if not x then return n .. '|' .. a end
  return n .. '|' .. a .. '|' .. x .. (k or '') .. '|' .. e .. '|' .. b
end

-- The names of the old layout's six fields of funnel f: the step that writes "|p" for a
-- lead pos_get read from them deletes them.
local function pos_old_fields(f)
  return {f .. K.FF_TOUCHES, f .. K.FF_ACTIVE, f .. K.FF_STATUS, f .. K.FF_STAGE,
          f .. K.FF_ENTERED, f .. K.FF_BEGAN}
end
