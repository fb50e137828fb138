#!/usr/bin/env bash
# hubd under valgrind over a run with reconnections and reloads: no leak
# (definite or indirect) and no memory error. Also ctest valgrind_hubd.
#
# In a fresh temporary directory: new keys, an audit log, the HTTP endpoint
# and a policy file. Traffic: an echo adapter killed (SIGKILL, then SIGTERM)
# and started again twice, with durable requests queued for it while it is
# down; 20 `hubctl ping`s; a refused request; two SIGHUP reloads (the
# adapter's key removed, then back); then SIGTERM. Exits non-zero, printing
# the valgrind log, when valgrind reports an error or a leak (exit 99), hubd
# does not exit cleanly, or a step fails. Exits 77 (skipped) without
# valgrind or when hubd is built with AddressSanitizer.
#
# Programs: $HUB_BIN_DIR (default build/bin), plugins: $HUB_PLUGIN_DIR
# (default BIN/../lib/plugins). HUB_TEST_KEEP=1 keeps the directory.
set -euo pipefail
# hubd refuses key directories and policy files that group or others may write.
umask 022
cd "$(dirname "$0")/.."
BIN=$(cd "${HUB_BIN_DIR:-build/bin}" && pwd)
PLUGINS=$(cd "${HUB_PLUGIN_DIR:-$BIN/../lib/plugins}" && pwd)

if ! command -v valgrind >/dev/null; then
  echo "valgrind.sh: valgrind is not installed (scripts/install-deps.sh); skipped" >&2
  exit 77
fi
if grep -q __asan_init "$BIN/hubd"; then
  echo "valgrind.sh: $BIN/hubd is built with AddressSanitizer; skipped" >&2
  exit 77
fi

# Valgrind makes hubd some 30 times slower: every wait is generous.
WAIT_S=120
HUB=VN/GOV/HN-LGSP/HUB
OPS=VN/GOV/HN-LGSP/OPS
ECHO=VN/GOV/TEST/ECHO

DIR=$(mktemp -d "${TMPDIR:-/tmp}/hub-valgrind.XXXXXX")
hubd_pid=
echo_pid=
cleanup() {
  local rc=$?
  trap - EXIT
  [ -n "$echo_pid" ] && kill -9 "$echo_pid" 2>/dev/null || true
  [ -n "$hubd_pid" ] && kill -9 "$hubd_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ "${HUB_TEST_KEEP:-}" = 1 ]; then
    echo "valgrind.sh: kept $DIR" >&2
  else
    rm -rf "$DIR"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "valgrind.sh: FAILED: $*" >&2
  for f in "$DIR/valgrind.log" "$DIR/hubd.log" "$DIR/echo.log"; do
    [ -f "$f" ] || continue
    echo "--- $f (last 150 lines)" >&2
    tail -n 150 "$f" >&2
  done
  exit 1
}

