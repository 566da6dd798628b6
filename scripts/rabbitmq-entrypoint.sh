#!/bin/sh
# Entrypoint of the rabbitmq container (docker-compose.yml). Definitions loaded at boot make
# RabbitMQ skip its default user, so the application user comes from deploy/.env here, once
# the node runs; the healthcheck waits for the marker file written at the end.
set -eu
: "${TANSIQ_RABBITMQ_USER:?set it in deploy/.env}"
: "${TANSIQ_RABBITMQ_PASSWORD:?set it in deploy/.env}"
READY=/tmp/tansiq-user-ready
rm -f "$READY"

docker-entrypoint.sh "$@" &
server=$!
trap 'rabbitmqctl stop >/dev/null 2>&1 || kill "$server"; wait "$server"' TERM INT

until rabbitmqctl -q await_startup >/dev/null 2>&1; do
    kill -0 "$server" 2>/dev/null || { wait "$server"; exit 1; }
    sleep 2
done
if rabbitmqctl -q list_users | cut -f1 | grep -qx "$TANSIQ_RABBITMQ_USER"; then
    rabbitmqctl -q change_password "$TANSIQ_RABBITMQ_USER" "$TANSIQ_RABBITMQ_PASSWORD"
else
    rabbitmqctl -q add_user "$TANSIQ_RABBITMQ_USER" "$TANSIQ_RABBITMQ_PASSWORD"
fi
# administrator: `tansiq partners add` provisions partner users through this account.
rabbitmqctl -q set_user_tags "$TANSIQ_RABBITMQ_USER" administrator
rabbitmqctl -q set_permissions -p / "$TANSIQ_RABBITMQ_USER" '.*' '.*' '.*'
# One least-privilege user per service (tansiq.broker_users), its password taken from its URI in
# deploy/.env; the permissions are the committed deploy/rabbitmq/service-users.json.
for service in directory intake referrals events notifications gateway; do
    uri=$(printenv "TANSIQ_$(echo "$service" | tr a-z A-Z)_AMQP_URI" || true)
    [ -n "$uri" ] || { echo "tansiq: TANSIQ_..._AMQP_URI of $service missing in deploy/.env" >&2; exit 1; }
    password=$(printf '%s' "$uri" | sed -E 's|^amqps?://[^:]+:([^@]+)@.*$|\1|')
    if rabbitmqctl -q list_users | cut -f1 | grep -qx "$service"; then
        rabbitmqctl -q change_password "$service" "$password"
    else
        rabbitmqctl -q add_user "$service" "$password"
    fi
done
rabbitmqctl -q import_definitions /etc/rabbitmq/service-users.json
touch "$READY"
echo "tansiq: RabbitMQ users $TANSIQ_RABBITMQ_USER and one per service ready"
wait "$server"
