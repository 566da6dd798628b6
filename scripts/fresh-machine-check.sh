#!/usr/bin/env bash
# Does `make test` pass on a new machine? Builds a minimal Debian bookworm root (debootstrap
# minbase plus the README's prerequisites only), puts this repository's HEAD in a fresh copy of
# it (git archive: what a clean clone holds, not uncommitted edits), runs `make test` there as
# root in a chroot, and prints the pytest summary line. Exit status: that of `make test`.
#
#   scripts/fresh-machine-check.sh                              # the whole suite
#   PYTEST_ARGS="tests/browser -x" scripts/fresh-machine-check.sh  # a quick first look
#   scripts/fresh-machine-check.sh --rebuild                    # debootstrap the root again
#
# The pristine root is cached in $FRESH_CACHE (default /var/tmp/tansiq-fresh-machine), with
# the downloaded .deb files and pip wheels, so reruns skip the downloads; every run starts
# from a new copy of the pristine root. Log of the last run: var/fresh-machine/make-test.log.
#
# The chroot shares the host's network: a RabbitMQ or PostgreSQL that already answers on
# 127.0.0.1 is used as it is (the set-up scripts never start a second server on a taken
# port); where none answers, `make test` installs and starts one inside the root, as it would
# on a real new machine. Needs root; installs debootstrap with apt when missing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SUITE=bookworm
MIRROR="${FRESH_MIRROR:-http://deb.debian.org/debian}"
# What the README asks a new contributor to have; nothing else.
PREREQUISITES="make,git,curl,ca-certificates,python3,python3-venv"
CACHE="${FRESH_CACHE:-/var/tmp/tansiq-fresh-machine}"
BASE="$CACHE/base"
RUN="$CACHE/run"
LOG="$ROOT/var/fresh-machine/make-test.log"

[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap and chroot need it)"
have debootstrap || apt_install debootstrap || die "apt-get install -y debootstrap, then retry"
git -C "$ROOT" rev-parse --verify -q HEAD >/dev/null || die "$ROOT is not a git checkout with a commit"

build_base() {
    say "debootstrap --variant=minbase $SUITE $BASE (a few minutes, once)"
    rm -rf "$BASE.partial"
    mkdir -p "$CACHE/debs"
    debootstrap --variant=minbase --include="$PREREQUISITES" --cache-dir="$CACHE/debs" \
        "$SUITE" "$BASE.partial" "$MIRROR"
    # The sources a new Debian install has.
    cat >"$BASE.partial/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://security.debian.org/debian-security $SUITE-security main
EOF
    # Services the packages would start on install stay stopped: the scripts start what they need.
    printf '#!/bin/sh\nexit 101\n' >"$BASE.partial/usr/sbin/policy-rc.d"
    chmod 755 "$BASE.partial/usr/sbin/policy-rc.d"
    apt-get clean -o RootDir="$BASE.partial" 2>/dev/null || true
    mv "$BASE.partial" "$BASE"
}

mounted=()
cleanup() {
    local status=$?
    # Servers `make test` started inside the root (e.g. PostgreSQL) hold it busy: stop them.
    local pid
    for pid in $(ls /proc | grep -E '^[0-9]+$'); do
        if [ "$(readlink "/proc/$pid/root" 2>/dev/null)" = "$RUN" ]; then kill "$pid" 2>/dev/null || true; fi
    done
    sleep 1
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount -R "${mounted[$i]}" 2>/dev/null || umount -lR "${mounted[$i]}" 2>/dev/null || true
    done
    exit "$status"
}
trap cleanup EXIT INT TERM

bind() {  # bind SOURCE TARGET-INSIDE-RUN
    mkdir -p "$1" "$RUN$2"
    mount --rbind "$1" "$RUN$2"
    mount --make-rslave "$RUN$2"
    mounted+=("$RUN$2")
}

if [ "${1:-}" = "--rebuild" ]; then rm -rf "$BASE"; fi
[ -d "$BASE" ] || build_base

say "a new machine: a copy of $BASE"
if [ -d "$RUN" ]; then
    grep -q " $RUN" /proc/mounts && die "$RUN is still mounted (another run?); umount -R it first"
    rm -rf "$RUN"
fi
cp -a "$BASE" "$RUN"
# The host's network settings: its resolver and the CA bundle its HTTPS (pip, apt) trusts,
# which may hold a local proxy's CA.
cp /etc/resolv.conf "$RUN/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$RUN/etc/ssl/certs/ca-certificates.crt"
passed_env=()
for name in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_CERT PIP_INDEX_URL \
        REQUESTS_CA_BUNDLE SSL_CERT_FILE; do
    if [ -n "${!name:-}" ]; then passed_env+=("$name=${!name}"); fi
done
mkdir -p "$RUN/root/tansiq"
git -C "$ROOT" archive HEAD | tar -x -C "$RUN/root/tansiq"
# git archive has no .git: make one so the code sees a clone (CI prints the commit).
git -C "$RUN/root/tansiq" init -q && git -C "$RUN/root/tansiq" add -A \
    && git -C "$RUN/root/tansiq" -c user.name=check -c user.email=check@localhost commit -qm "HEAD" >/dev/null

bind /proc /proc
bind /sys /sys
bind /dev /dev
# Download caches only: what is installed still comes from the packages, as on a new machine.
bind "$CACHE/debs" /var/cache/apt/archives
bind "$CACHE/pip" /root/.cache/pip

mkdir -p "$(dirname "$LOG")"
commit="$(git -C "$ROOT" rev-parse --short HEAD)"
say "make test PYTEST_ARGS='${PYTEST_ARGS:-}' in the new root, commit $commit (log: ${LOG#"$ROOT"/})"
set +e
chroot "$RUN" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTEST_ARGS="${PYTEST_ARGS:-}" "${passed_env[@]}" \
    bash -c 'cd /root/tansiq && make test PYTEST_ARGS="$PYTEST_ARGS"' 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
set -e

summary="$(grep -E '^=+ .*(passed|failed|error|skipped|no tests ran).* =+$' "$LOG" | tail -n 1 || true)"
echo
say "fresh machine ($SUITE minbase + $PREREQUISITES), commit $commit: make test exit $status"
say "${summary:-no pytest summary line (see $LOG)}"
# What did not pass or was skipped, and why (make test runs pytest -ra).
grep -E '^(SKIPPED|FAILED|ERROR|XFAIL) ' "$LOG" | head -n 30 || true
exit "$status"
