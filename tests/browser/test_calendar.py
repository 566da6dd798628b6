"""The calendar page in the OS Chromium (Playwright): month and list views, filters, Arabic RTL, phone.

Served by a small WSGI fixture that renders the real template and static files and answers
/api/occurrences from the real events domain on SQLite (three occurrences a page, so the page
follows `next` cursors), so it runs without the broker; the end-to-end suite points the same
checks at the real gateway.
"""

import json
import re
import threading
from datetime import datetime

import pytest
import requests
from sqlalchemy.orm import Session
from werkzeug.exceptions import NotFound
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from services.events import domain, occurrences
from services.events.models import Base
from services.events.schemas import OccurrencePageSchema, PagedWindow, load_window
from services.gateway.api_events import calendar_page
from services.gateway.web import HERE
from tansiq.db import make_engine
from tansiq.messaging.store import messaging_metadata

pytestmark = pytest.mark.browser
PAGE_SIZE = 3  # small, so a month view needs several pages

ASSOCIATIONS = [
    {"slug": "amal-safi", "name_fr": "Association Amal", "name_ar": "جمعية أمل", "city": "Safi"},
    {"slug": "tilila-marrakech", "name_fr": "Association Tilila", "name_ar": "جمعية تيليلا", "city": "Marrakech"},
]
NOW = datetime.fromisoformat("2027-01-10T08:00:00+00:00")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('calendar') / 'events.db'}")
    Base.metadata.create_all(engine)
    messaging_metadata.create_all(engine)
    known = {a["slug"] for a in ASSOCIATIONS}
    with Session(engine) as session:
        venue = domain.create_venue(session, name="Dar Sidi Bouzid", city="Safi", address="Route de Sidi Bouzid",
                                    latitude=32.32, longitude=-9.26)
        for spec in (
            {"title": "Salon de l'artisanat", "kind": "exhibition", "organiser": "amal-safi", "venue_id": venue.id,
             "start": "2027-03-03T10:00", "end": "2027-03-03T18:00"},  # Ramadan time: UTC+0
            {"title": "Formation couture", "kind": "training", "organiser": "amal-safi", "city": "Safi",
             "start": "2027-03-01T10:00", "end": "2027-03-01T12:00", "rrule": "FREQ=WEEKLY;COUNT=4"},
            {"title": "Festival des arts", "kind": "festival", "organiser": "tilila-marrakech", "city": "Marrakech",
             "all_day": True, "start": "2027-03-12", "end": "2027-03-14"},
        ):
            domain.create_event(session, NOW, {"status": "published", "visibility": "public", **spec}, known)
        session.commit()

    def app(environ, start_response):
        request = Request(environ)
        path = request.path
        if path == "/calendar":
            response = calendar_page(request, ASSOCIATIONS)
        elif path == "/api/occurrences":
            window = load_window({"limit": PAGE_SIZE, **request.args.to_dict()}, PagedWindow)
            with Session(engine) as session:
                found = occurrences.page(session, window["start"], window["end"], city=window["city"],
                                         kind=window["kind"], association=window["association"],
                                         cursor=window["cursor"], limit=window["limit"])
                body = OccurrencePageSchema().dump({"items": found.items, "next": found.next})
                response = Response(json.dumps(body), mimetype="application/json")
        elif path.startswith("/static/") and (HERE / path.lstrip("/")).is_file():
            file = HERE / path.lstrip("/")
            mimetype = {".js": "text/javascript", ".css": "text/css"}.get(file.suffix, "application/octet-stream")
            response = Response(file.read_bytes(), mimetype=mimetype)
        else:
            response = NotFound()
        return response(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    engine.dispose()


def test_month_and_list_views_show_the_network_events(site, page):
    from playwright.sync_api import expect

    page.goto(f"{site}/calendar?lang=fr&date=2027-03-01")
    month = page.locator(".fc-dayGridMonth-view")
    expect(month.locator(".fc-event", has_text="Salon de l'artisanat")).to_have_count(1)
    expect(month.locator(".fc-event", has_text="Festival des arts")).to_have_count(1)
    expect(month.locator(".fc-event", has_text="Formation couture")).to_have_count(4)
    expect(page.locator(".fc-toolbar-title")).to_have_text("mars 2027")

    page.locator(".fc-listMonth-button").click()
    rows = page.locator(".fc-list-event")
    expect(rows.filter(has_text="Salon de l'artisanat")).to_have_count(1)
    # Shown at the viewer's wall time, Casablanca here: 10:00 in Safi, although Ramadan time is UTC+0.
    expect(rows.filter(has_text="Salon de l'artisanat").locator(".fc-list-event-time")).to_contain_text("10:00")

    rows.filter(has_text="Salon de l'artisanat").locator(".fc-list-event-title").click()
    details = page.locator("#event-details")
    expect(details).to_be_visible()
    expect(details.locator("#event-where")).to_contain_text("Dar Sidi Bouzid")
    expect(details.locator("#event-kind")).to_have_text("Exposition")  # the catalogue's word, from the page
    expect(details.locator("dt").first).to_have_text("Quand")
    expect(details.locator("#event-open")).to_have_text("Page de l'événement")
    expect(details.locator("#event-ical")).to_have_attribute("href", re.compile(r"^/ical/event/.+\.ics$"))


def test_filter_by_city(site, page):
    from playwright.sync_api import expect

    page.goto(f"{site}/calendar?lang=en&date=2027-03-01&view=list")
    rows = page.locator(".fc-list-event")
    expect(rows.filter(has_text="Festival des arts")).to_have_count(3)  # one row per day, 12-14 March
    page.select_option("#filter-city", "Safi")
    expect(rows.filter(has_text="Festival des arts")).to_have_count(0)
    expect(rows.filter(has_text="Salon de l'artisanat")).to_have_count(1)
    # A webcal:// link for calendar apps, and the feed's own address to copy.
    expect(page.locator("#ical-link")).to_have_attribute("href", f"webcal://{site.split('://')[1]}/ical/city/Safi.ics")
    expect(page.locator("#calendar-feed input")).to_have_value(f"{site}/ical/city/Safi.ics")
    page.select_option("#filter-city", "Marrakech")
    expect(rows.filter(has_text="Salon de l'artisanat")).to_have_count(0)
    expect(rows.filter(has_text="Festival des arts")).to_have_count(3)


def test_arabic_is_right_to_left(site, page):
    from playwright.sync_api import expect

    page.goto(f"{site}/calendar?lang=ar&date=2027-03-01")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.locator(".fc")).to_have_class(re.compile(r"\bfc-direction-rtl\b"))
    # ar-MA weeks start on Saturday: the Friday-Sunday festival is drawn in two segments.
    expect(page.locator(".fc-event", has_text="Festival des arts")).to_have_count(2)
    expect(page.locator(".fc-dayGridMonth-button")).to_have_text("شهر")
    expect(page.locator("label", has_text="المدينة")).to_have_count(1)
    # Right to left for real: the first day column sits to the right of the second one.
    headers = page.locator(".fc-col-header-cell")
    first, second = headers.nth(0).bounding_box(), headers.nth(1).bounding_box()
    assert first["x"] > second["x"]


