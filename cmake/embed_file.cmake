# Turns one file (IN) into a C translation unit (OUT) holding its bytes as the NUL-terminated
# string SYM, as they are: the live view's page is served from the binary, with no file to
# install and nothing fetched at build time.
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* generated from ${IN}; do not edit */\nconst char ${SYM}[] = {${bytes}0x00};\n")
