#!/usr/bin/env bash
# tests/ha/run.sh [BUILD_DIR] — the database and a hub node fail while
# durable traffic flows, and nothing ACKed is lost or handled twice.
#
# On 127.0.0.1, free ports, one temporary directory: one etcd; Patroni with
# two PostgreSQL servers (a primary and a synchronous standby,
# synchronous_mode_strict: no commit is acknowledged without the standby);
# two hubd nodes of one hub (cluster = on) whose store_dsn lists both
# servers with target_session_attrs=read-write; a receiver (hub-adapter with
# the recorder plugin) on node B and a sender (tests/ha/ha_sender.c, the
# SDK, with both nodes' endpoints) on node A. While the events flow:
# kill -9 node A (the sender moves to node B); later kill -9 the primary's
# Patroni and PostgreSQL (Patroni promotes the standby); later start both
# again. At the end: every ACKed event handled, none twice, and
# `hubctl audit verify` over both nodes' audit logs. Prints the figures and
# "N passed, N failed". Stops by itself (a watchdog), and removes every
# process and the directory whatever happens. As root, PostgreSQL and
# Patroni run as the postgres user. Needs: patroni, etcd-server,
# etcd-client, postgresql (scripts/install-deps.sh).
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
LIMIT=${HA_LIMIT_S:-240}
COUNT=${HA_COUNT:-4000}
RATE=${HA_RATE:-100}

for tool in etcd etcdctl patroni; do
  command -v $tool >/dev/null || { echo "ha: $tool is not installed: run scripts/install-deps.sh" >&2; exit 2; }
