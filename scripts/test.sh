#!/usr/bin/env bash
# The README's test command: installs what is missing, builds the tree twice
# (plain, and with AddressSanitizer + LeakSanitizer + UndefinedBehaviorSanitizer)
# and runs the whole suite on both (valgrind checks hubd in the plain run),
# builds the Debian packages and installs and runs them in a Debian 12 root
# (tests/package/run.sh), runs cppcheck and clang-tidy, then fuzzes every
# decoder briefly.
# Exits non-zero on any failure, sanitizer report or skipped test: a test
# that cannot run here (a tool missing, no root for network namespaces)
# reports a skip (exit 77), and a skip is a failure of this command, except
# the ones that are skips by design (valgrind_hubd in the sanitized build).
# Ends with "N passed, N failed, N skipped" over both ctest runs, then the
# same "N passed, N failed" alone on a line.
set -euo pipefail
cd "$(dirname "$0")/.."

passed=0 failed=0 skipped=0 skipped_by_design=0
unexpected_skips=()
report() {
  local status=$?
  if [ $status -ne 0 ] && [ $failed -eq 0 ]; then
    # A build, lint or fuzz step (not a ctest test) failed: count it.
    echo "== a step outside ctest failed (see above)" >&2
    failed=1
  fi
  if ((${#unexpected_skips[@]})); then
    echo "== skipped, which this command does not allow (a tool or permission is missing):" >&2
    printf '   %s\n' "${unexpected_skips[@]}" >&2
  fi
  echo "== totals over both ctest runs: $passed passed, $failed failed, $skipped skipped" \
       "($skipped_by_design of them by design)"
  echo "$passed passed, $failed failed"
}
trap report EXIT

# Runs ctest in build directory $1 and adds its results to the totals. $2 is
# a regular expression of test names whose skip is by design in this build.
run_ctest() {
  local dir=$1 allowed=$2 log rc=0
  log=$dir/ctest.log
  (cd "$dir" && ctest --output-on-failure -j 2) 2>&1 | tee "$log" || rc=$?
  # One result line per test: "  3/41 Test  #3: name ....   Passed    0.2 sec".
  local line name
  while IFS= read -r line; do
    name=$(sed -E 's/.*Test +#[0-9]+: ([^ ]+) .*/\1/' <<<"$line")
    case "$line" in
      *" Passed "*) passed=$((passed + 1)) ;;
      *"***Skipped"*)
        skipped=$((skipped + 1))
        if [ -n "$allowed" ] && [[ $name =~ ^($allowed)$ ]]; then
          skipped_by_design=$((skipped_by_design + 1))
        else
          unexpected_skips+=("$dir: $name")
        fi ;;
      *) failed=$((failed + 1)) ;;
    esac
  done < <(grep -E '^ *[0-9]+/[0-9]+ Test +#[0-9]+: ' "$log")
  return $rc
}

scripts/install-deps.sh

echo "== build (RelWithDebInfo)"
scripts/build.sh release
echo "== tests"
run_ctest build ""
if ((${#unexpected_skips[@]})); then
  echo "== FAILED: tests skipped in the plain run" >&2
  exit 1
fi

echo "== high availability (tests/ha/run.sh): etcd, Patroni, two hubd nodes; kill -9 a node, then the PostgreSQL primary"
# Its own stage, not a ctest test: it takes about a minute and needs
# etcd and Patroni. Ends with "N passed, N failed"; a failure fails the run.
ha_rc=0
tests/ha/run.sh build || ha_rc=$?
if [ $ha_rc -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); exit 1; fi

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
run_ctest build-asan "valgrind_hubd" || status=$?
if compgen -G "$reports/*" >/dev/null; then
  echo "== sanitizer reports:" >&2
  for f in "$reports"/*; do echo "--- $f" >&2; head -60 "$f" >&2; done
  status=1
fi
if ((${#unexpected_skips[@]})); then
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
