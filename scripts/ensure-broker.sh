#!/usr/bin/env bash
# Make sure a RabbitMQ broker is reachable, in this order of preference:
#   1. the broker at $AMQP_URI, when set and reachable;
#   2. a local rabbitmq-server: started if stopped, installed from the OS packages if missing;
#   3. `docker compose up -d rabbitmq`, where a Docker engine runs;
#   4. otherwise an exact instruction and a non-zero exit.
# deploy/rabbitmq/definitions.json goes into the vhost AMQP_URI names ("/" when none): on a
# local node this script manages, with rabbitmqctl (the vhost created when missing, the
# management plugin enabled: `tansiq status` and the integration tests use its HTTP API on
# 15672); on any other broker, through its management API (POST /api/definitions/<vhost>) at
# TANSIQ_RABBIT_ADMIN_URL, by default http(s)://<AMQP_URI's user>@<its host>:15672 (15671 for
# amqps). A failed import is a warning: the services declare what they use anyway.
# When the broker runs under docker compose (definitions loaded at its boot), its AMQP_URI is
# written to var/broker.env for make. TANSIQ_SKIP_DEFINITIONS=1 imports nothing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BROKER_ENV="$ROOT/var/broker.env"
DEFINITIONS="$ROOT/deploy/rabbitmq/definitions.json"
LOCAL_URI="amqp://guest:guest@127.0.0.1:5672/"

is_local_host() { case "$1" in 127.0.0.1|localhost|::1) return 0 ;; *) return 1 ;; esac; }

local_node_running() { have rabbitmq-diagnostics && rabbitmq-diagnostics -q ping >/dev/null 2>&1; }

start_local_node() {
    say "starting the local RabbitMQ: rabbitmq-server -detached"
    rabbitmq-server -detached
    # await_startup gives up at once while the node is not yet reachable, so retry it.
    for _ in $(seq 1 60); do
        if rabbitmqctl -q await_startup --timeout 10 >/dev/null 2>&1; then
            say "RabbitMQ started"
            return 0
        fi
        sleep 2
    done
    die "rabbitmq-server did not start; see /var/log/rabbitmq/ (rabbitmq-diagnostics status)"
}

# amqp_field URI FIELD: the user, vhost ("/" when the URI names none), vhost_path (URL-encoded)
# or admin (management API base URL, with credentials) of an amqp:// or amqps:// URI.
amqp_field() {
    python3 - "$@" <<'PY'
import os, sys
from urllib.parse import quote, unquote, urlsplit

uri, field = sys.argv[1:]
parts = urlsplit(uri)
vhost = unquote(parts.path[1:]) or "/"
if field == "user":
    print(unquote(parts.username or "guest"))
elif field == "vhost":
    print(vhost)
elif field == "vhost_path":
    print(quote(vhost, safe=""))
elif field == "admin":
    scheme, port = ("https", 15671) if parts.scheme == "amqps" else ("http", 15672)
    credentials = f"{parts.username or 'guest'}:{parts.password or 'guest'}"  # kept URL-encoded
    print(os.environ.get("TANSIQ_RABBIT_ADMIN_URL") or f"{scheme}://{credentials}@{parts.hostname or '127.0.0.1'}:{port}")
PY
}

want_definitions() { [ -f "$DEFINITIONS" ] && [ "${TANSIQ_SKIP_DEFINITIONS:-0}" != 1 ]; }

# import_over_http URI: the definitions into URI's vhost through the management API.
import_over_http() {
    local vhost admin status body
    vhost="$(amqp_field "$1" vhost)"
    admin="$(amqp_field "$1" admin)"
    admin="${admin%/}"
    say "loading the broker topology into vhost $vhost through the management API at $(redact "$admin")"
    body="$(mktemp)"
    # The URL (with its password) goes to curl on stdin, not in its arguments where ps shows it.
    status="$(printf 'url = "%s/api/definitions/%s"\n' "$admin" "$(amqp_field "$1" vhost_path)" \
        | curl -sS -K - -o "$body" -w '%{http_code}' --max-time 30 -H 'content-type: application/json' \
               --data-binary @"$DEFINITIONS" 2>&1)" || true
    case "$status" in
        2??) say "definitions loaded into vhost $vhost" ;;
        401) warn "definitions not imported: the management API refused user $(amqp_field "$1" user) (wrong password, or the user lacks the management or administrator tag); set TANSIQ_RABBIT_ADMIN_URL to an admin account" ;;
        404) warn "definitions not imported: vhost $vhost does not exist on that broker (create it first)" ;;
        4??|5??) warn "definitions not imported (HTTP $status): $(head -c 300 "$body")" ;;
        *)   warn "definitions not imported: no management API answered at $(redact "$admin") ($(redact "${status:-no answer}" | tail -n 1)); enable rabbitmq_management or set TANSIQ_RABBIT_ADMIN_URL" ;;
    esac
    rm -f "$body"
}

