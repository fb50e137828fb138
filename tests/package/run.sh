#!/usr/bin/env bash
# The package test (issue 17): builds the Debian packages, checks them
# (dpkg-deb contents and metadata, lintian, the unit files with
# systemd-analyze), installs them with apt into a fresh Debian 12 minbase
# root filesystem, as a newcomer's server would have them, and there:
# checks the installed default configuration (hubd --check-config), starts
# hubd as the lienthong user from the installed files, runs the installed
# hub-adapter with a plugin, builds a small adapter out of tree with only
# pkg-config and the installed headers, and sends it a request through the
# hub; a backup of the running hub ends it.
#
#   tests/package/run.sh                 (from scripts/test.sh, or alone; as root)
#   LTH_PKG_BUILD=build                  build directory to package (default build/)
#   LTH_PKG_CACHE=/var/cache/lienthong-test   where the chroot tarball is kept
#   LTH_PKG_MIRROR=http://deb.debian.org/debian
#
# The minbase root filesystem is made once by debootstrap and cached as a
# tarball; later runs unpack it (seconds). Where debootstrap cannot run (no
# mirror), the test says so and installs the packages into a scratch prefix
# instead (dpkg-deb -x), still checking their contents. A missing tool is a
# failure, not a skip: scripts/install-deps.sh installs them all.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$PWD
build=${LTH_PKG_BUILD:-build}
cache=${LTH_PKG_CACHE:-/var/cache/lienthong-test}
mirror=${LTH_PKG_MIRROR:-http://deb.debian.org/debian}
start_time=$(date +%s)

say() { echo "package: $*"; }
fail() { echo "package: FAIL: $*" >&2; exit 1; }
elapsed() { echo "$(( $(date +%s) - start_time )) s"; }

for tool in cmake cpack dpkg-deb dpkg-architecture dpkg-shlibdeps lintian debootstrap systemd-analyze chroot \
            pkg-config gcc tar gzip readelf nm; do
  command -v "$tool" >/dev/null || fail "'$tool' is missing: run scripts/install-deps.sh (as root)"
done
[ "$(id -u)" -eq 0 ] || fail "must run as root (debootstrap, chroot, package ownership)"

work=$(mktemp -d /tmp/lth-package.XXXXXX)
root=$work/root
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$p" 2>/dev/null || true
  done
  if [ -d "$root/proc" ] && mountpoint -q "$root/proc"; then umount "$root/proc" || true; fi
  if [ -n "${HUB_TEST_KEEP:-}" ]; then echo "package: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# ---- 1. build and package ------------------------------------------------
say "building the programs and the SDK in $build (install prefix /usr)"
cmake -S . -B "$build" -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
nice -n 10 cmake --build "$build" -j "$(nproc)" --target programs adp_shared adp_static \
  >"$work/build.log" 2>&1 || { tail -40 "$work/build.log"; fail "build failed"; }
(cd "$build" && nice -n 10 cpack -G DEB -B "$work/debs" >"$work/cpack.log" 2>&1) ||
  { tail -40 "$work/cpack.log"; fail "cpack failed"; }
debs=("$work"/debs/*.deb)
[ ${#debs[@]} -eq 3 ] || fail "expected 3 packages, got: ${debs[*]##*/}"
hub_deb=$(ls "$work"/debs/lienthong-hub_*.deb)
adapter_deb=$(ls "$work"/debs/lienthong-adapter_*.deb)
dev_deb=$(ls "$work"/debs/liblienthong-adp-dev_*.deb)
say "packages: ${debs[*]##*/} ($(elapsed))"

# ---- 2. contents and metadata --------------------------------------------
has() { # has DEB PATH...: each path is in the package
  local deb=$1; shift
  local list; list=$(dpkg-deb -c "$deb" | awk '{print $6}')
  for p in "$@"; do
    grep -qx "\.$p" <<<"$list" || fail "${deb##*/} lacks $p"
  done
}
libdir=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)
has "$hub_deb" /usr/bin/hubd /usr/bin/hubctl /etc/lienthong/hubd.conf \
  /lib/systemd/system/hubd.service /usr/share/doc/lienthong-hub/copyright
has "$adapter_deb" /usr/bin/hub-adapter "$libdir/lienthong/plugins/lth-echo.so" \
  /lib/systemd/system/hub-adapter@.service
