#!/usr/bin/env bash
# The README's test command: installs what is missing, builds the tree twice
# (plain, and with AddressSanitizer + LeakSanitizer + UndefinedBehaviorSanitizer)
# and runs the whole suite on both (valgrind checks hubd in the plain run),
# builds the Debian packages and installs and runs them in a Debian 12 root
# (tests/package/run.sh), runs cppcheck and clang-tidy, then fuzzes every
# decoder briefly.
# Exits non-zero on any failure or sanitizer report.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

echo "== build (RelWithDebInfo)"
scripts/build.sh release
echo "== tests"
(cd build && ctest --output-on-failure -j 2)

echo "== build (ASan + LSan + UBSan)"
scripts/build.sh asan
echo "== tests under sanitizers"
# Every process (tests, and the hubd / hub-adapter / hubctl they start)
# writes sanitizer reports to files here; any report fails the run, even
# from a process whose exit status no test looked at.
reports=$PWD/build-asan/sanitizer-reports
rm -rf "$reports" && mkdir -p "$reports"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1:log_path=$reports/asan
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan
status=0
(cd build-asan && ctest --output-on-failure -j 2) || status=$?
if compgen -G "$reports/*" >/dev/null; then
  echo "== sanitizer reports:" >&2
  for f in "$reports"/*; do echo "--- $f" >&2; head -60 "$f" >&2; done
  status=1
fi
if [ $status -ne 0 ]; then
  echo "== FAILED under sanitizers" >&2
  exit $status
fi
echo "== Debian packages: build, lintian, install into a Debian 12 root, run (tests/package/run.sh)"
tests/package/run.sh
echo "== static analysis (cppcheck, clang-tidy)"
scripts/lint.sh
echo "== short fuzzing run (20 s per target; scripts/fuzz.sh 600 is the long one)"
scripts/fuzz.sh 20
echo "== all tests passed (plain, sanitized, linted, fuzzed)"
