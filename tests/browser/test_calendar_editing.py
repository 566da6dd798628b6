"""Editing the calendar in its pages, in the OS Chromium against the real network (directory, events,
gateway over the broker), in Arabic and French at phone (390×844) and desktop (1280×800) widths.

A coordinator creates a recurring training through the form and finds it in the month view and in
the feed; an events manager edits the series, moves one date and cancels another (after a
confirmation); a case worker and the public see no edit action and are refused if they try; the forms
work without JavaScript; no calendar page is wider than a phone in any language; axe-core finds no
serious or critical violation. Screenshots go to test-results/calendar/ (kept as test artifacts).
"""

import json
import re
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
SHOTS = Path(__file__).resolve().parents[2] / "test-results" / "calendar"
HANANE = "hanane@amal-safi.example"  # case worker and coordinator, Amal (Safi)
YOUSSEF = "youssef@amal-safi.example"  # events manager, Amal (Safi)
FATIMA = "fatima@amal-safi.example"  # case worker only
JOURNEYS = [("fr", DESKTOP), ("fr", PHONE), ("ar", DESKTOP), ("ar", PHONE)]


@pytest.fixture(scope="module")
def network(demo_network):
    return demo_network


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def monday_in(weeks):
    today = date.today()
    return today + timedelta(days=7 * weeks - today.weekday())


def api_event(network, email, **fields):
    """An event made through the JSON API (the set-up of a page test), returned as the service answers."""
    body = {"title": f"Réunion {uuid.uuid4().hex[:6]}", "kind": "training", "organiser": "amal-safi",
            "city": "Safi", "start": f"{monday_in(40)}T10:00", "end": f"{monday_in(40)}T12:00",
            "rrule": "FREQ=WEEKLY;COUNT=5", "visibility": "public", "status": "published", **fields}
    answer = network.login(email).post(f"{network.web}/api/events", json=body, timeout=30)
    assert answer.status_code == 201, answer.text
    return answer.json()["event"]


def width_of(page):
    return page.evaluate("Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")


