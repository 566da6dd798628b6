#!/usr/bin/env bash
# Make sure the OS Chromium is there for the browser tests (Playwright drives it).
# Installs it with apt when missing and possible; otherwise those tests are skipped,
# unless TANSIQ_REQUIRE_BROWSER=1, as in CI.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

for name in chromium chromium-browser; do
    if have "$name"; then
        say "browser: $(command -v "$name")"
        exit 0
    fi
done
if apt_install chromium && have chromium; then
    say "browser: $(command -v chromium)"
    exit 0
fi
if [ "${TANSIQ_REQUIRE_BROWSER:-0}" = 1 ]; then
    die "Chromium is missing (TANSIQ_REQUIRE_BROWSER=1): apt-get install -y chromium"
fi
warn "Chromium is missing (apt-get install -y chromium): the browser tests will be skipped"
