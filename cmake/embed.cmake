# Writes INPUT as a NUL-terminated C string named SYMBOL into OUTPUT.
file(READ ${INPUT} content HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
file(WRITE ${OUTPUT} "/* generated from ${INPUT}; do not edit */\nconst char ${SYMBOL}[] = {${bytes}0x00};\n")
