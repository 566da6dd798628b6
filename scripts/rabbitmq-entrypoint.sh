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
touch "$READY"
echo "tansiq: RabbitMQ user $TANSIQ_RABBITMQ_USER ready"
wait "$server"
