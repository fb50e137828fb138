# Fuzzing (issue 8). With -DHUB_FUZZ=ON every library and program of the tree
# is compiled for libFuzzer (coverage instrumentation) under AddressSanitizer
# and UndefinedBehaviorSanitizer, and tests/fuzz/ builds one libFuzzer
# executable per decoder of outside input. The instrumentation has to reach
# hub_common, hub_core and lth_proto too, which is why this file is included
# right after project(), before any target exists, and why a fuzzing build
# lives in its own build directory configured with CC=clang (scripts/fuzz.sh
# does all of this).
option(HUB_FUZZ "Build the libFuzzer targets in tests/fuzz (clang only; own build dir)" OFF)
if(HUB_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "HUB_FUZZ=ON needs clang (libFuzzer): configure a separate build "
                        "directory with CC=clang, or run scripts/fuzz.sh")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined
                      -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=address,undefined)
endif()
