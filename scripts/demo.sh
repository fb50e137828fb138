#!/usr/bin/env bash
# The README's run command: installs what is missing, builds, generates fresh
# keys, starts hubd with sample adapters on the embedded store, and shows
# requests going through. Keeps running until Ctrl-C (or exits after the
# show with --once). Everything lives under run/demo/ (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
once=0
[ "${1:-}" = "--once" ] && once=1

scripts/install-deps.sh
echo "== building"
scripts/build.sh release programs
BIN=$ROOT/build/bin

DEMO=$ROOT/run/demo
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

rm -rf "$DEMO"
mkdir -p "$DEMO/keys" "$DEMO/secrets"
cd "$DEMO"

HUB=VN/GOV/HN-LGSP/HUB
OPS=VN/GOV/HN-LGSP/OPS
POP=VN/GOV/BCA/CSDLQGDC
TTHC=VN/GOV/HN-VP/TTHC
echo "== generating keys (secret files are mode 0600 and never printed)"
for m in $HUB $OPS $POP $TTHC; do
  "$BIN/hubctl" keygen "$m" secrets >/dev/null
done
for m in $OPS $POP $TTHC; do cp "secrets/${m//\//.}.pub" keys/; done

cat > hubd.conf <<CONF
listen = tcp://127.0.0.1:*
key_file = secrets/VN.GOV.HN-LGSP.HUB.secret
key_dir = keys
data_dir = data
CONF
"$BIN/hubd" --config hubd.conf --ready-file hubd.ready >hubd.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s hubd.ready ] && break; sleep 0.1; done
[ -s hubd.ready ] || { echo "hubd did not start:"; cat hubd.log; exit 1; }
ENDPOINT=$(sed -n 's/^endpoint=//p' hubd.ready)
echo "== hubd listening on $ENDPOINT (log: $DEMO/hubd.log)"

adapter() { # member, extra config
  local slug=${1//\//.}
  cat > "adapter-$slug.conf" <<CONF
hub_endpoint = $ENDPOINT
hub_key_file = secrets/VN.GOV.HN-LGSP.HUB.pub
member_key_file = secrets/$slug.secret
plugin = echo
$2
CONF
  "$BIN/hub-adapter" --config "adapter-$slug.conf" >"adapter-$slug.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do grep -q 'msg="serving"' "adapter-$slug.log" && return 0; sleep 0.1; done
  echo "adapter $1 did not start:"; cat "adapter-$slug.log"; exit 1
}
adapter $POP "plugin.services = echo/v1"
adapter $TTHC "plugin.relay_to = $POP"
echo "== adapters serving: $POP (echo), $TTHC (relays to $POP)"

cat > hubctl.conf <<CONF
hub_endpoint = $ENDPOINT
hub_key_file = secrets/VN.GOV.HN-LGSP.HUB.pub
member_key_file = secrets/${OPS//\//.}.secret
CONF
export LTH_HUBCTL_CONFIG=$DEMO/hubctl.conf
echo
echo "\$ hubctl ping $POP --count 3"
"$BIN/hubctl" ping $POP --count 3
echo
echo "\$ hubctl request $TTHC relay/v1 --data '{\"so_dinh_danh\":\"001085012345\"}'"
"$BIN/hubctl" request $TTHC relay/v1 --data '{"so_dinh_danh":"001085012345"}'
echo "   (the operator asked $TTHC, whose adapter asked $POP through the hub)"
echo
echo "\$ hubctl ping VN/GOV/NO/SUCH   # refused, with the reason"
"$BIN/hubctl" ping VN/GOV/NO/SUCH || echo "   (exit status $?)"
echo
if [ $once = 1 ]; then
  echo "== demo done"
  exit 0
fi
echo "== the hub is running. Try, in another shell:"
echo "   export LTH_HUBCTL_CONFIG=$DEMO/hubctl.conf"
echo "   $BIN/hubctl ping $POP"
echo "Press Ctrl-C to stop."
wait "${pids[0]}"
