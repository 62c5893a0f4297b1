# Turns text files into a C translation unit holding them, concatenated in order, as one
# NUL-terminated string. IN is a comma-separated list of files.
string(REPLACE "," ";" inputs "${IN}")
set(bytes "")
foreach(f ${inputs})
  file(READ ${f} content HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," b "${content}")
  string(APPEND bytes "${b}")
endforeach()
file(WRITE ${OUT} "/* generated from ${IN}; do not edit */\nconst char ${SYM}[] = {${bytes}0x00};\n")