@pytest.mark.parametrize("lang, viewport", JOURNEYS, ids=[f"{lang}-{v['width']}" for lang, v in JOURNEYS])
def test_a_coordinator_creates_a_recurring_training_and_finds_it_in_the_month_view_and_the_feed(
        network, open_page, lang, viewport):
    from playwright.sync_api import expect

    base = network.web
    title = f"Formation couture {lang}-{viewport['width']}-{uuid.uuid4().hex[:4]}"
    first = monday_in(30 + JOURNEYS.index((lang, viewport)) * 6)
    page = open_page(base, viewport, lang, HANANE)
    page.goto(f"{base}/calendar?lang={lang}")
    page.locator("#new-event").click()
    expect(page).to_have_url(re.compile(r"/calendar/new\?lang=" + lang))
    form = page.locator("#event-form")
    form.locator("[name=title]").fill(title)
    form.locator("[name=kind]").select_option("training")
    form.locator("[name=city]").fill("Safi")
    form.locator("[name=start_date]").fill(first.isoformat())
    form.locator("[name=start_time]").fill("10:00")
    form.locator("[name=end_date]").fill(first.isoformat())
    form.locator("[name=end_time]").fill("12:00")
    form.locator("[name=freq]").select_option("WEEKLY")
    form.locator("[name=byday][value=MO]").check()
    form.locator("[name=byday][value=WE]").check()
    form.locator("[name=ends][value=count]").check()
    form.locator("[name=count]").fill("4")
    form.locator("[name=exdates]").fill((first + timedelta(days=2)).isoformat())  # no session that Wednesday
    form.locator("[name=visibility]").select_option("public")
    shot(page, f"create-form-{lang}-{viewport['width']}")
    form.locator("#event-submit").click()

    expect(page.locator("#saved")).to_be_visible()
    expect(page.locator("#event-title")).to_have_text(title)
    expect(page.locator("#event-skipped")).to_have_count(1)
    # Four sessions were asked for (Mon, Wed, Mon, Wed), one skipped: three remain.
    expect(page.locator("#occurrences li.occurrence")).to_have_count(3)
    expect(page.locator("#edit-actions")).to_be_visible()
    expect(page.locator("#event-organiser")).to_contain_text("جمعية أمل" if lang == "ar" else "Amal")
    event_id = page.locator("#event").get_attribute("data-event-id")
    shot(page, f"created-{lang}-{viewport['width']}")

    # Search finds it by a word of its title, in Safi, in the weeks it runs (and not in Marrakech).
    page.goto(f"{base}/calendar/search?lang={lang}")
    search = page.locator("#search-form")
    search.locator("[name=q]").fill(title.split()[-1])
    search.locator("[name=city]").select_option("Safi")
    search.locator("[name=from]").fill(first.isoformat())
    search.locator("[name=to]").fill((first + timedelta(days=21)).isoformat())
    search.locator("button[type=submit]").click()
    expect(page.locator("#search-results li")).to_have_count(1)
    search.locator("[name=city]").select_option("Marrakech")
    search.locator("button[type=submit]").click()
    expect(page.locator("#no-results")).to_be_visible()
    page.go_back()
    page.locator("#search-results a", has_text=title).click()
    expect(page).to_have_url(re.compile(rf"/calendar/events/{event_id}\?lang={lang}$"))

    page.goto(f"{base}/calendar?lang={lang}&date={first}&view=month")
    month = page.locator(".fc-dayGridMonth-view")
    expect(month.locator(".fc-event", has_text=title).first).to_be_visible()
    assert width_of(page) <= viewport["width"]
    shot(page, f"month-{lang}-{viewport['width']}")

    # The feed the page offers (webcal:// for calendar apps, its https address to copy) has the series.
    page.locator(".subscribe summary").click()
    assert page.locator("#ical-link").get_attribute("href") == f"webcal://{base.split('://')[1]}/ical/network.ics"
    address = page.locator("#calendar-feed input").input_value()
    assert address == f"{base}/ical/network.ics"
    feed = requests.get(address, timeout=30)
    assert feed.status_code == 200 and feed.headers["Content-Type"].startswith("text/calendar")
    event_block = next(block for block in feed.text.split("BEGIN:VEVENT") if f"UID:{event_id}@" in block)
    assert title in event_block
    rule = next(line for line in event_block.splitlines() if line.startswith("RRULE:"))
    assert set(rule[len("RRULE:"):].split(";")) == {"FREQ=WEEKLY", "COUNT=4", "BYDAY=MO,WE"}
    assert f"EXDATE;TZID=Africa/Casablanca:{first + timedelta(days=2):%Y%m%d}T100000" in event_block


