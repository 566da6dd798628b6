"""The calendar page of the real gateway, in the OS Chromium, showing the demo network's events
(seeded by `tansiq demo`, served by the events service over RPC through the real broker)."""

import re
from datetime import datetime, timedelta, timezone

import pytest
import requests

pytestmark = pytest.mark.browser


def demo_occurrence(network, title_part):
    now = datetime.now(timezone.utc)
    response = requests.get(f"{network.web}/api/events", timeout=30, params={
        "start": (now - timedelta(days=7)).date().isoformat(), "end": (now + timedelta(days=60)).date().isoformat()})
    response.raise_for_status()
    body = response.json()
    occurrences = body["items"] if isinstance(body, dict) else body
    return next(o for o in occurrences if title_part in o["title"])


def test_month_and_list_views_show_the_demo_events_and_filter_by_city(demo_network, page):
    from playwright.sync_api import expect

    festival = demo_occurrence(demo_network, "Festival des arts de Mogador")
    day = festival["start"][:10]
    page.goto(f"{demo_network.web}/calendar?lang=fr&date={day}")
    festival = page.locator(".fc-dayGridMonth-view .fc-event", has_text="Festival des arts de Mogador")
    expect(festival.first).to_be_visible()

    page.locator(".fc-listMonth-button").click()
    rows = page.locator(".fc-list-event")
    expect(rows.filter(has_text="Festival des arts de Mogador").first).to_be_visible()
    page.select_option("#filter-city", "Essaouira")
    expect(rows.filter(has_text="Festival des arts de Mogador").first).to_be_visible()
    expect(rows.filter(has_text="Formation couture et broderie")).to_have_count(0)
    expect(page.locator("#ical-link")).to_have_attribute(
        "href", f"webcal://{demo_network.web.split('://')[1]}/ical/city/Essaouira.ics")


def test_the_demo_calendar_in_arabic_is_right_to_left(demo_network, page):
    from playwright.sync_api import expect

    festival = demo_occurrence(demo_network, "Festival des arts de Mogador")
    page.goto(f"{demo_network.web}/calendar?lang=ar&date={festival['start'][:10]}")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.locator(".fc")).to_have_class(re.compile(r"\bfc-direction-rtl\b"))
    expect(page.locator(".fc-event", has_text="Festival des arts de Mogador").first).to_be_visible()


def test_the_network_feed_has_the_demo_events(demo_network):
    feed = requests.get(f"{demo_network.web}/ical/network.ics", timeout=30)
    assert feed.status_code == 200 and feed.headers["Content-Type"].startswith("text/calendar")
    assert "BEGIN:VTIMEZONE" in feed.text and "TZID:Africa/Casablanca" in feed.text
    assert "Festival des arts de Mogador" in feed.text
