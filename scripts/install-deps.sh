#!/usr/bin/env bash
# Installs the Debian 12 packages that building, running and testing the hub
# need. Idempotent: does nothing when everything is already installed.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config clang
  libzmq3-dev libsodium-dev libprotobuf-c-dev protobuf-c-compiler
  libssl-dev libuv1-dev liblmdb-dev lmdb-utils
  check libclang-rt-14-dev libfaketime
  nats-server libnats-dev
  # hubbench's durable peers (issue 21): a private RabbitMQ node and a private
  # PostgreSQL cluster, started by hubbench itself (see the end of this file
  # for the system services these packages would start).
  rabbitmq-server librabbitmq-dev postgresql libpq-dev
  # tests/ha/run.sh: PostgreSQL failed over by Patroni (its etcd client:
  # python3-etcd) with etcd as the store of who leads.
  patroni python3-etcd etcd-server etcd-client
  curl procps iproute2 sqlite3 libsqlite3-dev libcurl4-openssl-dev libjansson-dev
  # e2e_test_auditchain's time-stamping authority: `openssl ts -reply` behind
  # python3's http.server (python3 is listed below); e2e_test_outbound_auth and
  # the bridge's HTTPS tests make their TLS certificates with openssl.
  # The HTTP servers (hubd's operator endpoint; the HTTP bridge, HTTPS with
  # client certificates: GnuTLS).
  libmicrohttpd-dev libgnutls28-dev openssl
  # scripts/lint.sh and scripts/valgrind.sh.
  cppcheck clang-tidy valgrind
  # The operator surface's tests: promtool (package prometheus) checks /metrics;
  # Debian's chromium, driven by python3-selenium through chromium-driver,
  # loads the dashboard; xmllint (libxml2-utils) validates probe's JUnit XML.
  prometheus chromium chromium-driver python3 python3-selenium libxml2-utils
  # The Python client (adapters/python) and its tests: only Debian's modules;
  # protoc generates the lth.v1 classes.
  python3 python3-zmq python3-nacl python3-protobuf protobuf-compiler
  # The Java example (adapters/examples/java) is compiled and run in the tests.
  openjdk-17-jdk-headless
  # hubd's sd_notify; the Debian packages and their test (tests/package/run.sh):
  # CPack's shlibdeps (dpkg-dev, file), lintian, a Debian 12 root by
  # debootstrap, systemd-analyze (systemd).
  libsystemd-dev dpkg-dev file lintian debootstrap systemd
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts rabbitmq-server (and postgresql's main cluster) when it
# installs them. hubbench needs neither: it runs private instances on other
# ports with their own epmd, so the system ones do not get in its way, but a
# broker listening on 0.0.0.0:5672 nobody asked for should not be left
# behind. Stop and disable the ones this run installed (where systemd runs;
# in a container whose policy-rc.d forbids starting services, none started).
for svc in rabbitmq-server postgresql etcd patroni; do
  case " ${missing[*]} " in
    *" $svc "* | *" $svc-server "*)
      if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl disable --now "$svc" >/dev/null 2>&1 || true
      elif command -v service >/dev/null; then
        service "$svc" stop >/dev/null 2>&1 || true
      fi
      ;;
  esac
done
