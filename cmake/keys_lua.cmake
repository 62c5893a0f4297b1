# Reads the names of daemon/state/keys.def (DEF) and the numbered FN_STEP_ constants of
# include/funneld/step.h (STEP), named as in C without "FN_" (FN_KEY_LEAD -> KEY_LEAD,
# FN_F_ID -> F_ID, FN_FF_STAGE -> FF_STAGE, FN_STATUS_LOST -> STATUS_LOST, FN_STEP_ARG_NOW
# -> STEP_ARG_NOW), and writes
#   MAP    one "NAME literal" per line, the Lua literal embed.cmake writes for each K.NAME
#          in a script, so a script reads K.F_ID and Redis runs 'id': the names cost nothing
#          per call (a table built by every call did, and a chunk may hold only 200 locals);
#   PROBE  a script returning {name, value as text, ...} for every name, embedded through
#          the same substitution, which tests/integration/test_keys_lua_redis.c runs on a real
#          Redis against C's table.
file(STRINGS ${DEF} lines REGEX "^FN_[A-Z_]+\\(")
set(map "")
set(probe "")
foreach(line ${lines})
  if(NOT line MATCHES "^FN_(SHARD_KEY|PREFIX_KEY|FIELD|FUNNEL_FIELD|TOKEN)\\(([A-Z_]+), \"([^\";'\\\\]*)\"\\)")
    message(FATAL_ERROR "${DEF}: an entry the Lua generator cannot read: ${line}")
  endif()
  set(kind ${CMAKE_MATCH_1})
  set(name ${CMAKE_MATCH_2})
  set(text ${CMAKE_MATCH_3})
  if(kind STREQUAL "SHARD_KEY" OR kind STREQUAL "PREFIX_KEY")
    set(name "KEY_${name}")
  elseif(kind STREQUAL "FIELD")
    set(name "F_${name}")
  elseif(kind STREQUAL "FUNNEL_FIELD")
    set(name "FF_${name}")
  endif()
  string(APPEND map "${name} '${text}'\n")
  string(APPEND probe "  '${name}', K.${name},\n")
endforeach()
file(STRINGS ${STEP} defs REGEX "^#define FN_STEP_[A-Z_]+ [0-9]+$")
foreach(line ${defs})
  string(REGEX REPLACE "^#define FN_(STEP_[A-Z_]+) ([0-9]+)$" "\\1" name "${line}")
  string(REGEX REPLACE "^#define FN_(STEP_[A-Z_]+) ([0-9]+)$" "\\2" value "${line}")
  string(APPEND map "${name} ${value}\n")
  string(APPEND probe "  '${name}', K.${name},\n")
endforeach()
file(WRITE ${MAP} "${map}")
file(WRITE ${PROBE} "-- generated from daemon/state/keys.def and include/funneld/step.h; do not edit
local r = {
${probe}}
for i = 2, #r, 2 do r[i] = tostring(r[i]) end
return r
")
