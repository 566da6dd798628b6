#!/usr/bin/env bash
# Make sure the browser tests can run: the OS Chromium (Playwright drives it) and libatomic1,
# which Playwright's bundled node needs and which neither a minimal Debian nor the chromium
# package brings (without it every browser test fails with "Connection closed while reading
# from the driver"). Installs what is missing with apt when possible; otherwise those tests
# are skipped, unless TANSIQ_REQUIRE_BROWSER=1, as in CI.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PYTHON="$ROOT/.venv/bin/python"

missing() {
    if [ "${TANSIQ_REQUIRE_BROWSER:-0}" = 1 ]; then
        die "$1 (TANSIQ_REQUIRE_BROWSER=1): $2"
    fi
    warn "$1 ($2): the browser tests will be skipped or fail"
    exit 0
}

# The path tests/browser/conftest.py drives.
CHROMIUM=/usr/bin/chromium

have_libatomic() { ldconfig -p 2>/dev/null | grep -q 'libatomic\.so\.1 '; }

packages=()
[ -x "$CHROMIUM" ] || packages+=(chromium)
have_libatomic || packages+=(libatomic1)
if [ ${#packages[@]} -gt 0 ]; then
    apt_install "${packages[@]}" || true
fi

if [ ! -x "$CHROMIUM" ]; then
    # Ubuntu ships Chromium as a snap, started through a wrapper at another path.
    missing "$CHROMIUM is missing" "apt-get install -y chromium; on Ubuntu, where Chromium is a snap, the browser tests cannot use it yet"
fi
have_libatomic || missing "libatomic.so.1 is missing (Playwright's node needs it)" "apt-get install -y libatomic1"

# axe-core (the accessibility checks of tests/browser), pinned by tests/browser/axe/package-lock.json,
# installed from the npm registry with npm (apt's npm when missing). Without it those checks fail
# with the command to run.
AXE_DIR="$ROOT/tests/browser/axe"
if [ ! -f "$AXE_DIR/node_modules/axe-core/axe.min.js" ]; then
    have npm || apt_install npm || true
    if have npm; then
        say "npm ci (axe-core) in tests/browser/axe"
        (cd "$AXE_DIR" && npm ci --no-audit --no-fund --loglevel=error) || missing "npm ci of axe-core failed" "cd tests/browser/axe && npm ci"
    else
        missing "npm is missing (axe-core is installed with it)" "apt-get install -y npm"
    fi
fi

# Playwright's driver is a node program: start it once so a missing library shows here, in
# plain words, instead of as a closed connection in every browser test.
if [ -x "$PYTHON" ] && "$PYTHON" -c "import playwright" 2>/dev/null; then
    if ! output="$("$PYTHON" -m playwright --version 2>&1)"; then
        printf '%s\n' "$output" >&2
        missing "Playwright's driver does not start" "see the error above"
    fi
    say "browser: $CHROMIUM, driven by $output"
else
    say "browser: $CHROMIUM"
fi