@pytest.mark.parametrize("lang, viewport", [("ar", PHONE), ("fr", DESKTOP)], ids=["ar-390", "fr-1280"])
def test_an_events_manager_edits_the_series_moves_one_date_and_cancels_another(network, open_page, lang, viewport):
    from playwright.sync_api import expect

    base = network.web
    event = api_event(network, YOUSSEF, title=f"Atelier {uuid.uuid4().hex[:6]}", kind="meeting",
                      start=f"{monday_in(50 + (lang == 'fr'))}T10:00", end=f"{monday_in(50 + (lang == 'fr'))}T12:00")
    page = open_page(base, viewport, lang, YOUSSEF)
    page.goto(f"{base}/calendar/events/{event['id']}?lang={lang}")
    occurrences = page.locator("#occurrences li.occurrence")
    expect(occurrences).to_have_count(5)

    # A mistake is shown at its field, in the page's language, and nothing is saved.
    page.locator("#edit-event").click()
    form = page.locator("#event-form")
    form.locator("[name=end_time]").fill("09:00")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        form.locator("#event-submit").click()
    assert answer.value.status == 422
    error = page.locator("#end_date-error")
    expect(error).to_have_text("يجب أن تأتي النهاية بعد البداية." if lang == "ar" else
                               "La fin doit venir après le début.")
    expect(form.locator("[name=end_date]")).to_have_attribute("aria-invalid", "true")
    shot(page, f"edit-error-{lang}-{viewport['width']}")

    renamed = event["title"] + " (salle 2)"
    form.locator("[name=title]").fill(renamed)
    form.locator("[name=end_time]").fill("12:30")
    form.locator("#event-submit").click()
    expect(page.locator("#saved")).to_be_visible()
    expect(page.locator("#event-title")).to_have_text(renamed)

    # Move the second date to the afternoon.
    occurrences.nth(1).locator(".move-occurrence").click()
    move = page.locator("#move-form")
    move.locator("[name=start_time]").fill("15:00")
    move.locator("[name=end_time]").fill("17:00")
    move.locator("button[type=submit]").click()
    expect(page.locator("#moved")).to_be_visible()
    expect(occurrences.nth(1)).to_contain_text("15:00")
    expect(occurrences.nth(1).locator(".pill")).to_have_count(1)

    # Cancel the third: a confirmation first; "no" changes nothing.
    third = occurrences.nth(2).get_attribute("data-recurrence-id")
    occurrences.nth(2).locator(".cancel-occurrence").click()
    expect(page.locator("#confirm-question")).to_be_visible()
    shot(page, f"confirm-{lang}-{viewport['width']}")
    page.locator("#keep").click()
    expect(occurrences).to_have_count(5)
    occurrences.nth(2).locator(".cancel-occurrence").click()
    page.locator("#confirm").click()
    expect(page.locator("#cancelled")).to_be_visible()
    expect(occurrences).to_have_count(4)
    expect(page.locator(f"li.occurrence[data-recurrence-id='{third}']")).to_have_count(0)
    expect(page.locator("#event-skipped")).to_have_count(1)
    shot(page, f"edited-{lang}-{viewport['width']}")

    stored = network.login(YOUSSEF).get(f"{base}/api/events/{event['id']}", timeout=30).json()
    assert stored["title"] == renamed and third in stored["exdates"] and len(stored["moved"]) == 1


def test_staff_without_the_role_and_the_public_see_no_edit_action_and_are_refused(network, open_page):
    from playwright.sync_api import expect

    base = network.web
    public = api_event(network, HANANE, title=f"Foire {uuid.uuid4().hex[:6]}", kind="fair", rrule=None,
                       start=f"{monday_in(45)}T09:00", end=f"{monday_in(45)}T18:00")
    hidden = api_event(network, HANANE, title=f"Coordination {uuid.uuid4().hex[:6]}", kind="meeting",
                       visibility="network", rrule=None)

    fatima = open_page(base, PHONE, "fr", FATIMA)
    fatima.goto(f"{base}/calendar/events/{public['id']}?lang=fr")
    expect(fatima.locator("#event-title")).to_have_text(public["title"])
    expect(fatima.locator("#edit-actions")).to_have_count(0)
    expect(fatima.locator(".cancel-occurrence, .move-occurrence, #edit-event")).to_have_count(0)
    expect(fatima.locator("#register-form")).to_be_visible()  # any staff registers her own association
    fatima.goto(f"{base}/calendar?lang=fr")
    expect(fatima.locator(".fc")).to_be_visible()
    expect(fatima.locator("#new-event")).to_have_count(0)
    refused = fatima.goto(f"{base}/calendar/new?lang=fr")
    assert refused.status == 403
    shot(fatima, "refused-fr-390")
    assert fatima.goto(f"{base}/calendar/events/{public['id']}/cancel?lang=fr").status == 403

    # Posting the cancel form herself (her session, her CSRF token) is refused by the gateway.
    session = network.login(FATIMA)
    answer = session.post(f"{base}/calendar/events/{public['id']}/cancel?lang=fr", timeout=30,
                          data={"csrf_token": session.headers["X-CSRF-Token"], "idempotency_key": "k-1"})
    assert answer.status_code == 403
    assert requests.get(f"{base}/api/events/{public['id']}", timeout=30).json()["status"] == "published"

    # The public reads a public event's page (its own URL, to share) and nothing else.
    anonymous = open_page(base, DESKTOP, "ar")
    anonymous.goto(f"{base}/calendar/events/{public['id']}?lang=ar")
    expect(anonymous.locator("#event-title")).to_have_text(public["title"])
    expect(anonymous.locator("#edit-actions, #register-form")).to_have_count(0)
    expect(anonymous.locator("#share-url")).to_have_value(f"{base}/calendar/events/{public['id']}")
    anonymous.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    anonymous.locator("#share > .copy-link").click()
    assert anonymous.evaluate("navigator.clipboard.readText()") == f"{base}/calendar/events/{public['id']}"
    assert anonymous.goto(f"{base}/calendar/events/{hidden['id']}?lang=ar").status == 404
    shot(anonymous, "public-event-ar-1280")