# wait_for SECONDS COMMAND...: until COMMAND succeeds, or fail.
wait_for() {
  local secs=$1
  shift
  for _ in $(seq $((secs * 10))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}
count_lines() { grep -c -- "$2" "$1" 2>/dev/null || true; }

cd "$DIR"
mkdir -p keys secrets state
for m in $HUB $OPS $ECHO; do
  "$BIN/hubctl" keygen "$m" secrets >/dev/null
  [ "$m" = $HUB ] || cp "secrets/${m//\//.}.pub" keys/
done
cat >policy.conf <<CONF
allow $OPS -> $ECHO/echo/v1 purpose "valgrind run"
allow $OPS -> $ECHO/lth.ping/v1
CONF
printf 'valgrind-run-token-0123456789abcdef\n' >operator.token
chmod 600 operator.token
cat >hubd.conf <<CONF
listen = tcp://127.0.0.1:*
key_file = secrets/VN.GOV.HN-LGSP.HUB.secret
key_dir = keys
data_dir = data
audit = yes
policy_file = policy.conf
http_listen = 127.0.0.1:0
http_token_file = operator.token
heartbeat_ms = 1000
redelivery_ms = 2000
CONF

echo "== hubd under valgrind (log: valgrind.log)"
valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
  --track-fds=no --num-callers=40 --log-file="$DIR/valgrind.log" \
  "$BIN/hubd" --config hubd.conf --ready-file hubd.ready >hubd.log 2>&1 &
hubd_pid=$!
wait_for $WAIT_S test -s hubd.ready || fail "hubd did not start"
ENDPOINT=$(sed -n 's/^endpoint=//p' hubd.ready)
HTTP=$(sed -n 's/^http=//p' hubd.ready)
[ -n "$ENDPOINT" ] && [ -n "$HTTP" ] || fail "hubd.ready lacks endpoint= or http="
echo "   listening on $ENDPOINT, HTTP on $HTTP"

cat >hubctl.conf <<CONF
hub_endpoint = $ENDPOINT
hub_key_file = secrets/VN.GOV.HN-LGSP.HUB.pub
member_key_file = secrets/VN.GOV.HN-LGSP.OPS.secret
CONF
export LTH_HUBCTL_CONFIG=$DIR/hubctl.conf
cat >echo.conf <<CONF
hub_endpoint = $ENDPOINT
hub_key_file = secrets/VN.GOV.HN-LGSP.HUB.pub
member_key_file = secrets/VN.GOV.TEST.ECHO.secret
plugin = $PLUGINS/lth-echo.so
state_dir = state/echo
CONF

start_echo() {
  : >echo.log
  "$BIN/hub-adapter" --config echo.conf >>echo.log 2>&1 &
  echo_pid=$!
  wait_for $WAIT_S grep -q 'msg="serving"' echo.log || fail "the echo adapter did not start"
}
stop_echo() { # SIGNAL
  kill "-$1" "$echo_pid"
  wait "$echo_pid" 2>/dev/null || true
  echo_pid=
}
ping_echo() { "$BIN/hubctl" ping $ECHO --timeout 20000; }
request() { # TEXT TIMEOUT-MS
  "$BIN/hubctl" request $ECHO echo/v1 --data "$1" --timeout "$2"
}
echoed() { # TEXT: a request answered with TEXT (the output is read whole, not piped to grep -q)
  local out
  out=$(request "$1" 60000) && [[ $out == *"$1"* ]]
}
reloads_logged() { # N: hubd has logged N reloads
  [ "$(count_lines hubd.log 'msg="key directory reloaded"')" -ge "$1" ]
}
reload() { # N: SIGHUP, then wait for hubd's Nth reload
  kill -HUP "$hubd_pid"
  wait_for $WAIT_S reloads_logged "$1" || fail "reload $1 not logged"
}

start_echo
echo "== 20 pings, each from a new hubctl connection"
for i in $(seq 20); do
  ping_echo >/dev/null || fail "ping $i"
done
echoed "hello" || fail "request while the adapter is up"
echo "== the operator HTTP endpoint: probes, metrics, dashboard, JSON API"
curl -fsS "http://$HTTP/healthz" >/dev/null || fail "GET /healthz"
curl -fsS "http://$HTTP/readyz" >/dev/null || fail "GET /readyz"
curl -fsS "http://$HTTP/metrics" >metrics.txt && grep -q '^lth_' metrics.txt || fail "GET /metrics"
curl -fsS "http://$HTTP/" >/dev/null || fail "GET / (dashboard)"
for cmd in status members queues flows "dlq list"; do
  # shellcheck disable=SC2086 # "dlq list" is two words
  "$BIN/hubctl" $cmd --url "http://$HTTP" --token-file operator.token >/dev/null ||
    fail "hubctl $cmd"
done

echo "== a request outside the agreements is refused"
rc=0
"$BIN/hubctl" request $ECHO other/v1 --data x --timeout 20000 >/dev/null 2>&1 || rc=$?
[ $rc -eq 4 ] || fail "a request outside the policy exited $rc, expected 4 (refused)"

echo "== echo adapter killed (SIGKILL); 3 durable requests wait for it in the store"
stop_echo KILL
for i in 1 2 3; do
  rc=0
  request "durable $i" 3000 >/dev/null 2>&1 || rc=$?
  [ $rc -eq 5 ] || fail "durable request $i exited $rc, expected 5 (timed out, kept)"
done
start_echo
# Delivery is in order per receiver: once this one is answered, so were those.
echoed "after restart 1" || fail "request after restart 1"

echo "== reload 1: the adapter's key removed (it is cut off)"
mv keys/VN.GOV.TEST.ECHO.pub .
reload 1
rc=0
ping_echo >/dev/null 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "ping answered by a member whose key was removed"
echo "== reload 2: the key back (the adapter reconnects by itself)"
mv VN.GOV.TEST.ECHO.pub keys/
reload 2
wait_for $WAIT_S ping_echo || fail "the adapter did not come back after reload 2"

echo "== echo adapter stopped (SIGTERM) and started again"
stop_echo TERM
rc=0
request "durable 4" 3000 >/dev/null 2>&1 || rc=$?
[ $rc -eq 5 ] || fail "durable request 4 exited $rc, expected 5 (timed out, kept)"
start_echo
echoed "after restart 2" || fail "request after restart 2"
ping_echo >/dev/null || fail "ping after restart 2"
stop_echo TERM

echo "== SIGTERM; waiting for hubd (and valgrind's leak check) to finish"
kill -TERM "$hubd_pid"
status=0
for _ in $(seq $((WAIT_S * 2 * 10))); do
  kill -0 "$hubd_pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$hubd_pid" 2>/dev/null && fail "hubd did not exit within $((WAIT_S * 2)) s of SIGTERM"
wait "$hubd_pid" || status=$?
hubd_pid=
"$BIN/hubctl" audit verify data/audit --hub-key secrets/VN.GOV.HN-LGSP.HUB.pub >audit.txt 2>&1 ||
  { cat audit.txt >&2; fail "the audit log does not verify"; }

grep -E "ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|All heap blocks" valgrind.log | sed 's/^/   /'
case $status in
  0) echo "== valgrind: no errors, no leaks; hubd exited cleanly" ;;
  99) fail "valgrind reported errors or leaks" ;;
  *) fail "hubd exited with status $status" ;;
esac