# configure_local_node URI: management plugin, URI's vhost, definitions, on the node rabbitmqctl reaches.
configure_local_node() {
    local vhost
    vhost="$(amqp_field "$1" vhost)"
    if rabbitmq-plugins -q is_enabled rabbitmq_management >/dev/null 2>&1; then
        say "management plugin already enabled"
    else
        say "enabling the management plugin: rabbitmq-plugins enable rabbitmq_management"
        rabbitmq-plugins -q enable rabbitmq_management
    fi
    if ! rabbitmqctl -q list_vhosts name | grep -qxF -- "$vhost"; then
        say "creating vhost $vhost for user $(amqp_field "$1" user)"
        rabbitmqctl -q add_vhost "$vhost"
        rabbitmqctl -q set_permissions -p "$vhost" "$(amqp_field "$1" user)" '.*' '.*' '.*' \
            || warn "user $(amqp_field "$1" user) has no rights on vhost $vhost (does it exist? rabbitmqctl add_user)"
    fi
    want_definitions || return 0
    if [ "$vhost" = / ]; then
        say "loading the broker topology: rabbitmqctl import_definitions deploy/rabbitmq/definitions.json"
        # On stdin: Debian's rabbitmqctl runs as user rabbitmq, who may not read a checkout under /root.
        rabbitmqctl -q import_definitions --format json <"$DEFINITIONS" \
            || warn "definitions not imported (services still declare what they use)"
    else
        # rabbitmqctl imports into the vhosts named in the file; the HTTP API into the one asked.
        for _ in $(seq 1 15); do
            tcp_open 127.0.0.1 15672 && break
            sleep 2
        done
        import_over_http "$1"
    fi
}

# The local broker is ours to configure only when rabbitmqctl can talk to it.
use_local_node() {
    local uri="$LOCAL_URI" host port
    if [ -n "${AMQP_URI:-}" ]; then
        read -r host port < <(uri_host_port "$AMQP_URI" 5672)
        if is_local_host "$host" && [ "$port" = 5672 ]; then
            uri="$AMQP_URI"  # the local node will answer it once started: keep its user and vhost
        else
            # The AMQP_URI given is dead: make (via var/broker.env) uses the local broker instead.
            mkdir -p "$ROOT/var"
            printf 'AMQP_URI=%s\n' "$LOCAL_URI" >"$BROKER_ENV"
            warn "using $LOCAL_URI instead of AMQP_URI (written to var/broker.env)"
        fi
    fi
    if local_node_running; then
        say "local RabbitMQ is running"
    else
        start_local_node
    fi
    configure_local_node "$uri"
    say "broker ready at $(redact "$uri")"
}

# Written again below only when make must use another AMQP_URI than the environment's.
rm -f "$BROKER_ENV"

# 1. An explicit AMQP_URI.
if [ -n "${AMQP_URI:-}" ]; then
    read -r host port < <(uri_host_port "$AMQP_URI" 5672)
    if tcp_open "$host" "$port"; then
        say "broker reachable at $(redact "$AMQP_URI")"
        if is_local_host "$host" && local_node_running; then
            configure_local_node "$AMQP_URI"
        elif want_definitions; then
            import_over_http "$AMQP_URI"
        fi
        exit 0
    fi
    is_local_host "$host" \
        || die "AMQP_URI=$(redact "$AMQP_URI") is not reachable; start that broker or unset AMQP_URI to use a local one"
    warn "nothing listens at $(redact "$AMQP_URI"); trying a local broker"
fi

# 2. A local broker: ours when rabbitmqctl reaches it; someone else's (a container) otherwise.
if local_node_running; then
    use_local_node
    exit 0
fi
if tcp_open 127.0.0.1 5672; then
    say "a broker already listens on 127.0.0.1:5672; using it as it is (not managed by this script)"
    if want_definitions; then import_over_http "$LOCAL_URI"; fi
    exit 0
fi
if ! have rabbitmq-server && can_apt_install; then
    apt_install rabbitmq-server || die "apt-get install rabbitmq-server failed"
fi
if have rabbitmq-server && [ "$(id -u)" -eq 0 ]; then
    use_local_node
    exit 0
fi

# 3. Docker compose, with the application user from deploy/.env (guest is local-only there).
if docker_compose_usable; then
    "$ROOT/scripts/make-deploy-env.sh"
    say "starting RabbitMQ in Docker: docker compose up -d --wait rabbitmq"
    (cd "$ROOT" && docker compose up -d --wait rabbitmq)
    uri="$(sed -n 's/^AMQP_URI=//p' "$ROOT/deploy/.env" | sed 's#@rabbitmq:#@127.0.0.1:#')"
    mkdir -p "$ROOT/var"
    (umask 077 && printf 'AMQP_URI=%s\n' "$uri" >"$BROKER_ENV")
    say "broker ready at $(redact "$uri") (written to var/broker.env)"
    exit 0
fi

# 4. Nothing we can do alone.
cat >&2 <<'MSG'
error: no RabbitMQ broker is reachable and none could be started here.
Do one of:
  - as root on Debian/Ubuntu:  apt-get install -y rabbitmq-server && make broker
  - installed but stopped:     sudo rabbitmq-server -detached && sudo rabbitmq-plugins enable rabbitmq_management
  - with Docker:               docker compose up -d --wait rabbitmq   (after scripts/make-deploy-env.sh)
  - an existing broker:        export AMQP_URI=amqp://USER:PASSWORD@HOST:5672/
MSG
exit 1
