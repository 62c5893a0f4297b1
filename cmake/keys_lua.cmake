# Writes the Lua prelude (OUT) every script starts with: a table K holding the names of
# daemon/state/keys.def (DEF), named as in C without "FN_" (FN_KEY_LEAD -> K.KEY_LEAD,
# FN_F_ID -> K.F_ID, FN_FF_STAGE -> K.FF_STAGE, FN_STATUS_LOST -> K.STATUS_LOST), and the
# step command's layout constants of include/funneld/step.h (STEP, FN_STEP_KEYS ->
# K.STEP_KEYS ...). One table rather than one local per name: a Lua function may use at most
# 60 upvalues and a chunk at most 200 locals.
file(STRINGS ${DEF} lines REGEX "^FN_[A-Z_]+\\(")
set(body "")
foreach(line ${lines})
  if(NOT line MATCHES "^FN_(SHARD_KEY|PREFIX_KEY|FIELD|FUNNEL_FIELD|TOKEN)\\(([A-Z_]+), \"([^\"'\\\\]*)\"\\)")
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
  string(APPEND body "  ${name} = '${text}',\n")
endforeach()
file(STRINGS ${STEP} defs REGEX "^#define FN_STEP_[A-Z_]+ [0-9]+$")
foreach(line ${defs})
  string(REGEX REPLACE "^#define FN_(STEP_[A-Z_]+) ([0-9]+)$" "  \\1 = \\2,\n" entry "${line}")
  string(APPEND body "${entry}")
endforeach()
file(WRITE ${OUT} "-- keys.lua: generated from daemon/state/keys.def and include/funneld/step.h; do not edit\nlocal K = {\n${body}}\n")