has "$dev_deb" /usr/include/lienthong/adp.h /usr/include/lienthong/hub_error.h \
  "$libdir/libadp.so.0.1.0" "$libdir/libadp.so" "$libdir/libadp.a" \
  "$libdir/pkgconfig/lienthong-adp.pc" "$libdir/cmake/lienthong-adp/lienthong-adpConfig.cmake"
dpkg-deb -f "$hub_deb" Depends | grep -q 'libzmq5' ||
  fail "lienthong-hub's Depends (from shlibdeps) lacks libzmq5: $(dpkg-deb -f "$hub_deb" Depends)"
dpkg-deb --ctrl-tarfile "$hub_deb" | tar -t | grep -qx './conffiles' || fail "no conffiles"
dpkg-deb -I "$hub_deb" conffiles | grep -qx /etc/lienthong/hubd.conf ||
  fail "/etc/lienthong/hubd.conf is not a conffile (an upgrade would overwrite it)"

# The SDK stands alone: the shared library has a SONAME and no undefined
# symbol of ours; the static one carries hub_common and the protobuf code.
x=$work/x; mkdir -p "$x"; dpkg-deb -x "$dev_deb" "$x"
readelf -d "$x$libdir/libadp.so.0.1.0" | grep -q 'SONAME.*\[libadp.so.0\]' || fail "libadp.so: no SONAME libadp.so.0"
if nm -D --undefined-only "$x$libdir/libadp.so.0.1.0" | grep -E ' (hub_|adp_|lth__)'; then
  fail "libadp.so leaves the symbols above undefined"
fi
undefined=$(nm --undefined-only "$x$libdir/libadp.a" 2>/dev/null | awk '/ U (hub_|lth__)/{print $2}' | sort -u)
defined=$(nm --defined-only "$x$libdir/libadp.a" 2>/dev/null | awk '$2 ~ /[TDRB]/{print $3}' | sort -u)
missing=$(comm -23 <(echo "$undefined") <(echo "$defined") | grep . || true)
[ -z "$missing" ] || fail "libadp.a needs symbols it does not carry: $missing"
# The CMake package finds and links the SDK from the unpacked tree.
mkdir -p "$work/cm"
cat >"$work/cm/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.20)
project(oot C)
find_package(lienthong-adp REQUIRED)
add_executable(oot_shared main.c)
target_link_libraries(oot_shared PRIVATE lienthong::adp)
add_executable(oot_static main.c)
target_link_libraries(oot_static PRIVATE lienthong::adp_static)
EOF
printf '#include <adp.h>\n#include <hub_error.h>\nint main(void) { return adp_connected(0) ? HUB_EINVAL : 0; }\n' >"$work/cm/main.c"
(cmake -S "$work/cm" -B "$work/cm/b" -DCMAKE_PREFIX_PATH="$x/usr" >/dev/null &&
 cmake --build "$work/cm/b" >/dev/null) || fail "an out-of-tree CMake project cannot use find_package(lienthong-adp)"
say "contents, SONAME, self-contained libadp.a and CMake package ok ($(elapsed))"

# ---- 3. lintian ----------------------------------------------------------
lintian --tag-display-limit 0 "${debs[@]}" >"$work/lintian.txt" 2>&1 || true
if grep -q '^E: ' "$work/lintian.txt"; then
  cat "$work/lintian.txt" >&2
  fail "lintian reports errors"
fi
say "lintian: no errors ($(elapsed)); $(grep -c '^W: ' "$work/lintian.txt" || true) warnings (docs/OPERATIONS.md lists them):"
grep '^W: ' "$work/lintian.txt" | sed 's/^/  /' || true

# ---- 4. the root filesystem ----------------------------------------------
# What the chroot needs beyond minbase: a compiler and pkg-config for the
# out-of-tree adapter, and the packages' dependencies (so that apt installs
# them without the network on later runs).
chroot_pkgs=gcc,libc6-dev,pkg-config,binutils,libzmq5,libsodium23,libprotobuf-c1,libssl3,libuv1,liblmdb0,libpq5,libmicrohttpd12,libcurl4,libjansson4,libsqlite3-0,libzmq3-dev,libsodium-dev,libprotobuf-c-dev,libssl-dev,ca-certificates
key=$(echo "bookworm $chroot_pkgs" | sha256sum | cut -c1-12)
tarball=$cache/bookworm-minbase-$key.tar.gz
mode=chroot
mkdir -p "$root"
if [ -f "$tarball" ]; then
  say "unpacking the cached Debian 12 minbase root ($tarball)"
  tar -xzf "$tarball" -C "$root"
