#!/usr/bin/env bash
# A private PostgreSQL server for the cluster tests and for trying a cluster
# by hand; nothing of the machine's own PostgreSQL is used or changed.
#
#   source scripts/pg.sh; pg_start    # sets HMS_TEST_PG=postgres://hms@127.0.0.1:PORT/hms
#   ...; pg_stop
#
# or as a command: `scripts/pg.sh` (or `scripts/pg.sh start`) starts one and
# prints its URL, then its directory on a second line; `scripts/pg.sh kill
# DIR` kills its postmaster with SIGKILL (a crash), `scripts/pg.sh restart
# DIR` starts it again on the same port, `scripts/pg.sh stop DIR` stops it
# and removes DIR. Installs Debian's postgresql
# package when the server binaries are missing. PostgreSQL refuses to run as
# root, so as root the server runs as the `postgres` user.

pg_bin() {
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
        echo "installing PostgreSQL (Debian package postgresql)" >&2
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        else
            sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        fi
        bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    fi
    echo "$bin"
}

pg_as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_start() {
    local bin port
    bin=$(pg_bin)
    PG_DIR=$(mktemp -d /tmp/hms-pg.XXXXXX)
    [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    pg_as_owner "$bin/initdb" -D "$PG_DIR/data" -A trust -U hms >"$PG_DIR/initdb.log" 2>&1 ||
        { cat "$PG_DIR/initdb.log" >&2; return 1; }
    echo "$port" >"$PG_DIR/port"
    echo "$bin" >"$PG_DIR/bin"
    pg_run "$PG_DIR" || return 1
    "$bin/psql" -q -h 127.0.0.1 -p "$port" -U hms -d postgres -c 'CREATE DATABASE hms' >/dev/null
    PG_BIN=$bin
    export HMS_TEST_PG="postgres://hms@127.0.0.1:$port/hms"
    export HMS_TEST_PG_BIN=$bin
    echo "PostgreSQL for the tests: $HMS_TEST_PG (data in $PG_DIR)" >&2
}

# Starts the server kept in $1 (again) on its port.
pg_run() {
    local dir=$1 port bin
    port=$(cat "$dir/port")
    bin=$(cat "$dir/bin")
    pg_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o \
        "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c max_connections=200 -c fsync=on" \
        start >/dev/null || { cat "$dir/log" >&2; return 1; }
}

pg_stop() {
    if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR/data" ]; then
        pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$PG_DIR"
    fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    case "${1:-start}" in
        start) pg_start; echo "$HMS_TEST_PG"; echo "$PG_DIR" ;;
        kill) kill -9 "$(head -1 "$2/data/postmaster.pid")" ;;
        restart) rm -f "$2/data/postmaster.pid" "$2"/.s.PGSQL.*; pg_run "$2" ;;
        stop) PG_DIR=$2 PG_BIN=$(cat "$2/bin") pg_stop ;;
        *) echo "usage: scripts/pg.sh [start | kill DIR | restart DIR | stop DIR]" >&2; exit 2 ;;
    esac
fi
