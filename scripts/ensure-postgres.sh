#!/usr/bin/env bash
# Make sure the PostgreSQL-backed tests can run: a server at 127.0.0.1:5432 where the role
# `postgres` may connect over TCP and create databases (each test makes its own), and the psql
# client (tests/unit/test_deploy_files.py runs deploy/postgres/init-databases.sh with it).
#   - a server that already answers on 5432 is used as it is (never a second one on that port);
#   - otherwise the newest Debian cluster is started, installed first with apt when missing;
#   - when `postgres` cannot connect over TCP to a local Debian cluster (its default pg_hba.conf
#     asks a password on 127.0.0.1), the role gets one, only if it has none, kept in ~/.pgpass,
#     which psql and psycopg2 read; trusting every local user instead would hand out a superuser.
# Where none of this is possible the PostgreSQL tests are skipped, unless
# TANSIQ_REQUIRE_POSTGRES=1 (as in CI): then this fails with what to do.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

HOST=127.0.0.1 PORT=5432 ROLE=postgres
PGPASS="$HOME/.pgpass"

missing() {
    if [ "${TANSIQ_REQUIRE_POSTGRES:-0}" = 1 ]; then
        die "$1 (TANSIQ_REQUIRE_POSTGRES=1). $2"
    fi
    warn "$1 ($2): the PostgreSQL-backed tests will be skipped"
    exit 0
}

server_answers() {
    if have pg_isready; then pg_isready -q -h "$HOST" -p "$PORT"; else tcp_open "$HOST" "$PORT"; fi
}

cluster_installed() { have pg_ctlcluster && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; }

# "t" when the role may create databases; fails when it cannot connect.
role_can_create_databases() {
    PGCONNECT_TIMEOUT=5 psql -X -A -t -h "$HOST" -p "$PORT" -U "$ROLE" -d postgres -w \
        -c "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user" 2>/dev/null
}

# SQL run as the cluster's owner over the Unix socket (peer authentication, no password).
# From / : the postgres user may not enter the current directory.
as_cluster_owner() { (cd / && as_root runuser -u postgres -- psql -X -q -A -t -d postgres "$@"); }

give_role_a_password() {
    local has_password
    has_password="$(as_cluster_owner -c "SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = '$ROLE'")" \
        || return 1
    [ "$has_password" = f ] || return 1  # someone chose one: not ours to change
    local password
    password="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
    say "setting a password for the PostgreSQL role $ROLE (kept in $PGPASS)"
    as_cluster_owner -c "ALTER ROLE $ROLE PASSWORD '$password'" >/dev/null || return 1
    (umask 077 && touch "$PGPASS" && printf '%s:%s:*:%s:%s\n' "$HOST" "$PORT" "$ROLE" "$password" >>"$PGPASS")
}

# 1. The tools: the client always; the server too when none answers and no cluster is installed.
packages=()
have psql || packages+=(postgresql-client)
if ! server_answers && ! cluster_installed; then packages=(postgresql); fi
if [ ${#packages[@]} -gt 0 ]; then
    apt_install "${packages[@]}" || missing "apt-get install ${packages[*]} failed or is not possible here" \
        "run as root or with sudo, or install ${packages[*]} yourself"
fi
have psql || missing "psql client missing" "apt-get install -y postgresql-client"

# 2. The server.
started_here=0
if server_answers; then
    say "PostgreSQL answers on $HOST:$PORT"
else
    cluster_installed || missing "no PostgreSQL on $HOST:$PORT and none installed" "apt-get install -y postgresql"
    # The newest installed version, should there be several.
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    say "starting PostgreSQL: pg_ctlcluster --skip-systemctl-redirect $version main start"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start \
        || missing "pg_ctlcluster $version main start failed" "run it as root and see /var/log/postgresql/"
    for _ in $(seq 1 30); do
        server_answers && break
        sleep 1
    done
    server_answers || missing "PostgreSQL $version started but does not answer on $HOST:$PORT" \
        "see /var/log/postgresql/"
    started_here=1
    say "PostgreSQL $version is running on $HOST:$PORT"
fi

# 3. The role the tests connect as.
can_create="$(role_can_create_databases || true)"
if [ -z "$can_create" ] && cluster_installed && give_role_a_password; then
    can_create="$(role_can_create_databases || true)"
fi
case "$can_create" in
    t) say "role $ROLE connects to $HOST:$PORT and may create the test databases" ;;
    f) missing "role $ROLE may not create databases on $HOST:$PORT" "ALTER ROLE $ROLE CREATEDB" ;;
    *) if [ "$started_here" = 1 ]; then hint="see /var/log/postgresql/"; else
           hint="put its password in $PGPASS as $HOST:$PORT:*:$ROLE:PASSWORD"; fi
       missing "role $ROLE cannot connect to $HOST:$PORT" "$hint" ;;
esac