else
  say "no cached root: debootstrap --variant=minbase bookworm from $mirror (a few minutes, once)"
  if nice -n 10 debootstrap --variant=minbase --include="$chroot_pkgs" bookworm "$root" "$mirror" \
      >"$work/debootstrap.log" 2>&1; then
    mkdir -p "$cache"
    tar -czf "$tarball.part" -C "$root" . && mv "$tarball.part" "$tarball"
    say "cached the root as $tarball"
  else
    tail -5 "$work/debootstrap.log" | sed 's/^/  /'
    say "debootstrap cannot run here (see above): installing into a scratch prefix instead"
    mode=scratch
    rm -rf "$root"; mkdir -p "$root"
  fi
fi
say "root ready ($(elapsed))"

in_root() { chroot "$root" "$@"; }
# Starts a long-running program in the background so that $! is the
# program itself (chroot execs it), which cleanup can kill; a function run
# with & would leave its child behind. USER is root or lienthong.
spawn() {
  local user=$1 log=$2; shift 2
  if [ "$mode" = chroot ] && [ "$user" = lienthong ]; then
    chroot --userspec=lienthong:lienthong "$root" "$@" >"$log" 2>&1 &
  elif [ "$mode" = chroot ]; then
    chroot "$root" "$@" >"$log" 2>&1 &
  else
    "$@" >"$log" 2>&1 &
  fi
  pids+=($!)
}

if [ "$mode" = chroot ]; then
  mount -t proc proc "$root/proc"
  mkdir -p "$root/tmp/debs" && cp "${debs[@]}" "$root/tmp/debs/"
  # The README's command, in the directory of the packages; their
  # dependencies are already in the root, so apt needs no network.
  LIENTHONG_HUB_ID=VN/GOV/HN-LGSP/HUB in_root env DEBIAN_FRONTEND=noninteractive \
    sh -c 'cd /tmp/debs && apt-get install -y ./*.deb' >"$work/apt.log" 2>&1 ||
    { tail -30 "$work/apt.log"; fail "apt-get install ./*.deb failed in the Debian 12 root"; }
  say "installed with apt in the Debian 12 root ($(elapsed))"
else
  for d in "${debs[@]}"; do dpkg-deb -x "$d" "$root"; done
  say "unpacked into the scratch prefix $root"
fi

# ---- 5. what the maintainer scripts did ----------------------------------
# Files are reached from here as $root/PATH; commands see them as $P/PATH
# (P is empty inside the chroot, $root in the scratch prefix).
if [ "$mode" = chroot ]; then
  P=
  in_root getent passwd lienthong >/dev/null || fail "no lienthong user"
  [ "$(in_root stat -c '%U %a' /etc/lienthong/keys/hub.secret)" = "lienthong 600" ] ||
    fail "hub.secret: $(in_root stat -c '%U %a' /etc/lienthong/keys/hub.secret), want lienthong 600"
  [ "$(in_root stat -c '%U %a' /var/lib/lienthong)" = "lienthong 750" ] || fail "/var/lib/lienthong mode"
  [ "$(in_root stat -c '%U:%G %a' /etc/lienthong)" = "root:lienthong 750" ] || fail "/etc/lienthong mode"
  grep -q 'member-id = VN/GOV/HN-LGSP/HUB' "$root/etc/lienthong/keys/hub.pub" || fail "hub key id"
  # Keys are generated once, never overwritten: a reinstall keeps them.
  before=$(sha256sum <"$root/etc/lienthong/keys/hub.secret")
  in_root env DEBIAN_FRONTEND=noninteractive sh -c 'cd /tmp/debs && dpkg -i lienthong-hub_*.deb' \
    >>"$work/apt.log" 2>&1 || fail "reinstall failed"
  [ "$(sha256sum <"$root/etc/lienthong/keys/hub.secret")" = "$before" ] || fail "reinstall replaced the hub's key"
  say "user, directory modes and keys ok; a reinstall kept the key"
  conf_opt=()
  as_hub() { chroot --userspec=lienthong:lienthong "$root" "$@"; }
  as_root() { chroot "$root" "$@"; }
