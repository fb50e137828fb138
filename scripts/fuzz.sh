#!/usr/bin/env bash
# Fuzzes every decoder of outside input with libFuzzer (tests/fuzz, issue 8).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   scripts/fuzz.sh            30 s per target, every target (a smoke run)
#   scripts/fuzz.sh 600        the 10-minute-per-target run
#   scripts/fuzz.sh 120 http   one target (frame envelope conf audit http bridge_http member_id store_record)
#
# Checks the packages (scripts/install-deps.sh), configures build-fuzz/ with
# CC=clang -DHUB_FUZZ=ON (every library instrumented for libFuzzer, ASan and
# UBSan), builds the fuzz targets and runs each one for SECONDS on its corpus:
# the seeds of tests/fuzz/corpus/<target>/ are copied into
# build-fuzz/corpus/<target>/, which also receives what the fuzzer finds
# (the repository's corpus is only read), and tests/fuzz/regressions/<target>/
# is read too. Logs go to build-fuzz/logs/<target>.log; a crash, leak,
# timeout or out-of-memory input is saved in build-fuzz/artifacts/<target>/.
# Exits non-zero when any target failed, after naming each reproducer and
# the command that replays it. To keep a reproducer: minimise it
# (build-fuzz/fuzz/fuzz_<target> -minimize_crash=1 -runs=100000 FILE) and add
# it to tests/fuzz/regressions/<target>/ once the bug is fixed, or to
# tests/fuzz/pending/<target>/ until then (see tests/fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
  echo "fuzz.sh: SECONDS_PER_TARGET must be a positive whole number, not '$seconds'" >&2
  exit 2
fi
all_targets=(frame envelope conf audit http bridge_http member_id store_record)
targets=("$@")
((${#targets[@]})) || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $t "* ]] || {
    echo "fuzz.sh: unknown target '$t' (${all_targets[*]})" >&2
    exit 2
  }
done

# Longest input per target: enough for the structures each decoder takes,
# small enough to keep the executions fast.
declare -A max_len=(
  [frame]=16384 [envelope]=8192 [conf]=4096 [audit]=32768 [http]=16384 [member_id]=512
  [store_record]=2048 [bridge_http]=16384
)

scripts/install-deps.sh

dir=build-fuzz
# -O1 without NDEBUG: fast enough, and the code's own asserts stay in.
CC=clang cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang -DHUB_FUZZ=ON -DHUB_BUILD_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" >/dev/null
mkdir -p "$dir/logs"
if ! cmake --build "$dir" -j "$(nproc)" --target fuzzers >"$dir/logs/build.log" 2>&1; then
  grep -vE '^(\[ *[0-9]+%\]|g?make)' "$dir/logs/build.log" | tail -60 >&2
  echo "fuzz.sh: build failed; full log in $dir/logs/build.log" >&2
  exit 1
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
for t in "${targets[@]}"; do
  corpus="$dir/corpus/$t"
  artifacts="$dir/artifacts/$t"
  log="$dir/logs/$t.log"
  mkdir -p "$corpus" "$artifacts"
  cp -n tests/fuzz/corpus/"$t"/* "$corpus"/
  extra=()
  [ -d "tests/fuzz/regressions/$t" ] && extra+=("tests/fuzz/regressions/$t")
  opts=(-max_total_time="$seconds" -max_len="${max_len[$t]}" -rss_limit_mb=2048 -timeout=30
        -print_final_stats=1 -artifact_prefix="$artifacts/")
  [ -f "tests/fuzz/dict/$t.dict" ] && opts+=(-dict="tests/fuzz/dict/$t.dict")
  before=$(ls "$artifacts" | wc -l)
  echo "== fuzz_$t: ${seconds}s, max_len ${max_len[$t]}, log $log"
  rc=0
  "$dir/fuzz/fuzz_$t" "${opts[@]}" "$corpus" "${extra[@]}" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
  echo "   runs ${runs:-?}, ${rate:-?} exec/s, ${cov:-no coverage line}, corpus $(ls "$corpus" | wc -l) files"
  if [ "$rc" -ne 0 ] || [ "$(ls "$artifacts" | wc -l)" -gt "$before" ]; then
    failed+=("$t")
    echo "   FAILED (exit $rc):" >&2
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|.*fuzz property broken)' "$log" | head -5 | sed 's/^/     /' >&2 || true
    for f in $(ls -t "$artifacts" | head -$(( $(ls "$artifacts" | wc -l) - before ))); do
      echo "   reproducer: $artifacts/$f" >&2
      echo "   replay:     $dir/fuzz/fuzz_$t $artifacts/$f" >&2
    done
  fi
done

if ((${#failed[@]})); then
  echo "fuzz.sh: failures in: ${failed[*]} (logs in $dir/logs/)" >&2
  exit 1
fi
echo "fuzz.sh: no crash in ${targets[*]} (${seconds}s each)"
