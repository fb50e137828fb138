# Turns openapi.json into a C source holding it as one string, which the
# bridge serves at GET /openapi.json. Run as
#   cmake -DIN=openapi.json -DOUT=bridge_openapi.c -P embed_openapi.cmake
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hex_len)
math(EXPR len "${hex_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n    " bytes "${bytes}")
file(WRITE ${OUT}.tmp "/* Generated from openapi.json by embed_openapi.cmake; do not edit. */\n"
     "#include <stddef.h>\n"
     "const unsigned char bridge_openapi_json[] = {\n    ${bytes}0x00};\n"
     "const size_t bridge_openapi_json_len = ${len};\n")
file(RENAME ${OUT}.tmp ${OUT})
