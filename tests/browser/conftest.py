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


@pytest.fixture
def page(browser):
    """A desktop-sized page in French; any JavaScript error on it fails the test."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, locale="fr-FR")
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == []


@pytest.fixture(scope="module")
def gateway_network(sync_api, broker_admin):
    """The demo network's directory and gateway, one per test module: starting services is the slow part."""
    from harness import Network

    network = Network()
    try:
        network.migrate()
        network.seed()
        network.start("directory", "gateway")
        yield network
    finally:
        network.close()
