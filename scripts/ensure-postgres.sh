#!/usr/bin/env bash
# Make sure the local PostgreSQL (127.0.0.1:5432) runs, for the PostgreSQL-backed tests.
# Starts an installed but stopped Debian cluster; having none is fine (those tests are
# skipped) unless TANSIQ_REQUIRE_POSTGRES=1, as in CI.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

HOST=127.0.0.1 PORT=5432

pg_ready() {
    if have pg_isready; then pg_isready -q -h "$HOST" -p "$PORT"; else tcp_open "$HOST" "$PORT"; fi
}

missing() {
    if [ "${TANSIQ_REQUIRE_POSTGRES:-0}" = 1 ]; then
        die "$1 (TANSIQ_REQUIRE_POSTGRES=1). Install and start it: apt-get install -y postgresql && pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start"
    fi
    warn "$1: the PostgreSQL-backed tests will be skipped"
    exit 0
}

if pg_ready; then
    say "PostgreSQL is running on $HOST:$PORT"
    exit 0
fi

if ! have pg_ctlcluster || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    missing "no PostgreSQL cluster is installed"
fi
# The newest installed version, should there be several.
version="$(ls /etc/postgresql | sort -V | tail -n 1)"
say "starting PostgreSQL: pg_ctlcluster --skip-systemctl-redirect $version main start"
as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start \
    || missing "pg_ctlcluster $version main start failed (run it as root)"
for _ in $(seq 1 30); do
    if pg_ready; then
        say "PostgreSQL $version is running on $HOST:$PORT"
        exit 0
    fi
    sleep 1
done
missing "PostgreSQL $version started but does not answer on $HOST:$PORT"
