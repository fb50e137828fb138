#!/bin/sh
# with_postgres.sh CMD [ARG...] — runs CMD beside a private PostgreSQL
# server and removes the server afterwards, whatever CMD's outcome.
#
# The server: initdb into a new temporary directory (trust authentication,
# user "hub"), listening on 127.0.0.1 only, on a free port, its socket in
# that directory, fsync on. As root it runs as the "postgres" user (initdb
# and postgres refuse root), which owns the directory. CMD gets
# HUB_TEST_PG_DSN (a libpq connection string to the database "postgres"),
# HUB_TEST_PG_DIR (the server's directory) and HUB_TEST_PG_BIN (the
# directory of initdb, pg_ctl, ...). Exits with CMD's status, or 2 when the
# server cannot be started (never a skip: scripts/install-deps.sh installs
# postgresql).
set -eu

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "with_postgres: PostgreSQL is not installed: run scripts/install-deps.sh" >&2
    exit 2
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/hubpg.XXXXXX")
as=""
if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir"
    chmod 0711 "$dir"
    as="runuser -u postgres --"
fi
stop() {
    $as "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM

if ! $as "$bin/initdb" -D "$dir/data" -U hub --auth=trust -E UTF8 --no-locale --no-sync \
    >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    echo "with_postgres: initdb failed" >&2
    exit 2
fi
started=no
for try in 1 2 3 4 5 6 7 8; do
    port=$(( 20000 + ( $$ * 7 + try * 3571 + $(date +%N | sed 's/^0*//;s/^$/0/') ) % 40000 ))
    if $as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on -c max_connections=50" \
        start >/dev/null 2>&1; then
        started=yes
        break
    fi
done
if [ "$started" != yes ]; then
    cat "$dir/server.log" >&2 || true
    echo "with_postgres: the PostgreSQL server did not start" >&2
    exit 2
fi
export HUB_TEST_PG_DSN="host=127.0.0.1 port=$port user=hub dbname=postgres connect_timeout=5"
export HUB_TEST_PG_DIR="$dir" HUB_TEST_PG_BIN="$bin"
set +e
"$@"
rc=$?
set -e
exit $rc
