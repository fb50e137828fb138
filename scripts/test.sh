#!/usr/bin/env bash
# The README's test command: installs what is missing, builds the tree twice
# (plain, and with AddressSanitizer + LeakSanitizer + UndefinedBehaviorSanitizer)
# and runs the whole suite on both. Exits non-zero on any failure or
# sanitizer report.
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
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j 2)
echo "== all tests passed (plain and sanitized)"
