# Shared helpers for the set-up scripts (sourced, not run).
# Tools such as rabbitmq-server and pg_ctlcluster live in sbin, which a non-login PATH may lack.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

say()  { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die()  { printf 'error: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

# tcp_open HOST PORT: true when something accepts TCP connections there.
tcp_open() {
    timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2" >/dev/null 2>&1
}

# Root (or passwordless sudo) is needed to install OS packages.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif have sudo && sudo -n true 2>/dev/null; then sudo "$@"
    else return 1
    fi
}

can_apt_install() {
    have apt-get && { [ "$(id -u)" -eq 0 ] || { have sudo && sudo -n true 2>/dev/null; }; }
}

# apt_install PACKAGE...: install from the OS packages, refreshing the index once per run.
apt_install() {
    can_apt_install || return 1
    say "apt-get install -y $*"
    if [ -z "${_TANSIQ_APT_UPDATED:-}" ]; then
        as_root apt-get update -q || return 1
        _TANSIQ_APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# A Docker engine that answers, with the compose plugin.
docker_compose_usable() {
    have docker && docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1
}

# uri_host_port URI: prints "HOST PORT" of an amqp:// or postgresql:// URI (default port $2).
uri_host_port() {
    local rest="${1#*://}"
    rest="${rest##*@}"
    rest="${rest%%/*}"
    rest="${rest%%\?*}"
    local host="${rest%%:*}" port="$2"
    case "$rest" in *:*) port="${rest##*:}" ;; esac
    printf '%s %s\n' "${host:-127.0.0.1}" "$port"
}

# redact URI: the URI with its password hidden, fit for printing.
redact() {
    printf '%s\n' "$1" | sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#'
}
