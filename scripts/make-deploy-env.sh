#!/usr/bin/env bash
# Create deploy/.env from deploy/env.example with random passwords, and the key files under
# var/secrets/ that docker-compose.yml passes as secrets. Never overwrites what exists.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ENV_FILE="$ROOT/deploy/.env"
SECRETS="$ROOT/var/secrets"

random_token() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

if [ -f "$ENV_FILE" ]; then
    say "deploy/.env exists; left as it is"
else
    content="$(cat "$ROOT/deploy/env.example")"
    # One value per distinct token, so a password and the URIs that embed it agree;
    # the longest first, so that no token is replaced inside a longer one.
    for token in $(grep -o 'CHANGE_ME_[A-Z][A-Z_]*' "$ROOT/deploy/env.example" \
                   | sort -u | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2); do
        content="${content//$token/$(random_token)}"
    done
    (umask 077 && printf '%s\n' "$content" >"$ENV_FILE")
    say "wrote deploy/.env with random passwords (mode 600)"
fi

mkdir -p "$SECRETS"
chmod 700 "$SECRETS"
for key in gateway-secret.key intake-master.key referrals-master.key; do
    if [ -f "$SECRETS/$key" ]; then
        say "var/secrets/$key exists; left as it is"
        continue
    fi
    head -c 32 /dev/urandom | base64 >"$SECRETS/$key"
    # Compose bind-mounts file secrets with their host mode: the container's non-root user
    # must read them, and the 700 directory keeps other host users out.
    chmod 644 "$SECRETS/$key"
    say "wrote var/secrets/$key"
done
# Ed25519 pair signing the actor assertions (tansiq.identity): the private key goes to the gateway only.
if [ -f "$SECRETS/actor-signing.key" ]; then
    say "var/secrets/actor-signing.key exists; left as it is"
else
    openssl genpkey -algorithm ed25519 -out "$SECRETS/actor-signing.key"
    openssl pkey -in "$SECRETS/actor-signing.key" -pubout -out "$SECRETS/actor-signing.pub"
    chmod 644 "$SECRETS/actor-signing.key" "$SECRETS/actor-signing.pub"  # see above: the 700 folder guards them
    say "wrote var/secrets/actor-signing.key and actor-signing.pub"
fi
# The network's transport keys (tansiq.transport): one line "<key id> <base64 of 32 bytes>", every service.
if [ -f "$SECRETS/transport.keys" ]; then
    say "var/secrets/transport.keys exists; left as it is"
else
    printf '%s %s\n' "$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
        "$(head -c 32 /dev/urandom | base64)" >"$SECRETS/transport.keys"
    chmod 644 "$SECRETS/transport.keys"  # see above: the 700 folder guards it
    say "wrote var/secrets/transport.keys"
fi
