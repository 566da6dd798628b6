"""The OS Chromium, driven by Playwright, for every browser test (Playwright's own download does not work here)."""

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]


@pytest.fixture(scope="module")
def sync_api():
    """playwright.sync_api; skipped without Chromium, a failure instead when TANSIQ_REQUIRE_BROWSER=1."""
    required = os.environ.get("TANSIQ_REQUIRE_BROWSER") == "1"
    if not Path(CHROMIUM).exists():
        if required:
            pytest.fail(f"{CHROMIUM} is missing and TANSIQ_REQUIRE_BROWSER=1")
        pytest.skip(f"{CHROMIUM} is not installed")
    if required:
        import playwright.sync_api  # must be there: fail, don't skip

        return playwright.sync_api
    return pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser(sync_api):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def demo_network(broker_admin):
    """The demo network (`tansiq demo`) with the services the calendar needs: directory, events, gateway.
    One a module: starting services is the slow part."""
    from harness import seeded_network

    with seeded_network("directory", "events", "gateway") as network:
        yield network


SERVICES = ("directory", "intake", "notifications", "referrals", "events", "gateway")
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def live_network(broker_admin):
    """Every service on the demo data (`tansiq demo`), one network a module: starting it is the slow part, so
    a module's tests share it, each with data of its own (its own women, phones, referrals, events)."""
    from harness import seeded_network

    with seeded_network(*SERVICES) as network:
        yield network


@pytest.fixture(scope="module")
def network(sync_api, live_network):
    return live_network  # skipped before starting anything when there is no browser


@pytest.fixture
def phone(browser):
    """new_phone(locale) -> a phone-sized page in its own context (own cookies: one staff member each);
    JavaScript errors and CSP refusals fail the test."""
    contexts, errors = [], []

    def new_phone(locale="fr-FR"):
        context = browser.new_context(viewport=PHONE, locale=locale, is_mobile=True, has_touch=True)
        contexts.append(context)
        return watched(context.new_page(), errors)

    yield new_phone
    for context in contexts:
        context.close()
    assert errors == [], "JavaScript errors or policy violations on the pages"


def watched(page, errors):
    """`page`, its JavaScript errors and what the strict CSP refused added to `errors`."""
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda message: errors.append(message.text)
            if "Content Security Policy" in message.text else None)
    return page


@pytest.fixture
def page(browser):
    """A desktop-sized page in French, in Moroccan time (the calendar draws times in the viewer's zone);
    any JavaScript error on it fails the test."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, locale="fr-FR",
                                  timezone_id="Africa/Casablanca")
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == []


@pytest.fixture(scope="module")
def kept_sessions():
    """(base, email) -> the browser storage (her session cookie) of one sign-in, for a module's visits that
    only read pages: a sign-in checks her password with argon2, which costs more than most pages."""
    return {}


@pytest.fixture
def open_page(browser, kept_sessions):
    """open_page(base, viewport, lang, email=None, javascript=True, keep_session=False) -> a page in its own
    context (a phone's touch screen when narrow), signed in as `email` (none: the public), in Casablanca time;
    with keep_session, in the session of the module's first sign-in of `email` (visits that change nothing).
    JavaScript errors and CSP refusals fail the test."""
    contexts, errors = [], []

    def open_page(base, viewport, lang, email=None, javascript=True, keep_session=False):
        phone = viewport["width"] < 600
        kept = kept_sessions.get((base, email)) if email and keep_session else None
        context = browser.new_context(viewport=viewport, locale={"ar": "ar-MA", "fr": "fr-FR"}.get(lang, "en-GB"),
                                      timezone_id="Africa/Casablanca", is_mobile=phone, has_touch=phone,
                                      java_script_enabled=javascript, storage_state=kept)
        contexts.append(context)
        if email and kept is None:
            answer = context.request.post(f"{base}/api/login", data={"email": email, "password": "tansiq-demo"})
            assert answer.ok, answer.text()
            if keep_session:
                kept_sessions[(base, email)] = context.storage_state()
        return watched(context.new_page(), errors)

    yield open_page
    for context in contexts:
        context.close()
    assert errors == [], "JavaScript errors or policy violations on the pages"


# axe-core from the npm registry, pinned in tests/browser/axe/package-lock.json and installed there by
# scripts/ensure-browser.sh (`npm ci`).
AXE_SCRIPT = Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = ("serious", "critical")


@pytest.fixture(scope="session")
def axe():
    """axe(page, impacts=("serious", "critical")) -> the accessibility violations axe-core finds on the
    page as it is now: [{"id", "impact", "help", "targets"}], empty when there are none.

    The script is evaluated through the DevTools protocol, which the pages' strict CSP (no inline
    script) does not govern, so the pages are checked as they are served. Skipped without axe-core,
    a failure instead when TANSIQ_REQUIRE_BROWSER=1.
    """
    if not AXE_SCRIPT.exists():
        message = f"{AXE_SCRIPT} is missing: scripts/ensure-browser.sh (or cd tests/browser/axe && npm ci)"
        if os.environ.get("TANSIQ_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    source = AXE_SCRIPT.read_text(encoding="utf-8") + "\n;true"

    def check(page, impacts=SERIOUS):
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.evaluate(source)
        result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
                 "targets": [node["target"] for node in v["nodes"]][:5]}
                for v in result["violations"] if v["impact"] in impacts]

    return check


@pytest.fixture(scope="module")
def gateway_network(sync_api, broker_admin):
    """The demo network's directory and gateway, one per test module: starting services is the slow part."""
    from harness import seeded_network

    with seeded_network("directory", "gateway") as network:
        yield network