def test_phone_starts_with_the_list(site, browser):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto(f"{site}/calendar?lang=fr&date=2027-03-01")
        expect(page.locator(".fc-list-event", has_text="Formation couture")).to_have_count(4)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # nothing wider than the screen
    finally:
        context.close()


def test_an_event_in_the_address_opens_its_details(site, page):
    """/calendar?event=<id>: the calendar at its date, its details open."""
    from playwright.sync_api import expect

    listed = requests.get(f"{site}/api/occurrences", timeout=30, params={
        "start": "2027-03-01", "end": "2027-04-01", "limit": 100}).json()
    assert listed["next"] is None and listed["truncated"] is False
    festival = next(o for o in listed["items"] if o["title"] == "Festival des arts")
    page.goto(f"{site}/calendar?lang=fr&date=2027-03-12&event={festival['event_id']}")
    details = page.locator("#event-details")
    expect(details).to_be_visible()
    expect(details.locator("#event-title")).to_have_text("Festival des arts")
    expect(details.locator("#event-organiser")).to_have_text("Association Tilila")  # its name, not its slug
    details.locator("button").click()  # closed, it stays closed when the events load again
    expect(details).to_be_hidden()
    page.locator(".fc-next-button").click()
    page.locator(".fc-prev-button").click()
    expect(page.locator(".fc-event", has_text="Festival des arts")).to_have_count(1)
    expect(details).to_be_hidden()
