#!/usr/bin/env bash
# The README's run command: installs what is missing, builds, generates fresh
# keys, starts hubd with the dossier flow's adapters on the embedded store —
# the National Population Database, the city's procedure system, four sector
# systems, the National Public Service Portal and reporting — submits a set
# of SYNTHETIC dossiers (some with invalid ID numbers, some for citizens who
# do not exist), stops and restarts adapters while the dossiers flow, and
# prints each dossier's trail and the report. Birth registration is delegated
# per procedure (ủy quyền) by the Department of Justice to the Hoàn Kiếm
# one-stop shop, and `hubctl delegations` shows what the rule carried; the
# procedure catalogue is read from a file of announcing decisions
# (deploy/catalogue-hn.tsv), amended while the hub runs, and the national
# catalogue acknowledges the change. Enterprise registration passes two
# authorities (liên thông: the Department of Planning and Investment, then
# the Hoàn Kiếm one-stop shop), results are handed over, and the portal plays
# the applicants: it pays the fees of online dossiers (payment.status/v1,
# sometimes a declined card first) and rates decided dossiers
# (feedback.submit/v1), so that the period report's "paid online %" and
# "satisfaction" and its delegation section have something to show.
#
#   scripts/demo.sh           then keeps running (a dossier every second)
#                             until Ctrl-C; stop any adapter meanwhile
#                             (kill PID): it is started again and loses nothing
#   scripts/demo.sh --once    exits after the report
#
# The operator dashboard is on: the script prints its URL (127.0.0.1, an
# ephemeral port unless DEMO_HTTP_PORT says which) and where the operator
# token is (a fresh random one, in a 0600 file; never printed).
#
# Ctrl-C stops it and everything it started, in the foreground or the
# background (`scripts/demo.sh &`, then `kill -INT PID`, `kill PID` or
# closing the terminal).
#
# Everything lives under run/demo/ (not committed; DEMO_DIR moves it). DEMO_DOSSIERS (default
# 20) sets how many dossiers the first batch has; PROCEDURE_EXTRA, lines of
# plugin.* settings, is added to the procedure system's configuration. With HUB_BIN_DIR set, the
# programs there are used and nothing is installed or built.
set -euo pipefail
# A shell started in the background without job control begins with SIGINT
# ignored, and bash cannot trap a signal ignored on entry: start again with
# the default actions, so that the traps below work wherever it runs.
if [ -z "${LTH_DEMO_SIGNALS:-}" ]; then
  export LTH_DEMO_SIGNALS=1
  exec env --default-signal=INT,TERM,HUP,QUIT "$BASH" "$0" "$@"
fi
# hubd refuses key directories and policy files that group or others may write.
umask 022
cd "$(dirname "$0")/.."
ROOT=$PWD
once=0
[ "${1:-}" = "--once" ] && once=1
N=${DEMO_DOSSIERS:-20}

if [ -n "${HUB_BIN_DIR:-}" ]; then
  BIN=$HUB_BIN_DIR
else
  scripts/install-deps.sh
  echo "== building"
  scripts/build.sh release programs
  BIN=$ROOT/build/bin
fi

