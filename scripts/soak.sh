#!/usr/bin/env bash
# The long soak run (issue 8): mixed traffic against real hubd and adapter
# processes for SECONDS (default 600), with a receiver killed and restarted
# and a key reload half-way; prints messages in, delivered, refused, lost
# (must be 0) and hubd's memory at start and end. Loopback only.
#   scripts/soak.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
scripts/install-deps.sh
scripts/build.sh release
cd build
HUB_SOAK_SECONDS=$seconds HUB_BIN_DIR=$PWD/bin HUB_PLUGIN_DIR=$PWD/lib/plugins \
  CK_DEFAULT_TIMEOUT=$((seconds + 600)) ./tests/e2e_test_soak 2>&1 | grep -v ' level=info '
