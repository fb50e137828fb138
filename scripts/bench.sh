#!/usr/bin/env bash
# Issue 7's benchmark (and issue 3's durable figure): installs what is
# missing, builds the release tree and runs hubbench, which starts the real
# hubd, the raw libzmq relay and nats-server on 127.0.0.1 and prints one table
# (also written as Markdown to build/bench/latest.md).
#   scripts/bench.sh               every case, medians of 3 runs (about 5 minutes)
#   scripts/bench.sh --quick       one short run of each case (a smoke test, < 1 minute)
#   scripts/bench.sh --scale 10000 10,000 connected members: memory per connection and
#                                  throughput while they are connected (build/bench/scale-N.md)
# Any other arguments go to hubbench (build/bin/hubbench --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
echo "== building hubbench, rawhop and hubd (RelWithDebInfo)"
scripts/build.sh release hubbench
echo "== running: build/bin/hubbench $*"
exec build/bin/hubbench "$@"