DEMO=${DEMO_DIR:-$ROOT/run/demo}
declare -A pid=() member_of=() plugin_of=() extra_of=() tick_of=()
hubd_pid=
cleanup() {
  trap - EXIT INT TERM
  for name in "${!pid[@]}"; do kill "${pid[$name]}" 2>/dev/null || true; done
  [ -n "$hubd_pid" ] && kill "$hubd_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo; echo "== stopping"; exit 0' INT TERM HUP QUIT

rm -rf "$DEMO"
mkdir -p "$DEMO/keys" "$DEMO/secrets" "$DEMO/state"
cd "$DEMO"

HUB=VN/GOV/HN-LGSP/HUB
OPS=VN/GOV/HN-LGSP/OPS
POP=VN/GOV/BCA/CSDLQGDC
TTHC=VN/GOV/HN-VP/TTHC
PORTAL=VN/GOV/VPCP/DVCQG
REPORT=VN/GOV/HN-VP/BAOCAO
CATALOGUE=VN/GOV/VPCP/CSDLTTHC
SECTORS="VN/GOV/HN-SKHDT/DKKD VN/GOV/HN-STP/HOTICH VN/GOV/HN-QHK/MOTCUA VN/GOV/HN-STNMT/DATDAI"
echo "== generating keys (secret files are mode 0600 and never printed)"
for m in $HUB $OPS $POP $TTHC $PORTAL $REPORT $CATALOGUE $SECTORS; do
  "$BIN/hubctl" keygen "$m" secrets >/dev/null
  [ "$m" = $HUB ] || cp "secrets/${m//\//.}.pub" keys/
done

# hubd refuses a policy file others may write; a checkout unpacked from a
# tarball as root keeps the tarball's 0664: use copies this run owns.
for f in members.tsv policy-demo.conf disclosure-demo.conf; do
  install -m 0644 "$ROOT/deploy/$f" "$f"
done

# The operator token for the dead-letter queue: random, readable by this
# user only, never printed.
(umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > operator.token)
cat > hubd.conf <<CONF
listen = tcp://127.0.0.1:*
# The operator HTTP endpoint (dashboard, /metrics, JSON API), loopback only.
http_listen = 127.0.0.1:${DEMO_HTTP_PORT:-0}
http_token_file = operator.token
# Agency names beside member ids on the dashboard and in hubctl members.
members_file = members.tsv
key_file = secrets/VN.GOV.HN-LGSP.HUB.secret
key_dir = keys
data_dir = data
redelivery_ms = 1000
# Deny by default: only the flows of the data-sharing agreements go through.
policy_file = policy-demo.conf
# Ủy quyền per procedure (deploy/delegations.conf.example).
delegations_file = delegations.conf
CONF
# Birth registration (SYN-1.000001), and only it, is resolved by the Hoàn
# Kiếm one-stop shop on behalf of the Department of Justice: the hub routes
# by the procedure the procedure system signs into each dossier's envelope.
cat > delegations.conf <<CONF
delegate VN/GOV/HN-STP/HOTICH/dossier.submit/v1 -> VN/GOV/HN-QHK/MOTCUA procedure SYN-1.000001 from 2025-01-01
CONF
# The catalogue the procedure system publishes: a copy, amended below.
cp "$ROOT/deploy/catalogue-hn.tsv" catalogue-hn.tsv
"$BIN/hubd" --config hubd.conf --ready-file hubd.ready >hubd.log 2>&1 &
hubd_pid=$!
for _ in $(seq 100); do [ -s hubd.ready ] && break; sleep 0.1; done
[ -s hubd.ready ] || { echo "hubd did not start:"; cat hubd.log; exit 1; }
ENDPOINT=$(sed -n 's/^endpoint=//p' hubd.ready)
HTTP=$(sed -n 's/^http=//p' hubd.ready)
echo "== hubd listening on $ENDPOINT (log: $DEMO/hubd.log)"
dashboard() {
  echo "== dashboard: http://$HTTP/  (English: http://$HTTP/?lang=en)"
  echo "   operator token (for the dead-letter queue): in $DEMO/operator.token"
}
dashboard

# start NAME: (re)starts the adapter NAME with its config; waits until it serves.
start() {
  local name=$1 slug=${member_of[$1]//\//.}
  cat > "$name.conf" <<CONF
hub_endpoint = $ENDPOINT
hub_key_file = secrets/VN.GOV.HN-LGSP.HUB.pub
member_key_file = secrets/$slug.secret
plugin = ${plugin_of[$name]}
state_dir = state/$name
tick_ms = ${tick_of[$name]:-200}
${extra_of[$name]}
CONF
  : > "$name.log"
  "$BIN/hub-adapter" --config "$name.conf" >>"$name.log" 2>&1 &
  pid[$name]=$!
  for _ in $(seq 200); do grep -q 'msg="serving"' "$name.log" && return 0; sleep 0.05; done
  echo "adapter $name did not start:"; cat "$name.log"; exit 1
}
adapter() { # NAME MEMBER PLUGIN EXTRA-CONFIG
  member_of[$1]=$2 plugin_of[$1]=$3 extra_of[$1]=$4
  start "$1"
}

# A "day" of the procedures' legal time limits lasts 300 ms here, so that a
# 30-day procedure is due after 9 s.
DAY_MS=300
adapter population $POP population "plugin.db = population.db
plugin.citizens = 10000
plugin.seed = 1
plugin.disclosure_file = disclosure-demo.conf"
# The portal also plays the applicants (plugin.simulate_*): it pays the fees
# of most online dossiers and rates most decided ones. The fees are those of
# its own copy of the catalogue the procedure system publishes through the
# hub (as reporting's names are): neither reads the procedure system's file.
adapter portal $PORTAL portal "plugin.db = portal.db
plugin.simulate_payments = 90
plugin.simulate_ratings = 80
plugin.seed = 3"
adapter report $REPORT report "plugin.db = report.db"
# The national TTHC database subscribes to the city's procedure catalogue.
adapter catalogue $CATALOGUE catalogue "plugin.file = catalogue.txt
plugin.publisher = $TTHC"
for m in $SECTORS; do
  name=sector-${m##*/}
  adapter "$name" "$m" sector "plugin.db = $name.db
plugin.seed = 2"
done
# Liên thông: enterprise registration passes the Department of Planning and
# Investment, then the Hoàn Kiếm one-stop shop, each on its own limit.
CHAIN="SYN-1.000004: VN/GOV/HN-SKHDT/DKKD (2 working days) > VN/GOV/HN-QHK/MOTCUA (1 working day)"
procedure_conf() { # DOSSIERS RATE
  echo "plugin.db = procedure.db
plugin.dossiers = $1
plugin.rate_per_tick = $2
plugin.seed = 1
plugin.population_seed = 1
plugin.population_citizens = 10000
plugin.invalid_percent = 10
plugin.unknown_percent = 10
plugin.low_assurance_percent = 10
plugin.mismatch_percent = 10
plugin.day_ms = $DAY_MS
plugin.overdue_grace_ms = 300
plugin.catalogue_file = catalogue-hn.tsv
plugin.catalogue_status = catalogue.status
plugin.online_percent = 70
plugin.hand_over_results = 1
plugin.statistics_ms = 2000
plugin.chains = $CHAIN${PROCEDURE_EXTRA:+
$PROCEDURE_EXTRA}"
}
echo "== adapters serving: population $POP, portal $PORTAL, report $REPORT,"
echo "   sector systems $SECTORS (logs: $DEMO/*.log)"
echo "== the procedure system $TTHC submits $N synthetic dossiers"
adapter procedure $TTHC procedure "$(procedure_conf "$N" 2)"

trail() { "$BIN/lth-trail" --procedure procedure.db --portal portal.db --report report.db "$@"; }

sleep 1
echo "== stopping the portal adapter (SIGTERM) while statuses flow: the hub keeps them"
kill "${pid[portal]}"; wait "${pid[portal]}" 2>/dev/null || true
sleep 0.5
echo "== killing the land-registry sector system (SIGKILL) in the middle of its work"
kill -9 "${pid[sector-DATDAI]}"; wait "${pid[sector-DATDAI]}" 2>/dev/null || true
sleep 2
echo "   $(trail --summary)"
echo "== starting both again"
start portal
start sector-DATDAI
cat > hubctl.conf <<CONF
hub_endpoint = $ENDPOINT
hub_key_file = secrets/VN.GOV.HN-LGSP.HUB.pub
member_key_file = secrets/${OPS//\//.}.secret
http_url = http://$HTTP
http_token_file = operator.token
CONF
export LTH_HUBCTL_CONFIG=$DEMO/hubctl.conf
report() {
  echo "\$ hubctl report $*"
  "$BIN/hubctl" report "$@"
}
# A snapshot once a dossier is overdue (a late one is, until it is done).
for _ in $(seq 150); do
  summary=$(trail --summary 2>/dev/null || true)
  case "$summary" in *" open=0 "*) break ;; *" overdue=0 "*|"") sleep 0.2 ;; *) break ;; esac
done
echo "   $summary"
echo "== the report while dossiers are in flight"
report
echo
echo "== waiting until every dossier is decided, shown by the portal and counted"
trail --wait "$N" --timeout 90 --summary | sed 's/^/   /'
echo
echo "== each dossier's trail (times from submission)"
trail
echo "== the procedure catalogue, published by $TTHC through the hub (publish/subscribe),"
echo "   as the national TTHC database $CATALOGUE received it"
sed 's/^/   /' catalogue.txt
echo
echo "== ủy quyền: birth registration delegated per procedure to VN/GOV/HN-QHK/MOTCUA"
echo "\$ hubctl delegations"
"$BIN/hubctl" delegations | sed 's/^/   /'
echo
# A new announcing decision: enterprise registration amended (5 working
# days, a fee of 65 000 VND), a copy of a birth registration extract added (checked under the
# birth-registration agreement). SIGHUP makes the procedure
# system read the file again and publish the change; the national catalogue
# acknowledges it (or rejects it, saying why).
echo "== amending the catalogue (Quyết định 4001/QĐ-UBND, synthetic) and reloading it (SIGHUP)"
sed -i 's#^2214/QĐ-UBND\t2025-05-20\t2025-06-01\(\t.*\t\)3 working days\t50000\t#4001/QĐ-UBND\t2026-10-01\t2026-10-15\15 working days\t65000\t#' catalogue-hn.tsv
printf '4001/QĐ-UBND\t2026-10-01\t2026-10-15\tin-force\tSYN-1.000007\tCấp bản sao trích lục khai sinh\tCopy of a birth registration extract\tcommune\tVN/GOV/HN-STP/HOTICH\tsame working day\t8000\tTờ khai cấp bản sao trích lục hộ tịch\tfull\tlookup\t1\tbirth-registration\n' >> catalogue-hn.tsv
kill -HUP "${pid[procedure]}"
for _ in $(seq 100); do
  grep -q 'added SYN-1.000007: \(acknowledged\|rejected\)' catalogue.status 2>/dev/null && break
  sleep 0.1
done
echo "\$ cat catalogue.status   # the publisher's view: acknowledged, rejected or unacknowledged"
sed 's/^/   /' catalogue.status
echo "   the national catalogue now holds:"
grep -E 'SYN-1.00000[47]' catalogue.txt | sed 's/^/   /'
echo "   the portal's and reporting's own copies (from the same publications):"
for db in portal report; do
  sqlite3 -separator ' ' "$db.db" "SELECT '   $db:', code, name, fee_vnd || ' VND', limit_text FROM catalogue
    WHERE code IN ('SYN-1.000004', 'SYN-1.000007')" 2>/dev/null || true
done
# Fourteen more applicants, two for each procedure in force now (the new
# one included): plugin.dossiers raised, and the procedure system restarted.
M=$((N + 14))
echo "== fourteen more dossiers under the amended catalogue (plugin.dossiers = $M)"
kill "${pid[procedure]}"; wait "${pid[procedure]}" 2>/dev/null || true
extra_of[procedure]=$(procedure_conf "$M" 2)
start procedure
trail --wait "$M" --timeout 90 --summary | sed 's/^/   /'
trail | grep -A1 'SYN-1.000007 ' | sed 's/^/   /' || true
echo
echo "== the report at the end"
report
echo
report --csv --authority VN/GOV/HN-SKHDT/DKKD
echo
# The period report (issue 19 item 2), when this hubctl has it (an older
# one answers --from with its usage, and the step is left out).
today=$(date -u +%F)
if period=$("$BIN/hubctl" report --from "$today" --to "$today" 2>&1); then
  echo "== the period report"
  echo "\$ hubctl report --from $today --to $today"
  echo "$period"
  echo
  # Liên thông: each step of the chained procedure on its own limit (the
  # JSON answer's "steps").
  echo "\$ hubctl report --json --from $today --to $today --procedure SYN-1.000004   # its \"steps\""
  "$BIN/hubctl" report --json --from "$today" --to "$today" --procedure SYN-1.000004 2>&1 |
    grep -o '"steps":\[[^]]*\]' | sed 's/},{/},\n   {/g; s/^/   /' || true
  echo
fi
# Liên thông: one enterprise-registration dossier, which passed the
# Department of Planning and Investment, then the Hoàn Kiếm one-stop shop.
echo "== a liên thông dossier (plugin.chains: $CHAIN)"
trail | grep -A2 -m1 'SYN-1.000004 ' | sed 's/^/   /' || true
echo "== what the portal did as the applicants (payments, ratings; portal.log)"
grep -o 'simulated paid=[0-9]* rated=[0-9]*' portal.log | tail -1 | sed 's/^/   /' || true
echo
if [ $once = 1 ]; then
  # The audit log: every exchange is in it, the procedure system's online-
  # only identity look-ups included. Stopping hubd seals it.
  kill "${pid[procedure]}"; wait "${pid[procedure]}" 2>/dev/null || true
  unset "pid[procedure]"
  kill "$hubd_pid"; wait "$hubd_pid" 2>/dev/null || true
  hubd_pid=
  sent=$(sed -n 's/.*identity look-ups sent this run: \([0-9]*\).*/\1/p' procedure.log | tail -1)
  echo "== the audit log: the procedure system sent ${sent:-?} identity look-ups (procedure.log)"
  echo "\$ hubctl audit show data/audit --service citizen.lookup/v1 | tail -1"
  "$BIN/hubctl" audit show data/audit --service citizen.lookup/v1 | tail -1 | sed 's/^/   /'
  echo "\$ hubctl audit verify data/audit --hub-key secrets/VN.GOV.HN-LGSP.HUB.pub"
  "$BIN/hubctl" audit verify data/audit --hub-key secrets/VN.GOV.HN-LGSP.HUB.pub | sed 's/^/   /'
  echo "== demo done"
  exit 0
fi

# The live part: the procedure system goes on (a restart: it continues from
# where it stopped), one dossier a second; any adapter that stops is started
# again after 3 s.
kill "${pid[procedure]}"; wait "${pid[procedure]}" 2>/dev/null || true
extra_of[procedure]=$(procedure_conf 999999 1)
tick_of[procedure]=1000
start procedure
echo "== the hub is running; the procedure system submits a dossier a second."
echo "   Stop any adapter (it is started again 3 s later, and loses nothing):"
for name in $(echo "${!pid[@]}" | tr ' ' '\n' | sort); do
  printf '     kill %-7s # %s (%s)\n' "${pid[$name]}" "$name" "${member_of[$name]}"
done
echo "   Trails: $BIN/lth-trail --procedure $DEMO/procedure.db --portal $DEMO/portal.db --report $DEMO/report.db"
echo "   Operator CLI: export LTH_HUBCTL_CONFIG=$DEMO/hubctl.conf; $BIN/hubctl request $REPORT report.query/v1 --data '{\"format\":\"table\"}'"
echo "                 $BIN/hubctl members   (status, flows, queues, dlq list; LANG=en for English)"
dashboard
echo "Press Ctrl-C to stop (or kill -INT $$ when it runs in the background)."
declare -A down_since=()
ticks=0
stopping=
trap 'stopping=1' INT TERM HUP QUIT
while [ -z "$stopping" ] && kill -0 "$hubd_pid" 2>/dev/null; do
  sleep 1 || true
  [ -n "$stopping" ] && break
  for name in "${!pid[@]}"; do
    if ! kill -0 "${pid[$name]}" 2>/dev/null; then
      wait "${pid[$name]}" 2>/dev/null || true
      if [ -z "${down_since[$name]:-}" ]; then
        down_since[$name]=$SECONDS
        echo "== $name stopped; starting it again in 3 s"
      elif ((SECONDS - down_since[$name] >= 3)); then
        unset "down_since[$name]"
        start "$name"
        echo "== $name serving again (pid ${pid[$name]})"
      fi
    fi
  done
  if ((++ticks % 10 == 0)); then echo "   $(trail --summary)"; fi
done
if [ -n "$stopping" ]; then
  echo
  echo "== stopping"
  exit 0
fi
echo "hubd stopped; see $DEMO/hubd.log"
exit 1