else
  # The scratch prefix: what postinst does, by hand, under $root.
  P=$root
  sed -i -e "s|/etc/lienthong|$root/etc/lienthong|g; s|/var/lib/lienthong|$root/var/lib/lienthong|g" \
    "$root/etc/lienthong/hubd.conf"
  mkdir -p "$root/etc/lienthong/members" "$root/etc/lienthong/keys" "$root/etc/lienthong/adapters" \
    "$root/var/lib/lienthong"
  "$root/usr/bin/hubctl" keygen VN/GOV/HN-LGSP/HUB "$root/etc/lienthong/keys" >/dev/null
  mv "$root"/etc/lienthong/keys/VN.GOV.HN-LGSP.HUB.secret "$root/etc/lienthong/keys/hub.secret"
  mv "$root"/etc/lienthong/keys/VN.GOV.HN-LGSP.HUB.pub "$root/etc/lienthong/keys/hub.pub"
  conf_opt=(--config "$root/etc/lienthong/hubd.conf")
  as_hub() { "$@"; }
  as_root() { "$@"; }
  export PATH=$root/usr/bin:$PATH HUB_PLUGIN_DIR=$root$libdir/lienthong/plugins
  export LD_LIBRARY_PATH=$root$libdir
fi

# ---- 6. the installed default configuration, then start ------------------
as_hub hubd --check-config "${conf_opt[@]}" >"$work/check.txt" 2>&1 ||
  { cat "$work/check.txt"; fail "hubd --check-config fails on the installed default configuration"; }
say "hubd --check-config: $(tail -1 "$work/check.txt")"

# First configuration (docs/OPERATIONS.md): members' keys, and here ports
# that cannot collide with anything else on this machine.
sed -i -e 's|^listen = .*|listen = tcp://127.0.0.1:*|' -e 's|^http_listen = .*|http_listen = 127.0.0.1:0|' \
  "$root/etc/lienthong/hubd.conf"
mkdir -p "$root/root/keys"
for m in VN/GOV/TEST/OOT VN/GOV/TEST/ECHO VN/GOV/TEST/OPS; do
  as_root hubctl keygen "$m" "$P/root/keys" >/dev/null
  cp "$root/root/keys/${m//\//.}.pub" "$root/etc/lienthong/members/"
done
if [ "$mode" = chroot ]; then in_root chgrp -R lienthong /etc/lienthong/members; fi
as_hub hubd --check-config "${conf_opt[@]}" >"$work/check.txt" 2>&1 ||
  { cat "$work/check.txt"; fail "check-config after adding members"; }

spawn lienthong "$work/hubd.log" hubd "${conf_opt[@]}" --ready-file "$P/var/lib/lienthong/hubd.ready"
readyf=$root/var/lib/lienthong/hubd.ready
for _ in $(seq 100); do [ -s "$readyf" ] && break; sleep 0.1; done
[ -s "$readyf" ] || { cat "$work/hubd.log"; fail "hubd did not start"; }
endpoint=$(sed -n 's/^endpoint=//p' "$readyf")
hub_pid=$(sed -n 's/^pid=//p' "$readyf")
if [ "$mode" = chroot ]; then
  # The chroot's user table, not this machine's: compare uids.
  [ "$(stat -c %u "/proc/$hub_pid")" = "$(in_root id -u lienthong)" ] ||
    fail "hubd runs as uid $(stat -c %u "/proc/$hub_pid"), not as lienthong"
fi
say "hubd runs as uid $(stat -c %u "/proc/$hub_pid")$([ "$mode" = chroot ] && echo " (lienthong)") on $endpoint ($(elapsed))"

# ---- 7. the installed adapter runtime and an out-of-tree adapter ---------
printf 'hub_endpoint = %s\nhub_key_file = %s\nmember_key_file = %s\nplugin = echo\n' \
  "$endpoint" "$P/etc/lienthong/keys/hub.pub" "$P/root/keys/VN.GOV.TEST.ECHO.secret" \
  >"$root/etc/lienthong/adapters/echo.conf"
spawn root "$work/echo.log" hub-adapter --config "$P/etc/lienthong/adapters/echo.conf"

mkdir -p "$root/root/oot"
cp tests/package/greet.c "$root/root/oot/greet.c"
if [ "$mode" = chroot ]; then
  in_root sh -c 'cd /root/oot && gcc -Wall -Wextra -Werror -o greet greet.c $(pkg-config --cflags --libs lienthong-adp)' \
    >"$work/oot.log" 2>&1 || { cat "$work/oot.log"; fail "the out-of-tree adapter does not build with pkg-config alone"; }