done
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$pgbin/initdb" ] || { echo "ha: PostgreSQL is not installed: run scripts/install-deps.sh" >&2; exit 2; }
for b in bin/hubd bin/hubctl bin/hub-adapter tests/ha_sender lib/plugins/lth-recorder.so; do
  [ -e "$build/$b" ] || { echo "ha: $build/$b is missing: build first (scripts/build.sh release)" >&2; exit 2; }
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/lthha.XXXXXX")
chmod 0755 "$dir"
as=""
# setpriv execs (runuser would stay as the parent, and a kill -9 of it
# would leave Patroni running).
if [ "$(id -u)" = 0 ]; then as="setpriv --reuid=postgres --regid=postgres --init-groups"; fi
pids=()
t0=$(date +%s.%N)
since() { awk -v a="$(date +%s.%N)" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }
log() { printf '[ha %6ss] %s\n' "$(since "$t0")" "$*"; }
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "${watchdog:-}" ] && kill "$watchdog" 2>/dev/null || true
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  # Patroni's PostgreSQL children (their postmasters were started by it).
  for d in "$dir"/pg1 "$dir"/pg2; do
    [ -f "$d/postmaster.pid" ] && kill -9 "$(head -1 "$d/postmaster.pid")" 2>/dev/null || true
  done
  sleep 0.5
  if [ $rc -ne 0 ] && [ -z "${HA_KEEP:-}" ]; then
    for f in "$dir"/*.log; do echo "--- $f (last lines)" >&2; tail -n 15 "$f" >&2; done
  fi
  [ -n "${HA_KEEP:-}" ] && echo "ha: kept $dir" >&2 || rm -rf "$dir"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
( sleep "$LIMIT"; echo "ha: over ${LIMIT}s: stopping" >&2; kill -TERM $$ ) &
watchdog=$!

ports=($(python3 -c '
import socket
ss=[socket.socket() for _ in range(12)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))'))
ETCD=${ports[0]} ETCDP=${ports[1]} PG1=${ports[2]} PG2=${ports[3]} API1=${ports[4]} API2=${ports[5]}
HUBA=${ports[6]} HUBB=${ports[7]} LINKA=${ports[8]} LINKB=${ports[9]}

# ---- etcd ---------------------------------------------------------------
etcd --name e1 --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$ETCD" \
  --advertise-client-urls "http://127.0.0.1:$ETCD" --listen-peer-urls "http://127.0.0.1:$ETCDP" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCDP" --initial-cluster "e1=http://127.0.0.1:$ETCDP" \
  >"$dir/etcd.log" 2>&1 &
pids+=($!)

# ---- Patroni: two PostgreSQL servers ---------------------------------------
patroni_conf() { # NAME PGPORT APIPORT
  cat <<EOF
scope: lth-ha
namespace: /lth/
name: $1
restapi: {listen: "127.0.0.1:$3", connect_address: "127.0.0.1:$3"}
etcd3: {hosts: "127.0.0.1:$ETCD"}
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    maximum_lag_on_failover: 16777216
    synchronous_mode: true
    synchronous_mode_strict: true
    postgresql:
      use_pg_rewind: true
      parameters: {wal_log_hints: "on", max_connections: 60, fsync: "on", synchronous_commit: "on"}
  initdb: [{encoding: UTF8}, {locale: C}]
postgresql:
  listen: "127.0.0.1:$2"
  connect_address: "127.0.0.1:$2"
  data_dir: "$dir/$1"
  bin_dir: "$pgbin"
  pgpass: "$dir/pgpass-$1"
  use_pg_rewind: true
  remove_data_directory_on_rewind_failure: true
  parameters: {unix_socket_directories: "$dir"}
  authentication:
    superuser: {username: postgres, password: ha}
    replication: {username: replicator, password: ha}
    rewind: {username: postgres, password: ha}
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
tags: {nofailover: false, noloadbalance: false, clonefrom: false, nosync: false}
EOF
}
patroni_conf pg1 "$PG1" "$API1" >"$dir/pg1.yml"
patroni_conf pg2 "$PG2" "$API2" >"$dir/pg2.yml"
[ -n "$as" ] && chown -R postgres: "$dir"
start_patroni() { # NAME -> pid in $!
  $as env HOME="$dir" PATH="$pgbin:$PATH" patroni "$dir/$1.yml" >>"$dir/patroni-$1.log" 2>&1 &
  pids+=($!)
}
role_of() { curl -s -m 1 "http://127.0.0.1:$1/patroni" 2>/dev/null | python3 -c \
  'import json,sys; d=json.load(sys.stdin); print(d.get("role","?"), d.get("state","?"))' 2>/dev/null || echo "down"; }
wait_for() { # SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local end=$(( $(date +%s) + limit ))
  until "$@"; do
    [ "$(date +%s)" -lt "$end" ] || { log "timed out waiting for $what"; return 1; }
    sleep 0.2
  done
}
sync_standby_ok() { # a synchronous standby streams: commits can be acknowledged
  psql_q "$1" "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'" | grep -qx 1
}
psql_q() { "$pgbin/psql" -X -A -t -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2" 2>/dev/null; }

wait_for 20 "etcd" etcdctl --endpoints "127.0.0.1:$ETCD" endpoint health >/dev/null 2>&1
start_patroni pg1; p1=$!
wait_for 60 "pg1 to lead" bash -c "curl -s -m1 http://127.0.0.1:$API1/patroni | grep -q '\"role\": \"master\"\|\"role\": \"primary\"'"
start_patroni pg2; p2=$!
wait_for 90 "a synchronous standby" sync_standby_ok "$PG1"
log "PostgreSQL: pg1 $(role_of "$API1"), pg2 $(role_of "$API2"), synchronous"

# ---- two hubd nodes -------------------------------------------------------
mkdir -p "$dir/keys" "$dir/secrets" "$dir/a" "$dir/b"
HUB=VN/GOV/HN-LGSP/HUB SND=VN/GOV/HN-VP/TTHC RCV=VN/GOV/VPCP/DVCQG
for m in "$HUB" "$SND" "$RCV"; do "$build/bin/hubctl" keygen "$m" "$dir/secrets" >/dev/null; done
cp "$dir/secrets/"VN.GOV.HN-VP.TTHC.pub "$dir/secrets/"VN.GOV.VPCP.DVCQG.pub "$dir/keys/"
dsn="host=127.0.0.1,127.0.0.1 port=$PG1,$PG2 dbname=postgres user=postgres target_session_attrs=read-write connect_timeout=3"
for n in a b; do
  hp=$HUBA lp=$LINKA; [ $n = b ] && hp=$HUBB lp=$LINKB
  cat >"$dir/$n/hubd.conf" <<EOF
listen = tcp://127.0.0.1:$hp
key_file = $dir/secrets/VN.GOV.HN-LGSP.HUB.secret
key_dir = $dir/keys
data_dir = $dir/$n/data
heartbeat_ms = 500
redelivery_ms = 1000
store = postgresql
store_dsn = $dsn
store_migrate = yes
cluster = on
node_id = node-$n
cluster_beat_ms = 500
cluster_listen = tcp://127.0.0.1:$lp
EOF
done
start_hub() { # a|b
  "$build/bin/hubd" --config "$dir/$1/hubd.conf" >>"$dir/hubd-$1.log" 2>&1 &
  pids+=($!)
  eval "hub_$1=$!"
  wait_for 30 "hubd node $1" grep -q 'msg="listening"' "$dir/hubd-$1.log"
}
start_hub a
start_hub b
cat >"$dir/receiver.conf" <<EOF
hub_endpoints = tcp://127.0.0.1:$HUBB, tcp://127.0.0.1:$HUBA
hub_key_file = $dir/secrets/VN.GOV.HN-LGSP.HUB.pub
member_key_file = $dir/secrets/VN.GOV.VPCP.DVCQG.secret
state_dir = $dir/receiver-state
plugin = $build/lib/plugins/lth-recorder.so
plugin.file = $dir/received.txt
EOF
"$build/bin/hub-adapter" --config "$dir/receiver.conf" >"$dir/receiver.log" 2>&1 &
pids+=($!)
wait_for 20 "the receiver" grep -q 'msg="serving"' "$dir/receiver.log"
log "hubd node-a :$HUBA, node-b :$HUBB (cluster); receiver on node-b"

# ---- traffic and faults ------------------------------------------------------
touch "$dir/acked.txt"
"$build/tests/ha_sender" "tcp://127.0.0.1:$HUBA, tcp://127.0.0.1:$HUBB" \
  "$dir/secrets/VN.GOV.HN-LGSP.HUB.pub" "$dir/secrets/VN.GOV.HN-VP.TTHC.secret" \
  "$dir/sender-state" "$RCV" "$COUNT" "$RATE" "$dir/acked.txt" $((LIMIT - 60)) \
  >"$dir/sender.log" 2>&1 &
sender=$!
pids+=($sender)
acked() { wc -l <"$dir/acked.txt"; }
# Seconds from now until the ACK count grows past what it is now.
until_writes_resume() {
  local before; before=$(acked)
  local s; s=$(date +%s.%N)
  wait_for 120 "writes to resume" bash -c "[ \$(wc -l <'$dir/acked.txt') -gt $before ]" || return 1
  since "$s"
}
wait_for 30 "the first ACKs" bash -c "[ \$(wc -l <'$dir/acked.txt') -gt 200 ]"

log "kill -9 hubd node-a (the sender's node) at $(acked) ACKed"
kill -9 "$hub_a"
hub_resume=$(until_writes_resume)
log "writes resumed after ${hub_resume}s (the sender moved to node-b)"
sleep 3

primary_api=$API1 primary=pg1 primary_pid=$p1 standby=pg2 standby_api=$API2 standby_port=$PG2
if ! role_of "$API1" | grep -q -e master -e primary; then
  primary_api=$API2 primary=pg2 primary_pid=$p2 standby=pg1 standby_api=$API1 standby_port=$PG1
fi
log "kill -9 the primary ($primary: Patroni and PostgreSQL) at $(acked) ACKed"
pgpid=$(head -1 "$dir/$primary/postmaster.pid")
kill -9 "$primary_pid" "$pgpid"
s=$(date +%s.%N)
wait_for 60 "Patroni to promote $standby" bash -c "curl -s -m1 http://127.0.0.1:$standby_api/patroni | grep -q '\"role\": \"master\"\|\"role\": \"primary\"'"
promoted=$(since "$s")
log "$standby promoted after ${promoted}s; strict synchronous mode: commits wait for a standby"
sleep 2
log "start $primary again (it rejoins as the synchronous standby) and hubd node-a"
start_patroni "$primary"
start_hub a
r=$(until_writes_resume)
db_resume=$(since "$s")
log "writes resumed ${db_resume}s after the primary was killed"

wait_for $((LIMIT - 30)) "the sender to finish" bash -c "! kill -0 $sender 2>/dev/null" || true
sender_rc=0; wait "$sender" || sender_rc=$?
cat "$dir/sender.log"
# Everything ACKed has reached the receiver (redelivery after the faults).
n_acked=$(acked)
wait_for 60 "the receiver to catch up" bash -c "[ \$(grep -c 'ha ' '$dir/received.txt' 2>/dev/null || echo 0) -ge $n_acked ]" || true
sleep 2

# ---- verdict ----------------------------------------------------------------
read -r lost dup handled < <(python3 - "$dir/acked.txt" "$dir/received.txt" <<'EOF'
import sys, collections
acked = set(l.strip() for l in open(sys.argv[1]) if l.strip())
seen = collections.Counter()
for line in open(sys.argv[2]):
    parts = line.rstrip("\n").split("\t")
    if len(parts) >= 3 and parts[2].startswith("ha "):
        seen[parts[1]] += 1
lost = len([i for i in acked if seen[i] == 0])
dup = len([i for i, n in seen.items() if n > 1])
print(lost, dup, len(seen))
EOF
)
kill -TERM "$hub_a" "$hub_b" 2>/dev/null || true
sleep 1
audit_rc=0
"$build/bin/hubctl" audit verify "$dir/a/data/audit" "$dir/b/data/audit" \
  --hub-key "$dir/secrets/VN.GOV.HN-LGSP.HUB.pub" >"$dir/audit.txt" 2>&1 || audit_rc=$?
cat "$dir/audit.txt"
# Two nodes' commits must never deadlock in PostgreSQL (hub_store_pg_conn.c:
# one lock order); a commit cut by the faults is answered UNAVAILABLE, that
# is not a deadlock.
deadlocks=$(cat "$dir"/hubd-a.log "$dir"/hubd-b.log 2>/dev/null | grep -c 'sqlstate=40P01' || true)
passed=0 failed=0
check() { if eval "$2"; then passed=$((passed + 1)); echo "ok: $1"; else failed=$((failed + 1)); echo "FAILED: $1"; fi; }
echo "== ha: messages $COUNT, ACKed $n_acked, handled $handled, lost $lost, duplicated $dup;" \
     "writes resumed ${hub_resume}s after kill -9 of a hub node, ${db_resume}s after kill -9 of" \
     "the PostgreSQL primary (standby promoted after ${promoted}s); deadlocks $deadlocks"
check "the sender had every event ACKed" "[ $sender_rc -eq 0 ] && [ $n_acked -eq $COUNT ]"
check "no ACKed event lost" "[ $lost -eq 0 ]"
check "no event handled twice" "[ $dup -eq 0 ]"
check "hubctl audit verify passes on both nodes' logs" "[ $audit_rc -eq 0 ]"
check "no deadlock between the nodes' commits (40P01)" "[ $deadlocks -eq 0 ]"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
