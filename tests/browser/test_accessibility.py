"""axe-core on every page the gateway declares, in Arabic and in French: each GET page route is opened in the
OS Chromium by someone whose roles open it (the public for open pages), with the demo network's data and a
case, a referral and an event of the test's own, and axe-core finds no violation at all: none serious
or critical (labels, contrast, lang and dir...), and none moderate or minor either (unique landmarks, one
h1, named table columns), which the pages fixed once and keep.

The same visits at a phone's width (390 px), in both languages: no page is wider than the screen.

The visits are one table; a page route declared without a visit here fails the test, so a new page is
checked from the day it is added."""

import json
import uuid
from datetime import date, timedelta
from urllib.parse import quote, urlsplit

import pytest
import requests

from services.gateway.routes import OPTIONAL, PUBLIC, declared_routes
from services.gateway.service import GatewayService
from tansiq.demo import STAFF

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
FATIMA = "fatima@amal-safi.example"  # case worker, Amal (Safi): she registers and refers the case
HANANE = "hanane@amal-safi.example"  # case worker and coordinator, Amal: she organises the event
YOUSSEF = "youssef@amal-safi.example"  # events manager, Amal
NAIMA = "naima@wafae.example"  # case worker, Wafae (Marrakech): she receives the referral
SALMA = "salma@wafae.example"  # coordinator and admin, Wafae
EVERY_IMPACT = ("minor", "moderate", "serious", "critical")
ROLES_OF = {email: set(roles) for _, _, _, email, _, roles in STAFF}

# GET page route -> (who opens it: None for the public, the path with the set-up's values).
VISITS = {
    "/": (HANANE, "/"),
    "/account": (NAIMA, "/account"),
    "/beneficiaries": (FATIMA, "/beneficiaries?q=Salma"),
    "/beneficiaries/<string:beneficiary_id>": (FATIMA, "/beneficiaries/{beneficiary}"),
    "/beneficiaries/<string:beneficiary_id>/erase": (SALMA, "/beneficiaries/{beneficiary}/erase"),
    "/calendar": (HANANE, "/calendar?view=month"),
    "/calendar/events/<string:event_id>": (None, "/calendar/events/{event}"),
    "/calendar/events/<string:event_id>/cancel": (HANANE, "/calendar/events/{event}/cancel"),
    "/calendar/events/<string:event_id>/edit": (YOUSSEF, "/calendar/events/{event}/edit"),
    "/calendar/events/<string:event_id>/occurrences/cancel": (
        HANANE, "/calendar/events/{event}/occurrences/cancel?recurrence_id={occurrence}"),
    "/calendar/events/<string:event_id>/occurrences/move": (
        YOUSSEF, "/calendar/events/{event}/occurrences/move?recurrence_id={occurrence}"),
    "/calendar/events/<string:event_id>/register": (NAIMA, "/calendar/events/{event}/register"),
    "/calendar/new": (YOUSSEF, "/calendar/new"),
    "/calendar/search": (None, "/calendar/search?q=Formation&from=2027-13-01"),  # with an error at its field
    "/events/<string:event_id>": (FATIMA, "/events/{event}"),
    "/inbox": (NAIMA, "/inbox"),
    "/inbox/<int:item_id>": (NAIMA, "/inbox/1"),
    "/intake": (FATIMA, "/intake"),
    "/login": (None, "/login?next=%2Finbox"),
    "/referrals": (NAIMA, "/referrals"),
    "/referrals/<string:referral_id>": (FATIMA, "/referrals/{referral}"),
    "/staff": (SALMA, "/staff"),
}
PAGE_ROUTES = {d.url: d for d in declared_routes(GatewayService) if d.page and d.method == "GET"}


def test_every_page_route_the_gateway_declares_has_a_visit():
    assert sorted(set(PAGE_ROUTES) - set(VISITS)) == [], "a page without an accessibility visit: add it to VISITS"
    assert sorted(set(VISITS) - set(PAGE_ROUTES)) == [], "a visit of a page the gateway no longer declares"
    for url, (who, _) in VISITS.items():
        declared = PAGE_ROUTES[url]
        opens = declared.auth in (PUBLIC, OPTIONAL) if who is None else bool(ROLES_OF[who] & declared.roles())
        assert opens, f"{who or 'the public'} may not open {url}"


@pytest.fixture(scope="module")
def values(network):
    """The set-up's case, referral and event (with one of its dates): what the visits' paths name."""
    from harness import referred_case

    base = network.web
    beneficiary, referral = referred_case(network, FATIMA, first_name="Salma", last_name="Bouazzaoui",
                                          first_name_ar="سلمى", phone=f"06{uuid.uuid4().int % 10**8:08d}")
    monday = date.today() + timedelta(days=7 * 30 - date.today().weekday())
    event = network.login(HANANE).post(f"{base}/api/events", json={
        "title": "Formation écoute – جلسة استماع", "kind": "training", "organiser": "amal-safi", "city": "Safi",
        "start": f"{monday}T10:00", "end": f"{monday}T12:00", "rrule": "FREQ=WEEKLY;COUNT=5",
        "visibility": "public", "status": "published"}, timeout=30)
    assert event.status_code == 201, event.text
    event_id = event.json()["event"]["id"]
    first = requests.get(f"{base}/api/events/{event_id}", timeout=30).json()["starts_at"]
    return {"beneficiary": beneficiary, "referral": referral["id"], "event": event_id,
            "occurrence": quote(first, safe="")}


def visit(network, values, open_page, url, lang, viewport):
    """The page of `url` opened by its visitor in `lang` on a screen of `viewport`, checked to be that page."""
    from playwright.sync_api import expect

    who, path = VISITS[url]
    path = path.format(**values)
    page = open_page(network.web, viewport, lang, who, keep_session=True)  # one sign-in a visitor: pages are read
    answer = page.goto(f"{network.web}{path}{'&' if '?' in path else '?'}lang={lang}")
    assert answer.status in ((422,) if "from=2027-13-01" in path else (200,)), (path, answer.status)
    assert urlsplit(page.url).path != "/login" or url == "/login", "sent to sign in: the visit's session failed"
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page.locator("html")).to_have_attribute("dir", "rtl" if lang == "ar" else "ltr")
    expect(page.locator("main")).to_be_visible()
    if url == "/calendar":
        expect(page.locator(".fc-view-harness")).to_be_visible()
    return page


@pytest.mark.parametrize("lang", ["ar", "fr"])
@pytest.mark.parametrize("url", sorted(VISITS))
def test_axe_finds_no_violation_on_the_page(network, values, open_page, axe, url, lang):
    page = visit(network, values, open_page, url, lang, DESKTOP)
    violations = axe(page, impacts=EVERY_IMPACT)
    assert violations == [], json.dumps({url: violations}, indent=1, ensure_ascii=False)


@pytest.mark.parametrize("lang", ["ar", "fr"])
@pytest.mark.parametrize("url", sorted(VISITS))
def test_no_page_is_wider_than_a_phone(network, values, open_page, url, lang):
    """Every page at 390 px, in Arabic (right to left) and French: nothing wider than the screen."""
    page = visit(network, values, open_page, url, lang, PHONE)
    width = page.evaluate("Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")
    assert width <= PHONE["width"], (url, lang, width)