else
  pc() { PKG_CONFIG_PATH=$root$libdir/pkgconfig pkg-config --define-variable=prefix="$root/usr" "$@"; }
  (cd "$root/root/oot" && gcc -Wall -Wextra -Werror -o greet greet.c $(pc --cflags --libs lienthong-adp)) \
    >"$work/oot.log" 2>&1 || { cat "$work/oot.log"; fail "the out-of-tree adapter does not build with pkg-config alone"; }
fi
spawn root "$work/greet.log" "$P/root/oot/greet" "$endpoint" "$P/etc/lienthong/keys/hub.pub" \
  "$P/root/keys/VN.GOV.TEST.OOT.secret"
for _ in $(seq 100); do grep -q ready "$work/greet.log" && break; sleep 0.1; done
grep -q ready "$work/greet.log" || { cat "$work/greet.log"; fail "the out-of-tree adapter did not connect"; }

printf 'hub_endpoint = %s\nhub_key_file = %s\nmember_key_file = %s\n' \
  "$endpoint" "$P/etc/lienthong/keys/hub.pub" "$P/root/keys/VN.GOV.TEST.OPS.secret" >"$root/root/ops.conf"
reply=$(as_root hubctl --config "$P/root/ops.conf" request VN/GOV/TEST/OOT greet/v1 --data 'Ha Noi' --timeout 10000 2>&1) ||
  { echo "$reply"; cat "$work/hubd.log"; fail "the request through the hub to the out-of-tree adapter failed"; }
grep -q 'xin chao Ha Noi' <<<"$reply" || fail "unexpected reply: $reply"
say "request through the hub to the out-of-tree adapter: $reply"
for _ in $(seq 50); do grep -q 'connected' "$work/echo.log" && break; sleep 0.1; done
as_root hubctl --config "$P/root/ops.conf" ping VN/GOV/TEST/ECHO --count 1 >"$work/ping.txt" 2>&1 ||
  { cat "$work/ping.txt" "$work/echo.log"; fail "ping of the installed hub-adapter (echo plugin) failed"; }
say "installed hub-adapter answers ping: $(tail -1 "$work/ping.txt")"

# ---- 8. a backup of the running hub, then a clean stop -------------------
as_root hubctl backup "$P/root/backup" --hub-config "$P/etc/lienthong/hubd.conf" \
  >"$work/backup.txt" 2>&1 || { cat "$work/backup.txt"; fail "hubctl backup of the running hub"; }
say "$(tail -1 "$work/backup.txt")"
kill -TERM "$hub_pid"
for _ in $(seq 100); do kill -0 "$hub_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$hub_pid" 2>/dev/null; then fail "hubd did not stop on SIGTERM"; fi
if grep -q 'level=error' "$work/hubd.log"; then grep 'level=error' "$work/hubd.log"; fail "hubd logged errors"; fi

# ---- 9. the unit files ---------------------------------------------------
# On this machine (systemd is not PID 1 in the root): the installed units,
# their commands pointed at the installed binaries so that verify can check
# they exist; the template as one instance.
units=$work/units; mkdir -p "$units"
sed "s|/usr/bin/|$root/usr/bin/|g" "$root/lib/systemd/system/hubd.service" >"$units/hubd.service"
sed "s|/usr/bin/|$root/usr/bin/|g" "$root/lib/systemd/system/hub-adapter@.service" \
  >"$units/hub-adapter@member.service"
systemd-analyze verify "$units/hubd.service" "$units/hub-adapter@member.service" \
  >"$work/verify.txt" 2>&1 || { cat "$work/verify.txt"; fail "systemd-analyze verify"; }
if grep . "$work/verify.txt"; then fail "systemd-analyze verify reports the problems above"; fi
score=$(systemd-analyze security --offline=true "$units/hubd.service" 2>/dev/null | sed -n 's/.*Overall exposure level for hubd.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || fail "systemd-analyze security gave no score"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "hubd.service exposure $score > 2.0"
ascore=$(systemd-analyze security --offline=true "$units/hub-adapter@member.service" 2>/dev/null | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
say "systemd-analyze verify ok; security exposure: hubd.service $score, hub-adapter@.service ${ascore:-?}"
say "PASS ($mode; $(elapsed))"
