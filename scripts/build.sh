#!/usr/bin/env bash
# Configures and builds one flavour of the tree.
#   scripts/build.sh            -> build/       (RelWithDebInfo)
#   scripts/build.sh asan       -> build-asan/  (AddressSanitizer + LeakSanitizer + UBSan)
#   scripts/build.sh release programs   -> only hubd, hubctl, hub-adapter and plugins
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
target=()
[ -n "${2:-}" ] && target=(--target "$2")
jobs=$(nproc)
case "$flavour" in
  release) dir=build; opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan) dir=build-asan; opts=(-DCMAKE_BUILD_TYPE=Debug -DHUB_ASAN=ON -DHUB_UBSAN=ON) ;;
  *) echo "build.sh: unknown flavour '$flavour' (release | asan)" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" "${opts[@]}" >/dev/null
# Progress lines are noise; errors and warnings are not, and fail the script.
if ! cmake --build "$dir" -j "$jobs" "${target[@]}" >"$dir/build.log" 2>&1; then
  grep -vE '^(\[ *[0-9]+%\]|g?make)' "$dir/build.log" | tail -60 >&2
  echo "build.sh: build failed; full log in $dir/build.log" >&2
  exit 1
fi