def test_the_forms_post_without_javascript_and_only_with_the_pages_token(network, open_page):
    from playwright.sync_api import expect

    base = network.web
    page = open_page(base, PHONE, "fr", HANANE, javascript=False)
    page.goto(f"{base}/calendar/new?lang=fr")
    form = page.locator("#event-form")
    title = f"Campagne {uuid.uuid4().hex[:6]}"
    day = monday_in(60) + timedelta(days=3)
    form.locator("[name=title]").fill(title)
    form.locator("[name=kind]").select_option("campaign")
    form.locator("[name=city]").fill("Safi")
    form.locator("[name=all_day]").check()
    form.locator("[name=start_date]").fill(day.isoformat())
    form.locator("[name=end_date]").fill((day + timedelta(days=2)).isoformat())
    form.locator("#event-submit").click()
    expect(page.locator("#saved")).to_be_visible()
    expect(page.locator("#event-title")).to_have_text(title)
    event_id = page.locator("#event").get_attribute("data-event-id")
    shot(page, "nojs-created-fr-390")

    # Registering one of her staff, still without JavaScript.
    page.locator("#register-form [name=name]").fill("Hanane Benali")
    page.locator("#register-form button[type=submit]").click()
    expect(page.locator("#registered")).to_be_visible()
    expect(page.locator("#registrations li")).to_have_count(1)

    # The same form without the page's CSRF token, or from another site, is refused.
    session = network.login(HANANE)
    body = {"title": "forged", "kind": "meeting", "city": "Safi", "start_date": day.isoformat(),
            "start_time": "10:00", "end_time": "11:00"}
    assert session.post(f"{base}/calendar/new", data=body, timeout=30,
                        headers={"X-CSRF-Token": ""}).status_code == 403
    assert session.post(f"{base}/calendar/new", data={**body, "csrf_token": session.headers["X-CSRF-Token"]},
                        headers={"Origin": "http://evil.example"}, timeout=30).status_code == 403
    assert session.post(f"{base}/api/events", data=body, timeout=30).status_code == 415  # the JSON API stays JSON
    # A double click sends the form twice with its one idempotency key: one event, the same page twice.
    twice = [session.post(f"{base}/calendar/new?lang=fr", timeout=30, allow_redirects=False,
                          data={**body, "title": f"Double {title}", "csrf_token": session.headers["X-CSRF-Token"],
                                "idempotency_key": f"double-{event_id}"}) for _ in range(2)]
    assert [answer.status_code for answer in twice] == [303, 303]
    assert twice[0].headers["Location"] == twice[1].headers["Location"]
    found = session.get(f"{base}/calendar/search", params={"q": f"Double {title}", "lang": "fr",
                                                           "from": day.isoformat()}, timeout=30)
    assert found.text.count('<li class="item status-') == 1  # one result
    found = session.get(f"{base}/api/events/{event_id}", timeout=30).json()
    assert found["title"] == title and len(found["registrations"]) == 1

    # Cancelling the whole event, after its confirmation page, still without JavaScript.
    page.goto(f"{base}/calendar/events/{event_id}?lang=fr")
    page.locator("#cancel-event").click()
    expect(page.locator("#confirm-question")).to_have_text("Annuler cet événement pour tout le réseau ?")
    page.locator("#confirm").click()
    expect(page.locator("#cancelled")).to_be_visible()
    expect(page.locator("#event-status")).to_have_text("Annulé")
    expect(page.locator("#edit-actions, #register-form")).to_have_count(0)
    assert session.get(f"{base}/api/events/{event_id}", timeout=30).json()["status"] == "cancelled"


