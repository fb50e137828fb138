#!/usr/bin/env bash
# The dashboard in a real browser: starts hubd (HTTP on an ephemeral
# 127.0.0.1 port) with 200 extra registered members, an echo adapter and a
# hubctl configuration, then runs dashboard_test.py (Python + Selenium
# driving Debian's headless chromium through chromedriver), which sends
# traffic with hubctl and checks that the page shows members and flows and
# updates them. Saves screenshots to $HUB_ARTIFACTS/.
#
# Needs Debian 12's python3-selenium, chromium and chromium-driver
# (scripts/install-deps.sh); a missing one fails the test with the package
# to install, never a silent pass.
#
# Environment (set by ctest): HUB_BIN_DIR, HUB_PLUGIN_DIR, HUB_ARTIFACTS,
# CHROMIUM, CHROMEDRIVER. HUB_TEST_KEEP=1 keeps the hub's directory.
set -euo pipefail
# hubd refuses key directories and policy files that group or others may write.
umask 022

here="$(cd "$(dirname "$0")" && pwd)"
bin="${HUB_BIN_DIR:?set HUB_BIN_DIR to the bin directory of the build}"
plugins="${HUB_PLUGIN_DIR:?set HUB_PLUGIN_DIR}"
artifacts="${HUB_ARTIFACTS:-$(pwd)/test-artifacts}"
chromium="${CHROMIUM:-/usr/bin/chromium}"
chromedriver="${CHROMEDRIVER:-/usr/bin/chromedriver}"
python=/usr/bin/python3
mkdir -p "$artifacts"

missing=()
[ -x "$python" ] || missing+=("python3 ($python)")
[ -x "$chromium" ] || missing+=("chromium ($chromium)")
[ -x "$chromedriver" ] || missing+=("chromium-driver ($chromedriver)")
if [ -x "$python" ] && ! "$python" -c 'import selenium' 2>/dev/null; then
  missing+=("python3-selenium")
fi
if ((${#missing[@]})); then
  echo "browser test: missing ${missing[*]}; install with scripts/install-deps.sh" \
       "(apt-get install python3-selenium chromium chromium-driver)" >&2
  exit 1
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/lthbrowser.XXXXXX")"
pids=()
cleanup() {
  status=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  # A sanitizer report from any process fails the test.
  if grep -l -E "AddressSanitizer|LeakSanitizer|runtime error:" "$dir"/*.log 2>/dev/null; then
    echo "browser test: sanitizer report in the logs above" >&2
    status=1
  fi
  if [ "${HUB_TEST_KEEP:-0}" = 1 ] || [ "$status" != 0 ]; then
    echo "browser test: kept $dir" >&2
  else
    rm -rf "$dir"
  fi
  exit "$status"
}
trap cleanup EXIT

hub_id="VN/GOV/HN-LGSP/HUB"
echo_id="VN/GOV/BCA/CSDLQGDC"
ops_id="VN/GOV/HN-LGSP/OPS"
mkdir -p "$dir/keys" "$dir/secrets"
keygen() { "$bin/hubctl" keygen "$1" "$dir/secrets" >/dev/null; }
keygen "$hub_id"
keygen "$echo_id"
keygen "$ops_id"
cp "$dir/secrets/VN.GOV.BCA.CSDLQGDC.pub" "$dir/secrets/VN.GOV.HN-LGSP.OPS.pub" "$dir/keys/"
# 200 more members that never connect: the page must stay readable.
for i in $(seq -w 1 200); do echo "VN/GOV/HN-UBND-Q$i/MOTCUA"; done |
  xargs -P 4 -I{} "$bin/hubctl" keygen {} "$dir/secrets" >/dev/null
cp "$dir"/secrets/VN.GOV.HN-UBND-Q*.pub "$dir/keys/"

# The member directory: the echo member and the operator have agency names;
# the 200 others are not listed (the page shows their ids alone).
printf '# test directory\nmember_id\tname\tunit\tcontact\n%s\t%s\t%s\t%s\n%s\t%s\t%s\t\n' \
  "$echo_id" "Bộ Công an" "Cơ sở dữ liệu quốc gia về dân cư" "ketnoi.dancu@bca.example.vn" \
  "$ops_id" "Sở Thông tin và Truyền thông Hà Nội" "Tổ vận hành LGSP" > "$dir/members.tsv"

echo "browser-test-token" > "$dir/token"
chmod 600 "$dir/token"
cat > "$dir/hubd.conf" <<EOF
listen = tcp://127.0.0.1:*
key_file = secrets/VN.GOV.HN-LGSP.HUB.secret
key_dir = keys
data_dir = data
heartbeat_ms = 500
http_listen = 127.0.0.1:0
http_token_file = token
members_file = members.tsv
EOF
"$bin/hubd" --config "$dir/hubd.conf" --ready-file "$dir/hubd.ready" >"$dir/hubd.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do [ -s "$dir/hubd.ready" ] && break; sleep 0.05; done
[ -s "$dir/hubd.ready" ] || { echo "hubd did not start; see $dir/hubd.log" >&2; exit 1; }
endpoint="$(sed -n 's/^endpoint=//p' "$dir/hubd.ready")"
http="$(sed -n 's/^http=//p' "$dir/hubd.ready")"

cat > "$dir/adapter.conf" <<EOF
hub_endpoint = $endpoint
hub_key_file = $dir/secrets/VN.GOV.HN-LGSP.HUB.pub
member_key_file = $dir/secrets/VN.GOV.BCA.CSDLQGDC.secret
plugin = $plugins/lth-echo.so
EOF
"$bin/hub-adapter" --config "$dir/adapter.conf" >"$dir/adapter.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do grep -q 'msg="serving"' "$dir/adapter.log" && break; sleep 0.05; done
grep -q 'msg="serving"' "$dir/adapter.log" || { echo "adapter did not start" >&2; exit 1; }

cat > "$dir/hubctl.conf" <<EOF
hub_endpoint = $endpoint
hub_key_file = secrets/VN.GOV.HN-LGSP.HUB.pub
member_key_file = secrets/VN.GOV.HN-LGSP.OPS.secret
http_url = http://$http
http_token_file = token
EOF

HUB_URL="http://$http/" HUBCTL="$bin/hubctl" HUBCTL_CONFIG="$dir/hubctl.conf" \
  HUB_TOKEN="browser-test-token" ECHO_MEMBER="$echo_id" OPS_MEMBER="$ops_id" \
  HUB_ARTIFACTS="$artifacts" CHROMIUM="$chromium" CHROMEDRIVER="$chromedriver" \
  TZ=UTC "$python" "$here/dashboard_test.py"
