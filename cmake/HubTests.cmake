# How a module registers its tests (included by the top CMakeLists.txt before
# any module when HUB_BUILD_TESTS is on). Each module's CMakeLists.txt
# registers the unit tests of its own code; tests/e2e/CMakeLists.txt
# registers the end-to-end tests, which run the whole system.
#
# hub_add_test(<name> <source> <timeout> [LIBS <target>...])
#   A Check program built from <source> with the shared fixture
#   (tests/support), linked with hub_core, adp and LIBS, run by ctest as
#   <name> with <timeout> seconds and the build's bin/ directory in its
#   environment so that end-to-end tests can start hubd and hub-adapter.
# hub_add_pg_test(<name> <test> <timeout> <check_timeout>)
#   The program of test <test> again, beside a private PostgreSQL server
#   (tests/support/with_postgres.sh; scripts/install-deps.sh installs it),
#   <check_timeout> seconds for each Check test case.
set(HUB_TESTS_DIR ${CMAKE_SOURCE_DIR}/tests)
set(HUB_TEST_SUPPORT ${HUB_TESTS_DIR}/support/hubfix.c ${HUB_TESTS_DIR}/support/testkit.c
    ${HUB_TESTS_DIR}/support/tkcanon.c ${HUB_TESTS_DIR}/support/tkloop.c
    ${HUB_TESTS_DIR}/support/tkproc.c)
# What every test finds in its environment. HUB_FAILSYNC_LIB is the fault
# library of tests/faults/failsync.c (built in tests/CMakeLists.txt).
set(HUB_TEST_ENV
    "HUB_BIN_DIR=${CMAKE_BINARY_DIR}/bin"
    "HUB_PLUGIN_DIR=${CMAKE_BINARY_DIR}/lib/plugins"
    "HUB_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
    "HUB_FAILSYNC_LIB=$<TARGET_FILE:lth_failsync>")

function(hub_add_test name source timeout)
  cmake_parse_arguments(PARSE_ARGV 3 arg "" "" "LIBS")
  add_executable(${name} ${source} ${HUB_TEST_SUPPORT})
  target_include_directories(${name} PRIVATE ${HUB_TESTS_DIR}/support)
  # Test paths are built with snprintf into PATH_MAX buffers; truncation there
  # would only fail the test.
  target_compile_options(${name} PRIVATE $<$<C_COMPILER_ID:GNU>:-Wno-format-truncation>)
  target_link_libraries(${name} PRIVATE hub_core adp ${arg_LIBS} PkgConfig::CHECK
                        PkgConfig::CURL PkgConfig::JANSSON)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  # End-to-end tests start the real programs (the top CMakeLists.txt's
  # `programs`): build them first.
  add_dependencies(${name} programs lth_failsync)
  add_test(NAME ${name} COMMAND ${name})
  # A test that cannot run here exits 77 (testkit.h, tk_skip): ctest reports
  # it as skipped, and scripts/test.sh fails a plain run that skipped any.
  set_tests_properties(${name} PROPERTIES TIMEOUT ${timeout} SKIP_RETURN_CODE 77
    ENVIRONMENT "${HUB_TEST_ENV};CK_DEFAULT_TIMEOUT=${timeout}")
endfunction()

function(hub_add_pg_test name test timeout check_timeout)
  add_test(NAME ${name}
           COMMAND ${HUB_TESTS_DIR}/support/with_postgres.sh $<TARGET_FILE:${test}>)
  set_tests_properties(${name} PROPERTIES TIMEOUT ${timeout} SKIP_RETURN_CODE 77
    ENVIRONMENT "${HUB_TEST_ENV};CK_DEFAULT_TIMEOUT=${check_timeout}")
endfunction()