def test_a_stand_is_booked_with_its_products_and_booking_it_twice_is_refused_at_the_field(network, open_page):
    from playwright.sync_api import expect

    base = network.web
    fair = api_event(network, HANANE, title=f"Salon {uuid.uuid4().hex[:6]}", kind="exhibition", rrule=None,
                     start=f"{monday_in(48)}T10:00", end=f"{monday_in(48)}T18:00")
    page = open_page(base, PHONE, "ar", YOUSSEF)
    page.goto(f"{base}/calendar/events/{fair['id']}?lang=ar")
    form = page.locator("#register-form")
    form.locator("[name=name]").fill("تعاونية أمل")
    form.locator("[name=products]").fill("زرابي\nتطريز")
    form.locator("button[type=submit]").click()
    expect(page.locator("#registered")).to_be_visible()
    expect(page.locator("#registrations li")).to_contain_text("زرابي, تطريز")
    form.locator("[name=name]").fill("تعاونية أمل")
    form.locator("[name=products]").fill("زرابي")
    form.locator("button[type=submit]").click()
    expect(page.locator("#name-error")).to_have_text("مسجل(ة) مسبقًا بهذا الاسم.")
    expect(page.locator("#registrations li")).to_have_count(1)
    shot(page, "stand-refused-ar-390")


def test_times_are_drawn_in_the_viewers_zone_with_the_events_own_zone_shown(network, open_page):
    from playwright.sync_api import expect

    base = network.web
    day = date(date.today().year + 1, 7, 14)  # Paris on summer time (UTC+2), Morocco on UTC+1
    event = api_event(network, HANANE, title=f"Visio Paris {uuid.uuid4().hex[:6]}", kind="meeting", rrule=None,
                      tz="Europe/Paris", start=f"{day}T18:00", end=f"{day}T19:00")
    page = open_page(base, DESKTOP, "fr", HANANE)
    page.goto(f"{base}/calendar?lang=fr&date={day}&view=list")
    row = page.locator(".fc-list-event", has_text=event["title"])
    expect(row.locator(".fc-list-event-time")).to_contain_text("17:00")  # her wall time in Casablanca
    expect(row.locator(".tansiq-zone")).to_contain_text("18:00 Europe/Paris")
    row.locator(".fc-list-event-title").click()
    expect(page.locator("#event-organiser")).to_contain_text("Amal")
    expect(page.locator("#event-organiser")).not_to_contain_text("amal-safi")
    expect(page.locator("#event-open")).to_have_attribute("href", f"/calendar/events/{event['id']}?lang=fr")


def test_a_busy_day_shows_more_instead_of_growing(network, open_page):
    from playwright.sync_api import expect

    base = network.web
    day = monday_in(70)
    for number in range(6):
        api_event(network, HANANE, title=f"Séance {number} {uuid.uuid4().hex[:4]}", kind="meeting", rrule=None,
                  start=f"{day}T{8 + number:02d}:00", end=f"{day}T{8 + number:02d}:45")
    page = open_page(base, DESKTOP, "ar", HANANE)
    page.goto(f"{base}/calendar?lang=ar&date={day}&view=month")
    cell = page.locator(f".fc-daygrid-day[data-date='{day}']")
    expect(cell.locator(".fc-daygrid-more-link")).to_be_visible()
    assert cell.locator(".fc-daygrid-event-harness:not(.fc-daygrid-event-harness-abs)").count() <= 3
    shot(page, "busy-day-ar-1280")


