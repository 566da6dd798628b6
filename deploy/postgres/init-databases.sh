#!/bin/bash
# Run once by the postgres image on an empty data directory (/docker-entrypoint-initdb.d):
# one database per service, owned by the application role, so services share no tables.
set -euo pipefail

for db in ${TANSIQ_DATABASES:-directory intake referrals events notifications}; do
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
        --set db="$db" --set owner="$POSTGRES_USER" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
    echo "tansiq: database $db ready"
done