@pytest.mark.parametrize("lang", ["ar", "fr"])
def test_on_a_phone_the_calendar_opens_on_the_list_at_its_width_and_its_toolbar_answers(network, open_page, lang):
    from playwright.sync_api import expect

    base = network.web
    page = open_page(base, PHONE, lang)
    page.goto(f"{base}/calendar?lang={lang}")
    expect(page.locator(".fc-listMonth-view")).to_be_visible()
    # A page wider than the screen makes a phone zoom out (its layout viewport grows with the page).
    assert page.evaluate("window.innerWidth") == PHONE["width"] and width_of(page) <= PHONE["width"]
    title = page.locator(".fc-toolbar-title").inner_text()
    page.locator(".fc-next-button").click()  # Playwright clicks only what is on screen and not covered
    expect(page.locator(".fc-toolbar-title")).not_to_have_text(title)
    page.locator(".fc-dayGridMonth-button").click()
    expect(page.locator(".fc-dayGridMonth-view")).to_be_visible()
    assert page.evaluate("window.innerWidth") == PHONE["width"] and width_of(page) <= PHONE["width"]
    shot(page, f"phone-month-{lang}-390")


@pytest.fixture(scope="module")
def sample_event(network):
    return api_event(network, HANANE, title="Formation écoute – جلسة استماع", kind="training")


def calendar_pages(base, event):
    """Every calendar page a coordinator can open, with a description for the failure message."""
    occurrence = requests.get(f"{base}/api/events/{event['id']}", timeout=30).json()["starts_at"]
    key = requests.utils.quote(occurrence)
    return ["/calendar?view=month", "/calendar?view=list", "/calendar?view=week", f"/calendar/events/{event['id']}",
            "/calendar/new", f"/calendar/events/{event['id']}/edit", f"/calendar/events/{event['id']}/cancel",
            f"/calendar/events/{event['id']}/occurrences/move?recurrence_id={key}",
            f"/calendar/events/{event['id']}/occurrences/cancel?recurrence_id={key}",
            "/calendar/search?q=Formation"]


@pytest.mark.parametrize("lang", ["ar", "fr", "en"])
def test_no_calendar_page_is_wider_than_a_phone(network, open_page, sample_event, lang):
    from playwright.sync_api import expect

    base = network.web
    page = open_page(base, PHONE, lang, HANANE)
    too_wide = {}
    for path in calendar_pages(base, sample_event):
        page.goto(f"{base}{path}{'&' if '?' in path else '?'}lang={lang}")
        expect(page.locator("main")).to_be_visible()
        if path.startswith("/calendar?"):
            expect(page.locator(".fc-view-harness")).to_be_visible()
        if width_of(page) > PHONE["width"]:
            too_wide[path] = width_of(page)
    shot(page, f"search-{lang}-390")
    assert too_wide == {}


@pytest.mark.parametrize("lang, viewport", JOURNEYS, ids=[f"{lang}-{v['width']}" for lang, v in JOURNEYS])
def test_axe_finds_no_serious_violation_on_the_calendar_pages(network, open_page, sample_event, axe, lang, viewport):
    from playwright.sync_api import expect

    base = network.web
    page = open_page(base, viewport, lang, HANANE)
    found = {}
    for path in calendar_pages(base, sample_event):
        page.goto(f"{base}{path}{'&' if '?' in path else '?'}lang={lang}")
        if path.startswith("/calendar?"):
            expect(page.locator(".fc-view-harness")).to_be_visible()
        violations = axe(page)
        if violations:
            found[path] = violations
    assert found == {}, json.dumps(found, indent=1, ensure_ascii=False)
