"""Stored occurrences: listings read the occurrences table and equal an independent expander
(recurring_ical_events over the feed), pages never cut silently, creating an event expands no
other event, and the rolling horizon moves on without changing what a listing says.

TANSIQ_CALENDAR_EVENTS sets the size of the generated calendar (10,000 for the full run; CI
uses the default below so this file stays fast).
"""

import os
import random
from collections import Counter
from datetime import date, datetime, timedelta, timezone

import icalendar
import pytest
import recurring_ical_events
from fixtures.databases import BACKENDS, throwaway_engine
from fixtures.events import session  # noqa: F401 - fixture
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from services.events import domain, ical, listing, occurrences, recurrence
from services.events.models import Base, Event, StoredOccurrence
from tansiq.errors import Conflict, DomainError
from tansiq.messaging.store import messaging_metadata

UTC = timezone.utc
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ASSOCIATIONS = {"amal-safi", "nour-safi", "tilila-marrakech", "wafae-agadir"}
CITIES = ("Safi", "Marrakech", "Agadir", "Rabat")
ZONES = ("Africa/Casablanca", "Africa/Casablanca", "Africa/Casablanca", "Europe/Paris")
RULES = (None, None, None, "FREQ=WEEKLY", "FREQ=WEEKLY;COUNT=12", "FREQ=DAILY;COUNT=20", "FREQ=MONTHLY;BYDAY=2SA",
         "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH", "FREQ=YEARLY", "FREQ=DAILY;INTERVAL=3")
SIZE = int(os.environ.get("TANSIQ_CALENDAR_EVENTS", "300"))
WINDOWS = ((datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 7, 1, tzinfo=UTC)),
           (datetime(2028, 9, 1, tzinfo=UTC), datetime(2029, 3, 1, tzinfo=UTC)))  # the second past the horizon
EDGE_TITLE = "Permanence de minuit"  # one hour from midnight in London: on every edge of both windows
AFTER_TITLE = "Ouverture de l'ete"


BASE = {"title": "Formation couture", "kind": "training", "organiser": "amal-safi", "city": "Safi",
        "start": datetime(2027, 1, 25, 10, 0), "end": datetime(2027, 1, 25, 12, 0), "status": "published",
        "visibility": "public"}


def create(session, now=NOW, force=True, **values):
    event, warnings = domain.create_event(session, now, {**BASE, **values}, ASSOCIATIONS, force=force)
    return event, warnings


def generate(session, size, seed=13):
    """A calendar of `size` events: single and recurring, timed and all-day, two zones, with
    exdates, moved occurrences and cancellations, spread over 2026-2028. The events are stored in
    bulk as a create stores them (domain.load_events: 10,000 creates with their overlap checks
    take most of an hour); their exceptions and cancellations go through the domain."""
    rng = random.Random(seed)
    specs, moved, cancelled = [], [], []
    for number in range(size):
        rule = rng.choice(RULES)
        all_day = rng.random() < 0.15
        day = date(2026, 10, 1) + timedelta(days=rng.randrange(0, 640))
        start = datetime.combine(day, datetime.min.time()) + timedelta(hours=rng.randrange(8, 20),
                                                                         minutes=rng.choice((0, 30)))
        if all_day:
            start, end = day, day + timedelta(days=rng.randrange(0, 3))
        else:
            end = start + timedelta(minutes=rng.choice((60, 90, 120, 240)))
        if rule == "FREQ=MONTHLY;BYDAY=2SA" or "BYDAY=MO,TH" in (rule or ""):
            rule = None  # the start must itself be an occurrence: keep those rules for the fixed events below
        specs.append({**BASE, "title": f"Evenement {number:05d}", "kind": rng.choice(("training", "meeting", "fair")),
                      "organiser": rng.choice(sorted(ASSOCIATIONS)), "city": rng.choice(CITIES),
                      "tz": rng.choice(ZONES), "all_day": all_day, "start": start, "end": end, "rrule": rule,
                      "visibility": rng.choice(("public", "network"))})
        if rule and rng.random() < 0.3:
            moved.append(number)
        elif rng.random() < 0.03:
            cancelled.append(number)
    events = domain.load_events(session, NOW, specs, ASSOCIATIONS)
    for event in (events[number] for number in moved):
        timing = domain.Timing.of(event)
        locals_ = timing.starts_between(timing.starts_at, timing.starts_at + timedelta(days=120))
        if len(locals_) > 2:
            domain.cancel_occurrence(session, NOW, event.id, locals_[1].replace(tzinfo=None))
            original = locals_[2].replace(tzinfo=None)
            domain.move_occurrence(session, NOW, event.id, original, original + timedelta(days=1), force=True)
    for number in cancelled:
        domain.cancel_event(session, NOW, events[number].id)
    # Rules that pick their own days, started on one of them.
    create(session, title="Marche du 2e samedi", start=datetime(2027, 1, 9, 9, 0), end=datetime(2027, 1, 9, 13, 0),
           rrule="FREQ=MONTHLY;BYDAY=2SA", city="Agadir", organiser="wafae-agadir")
    create(session, title="Cours lundi et jeudi", start=datetime(2027, 2, 1, 18, 0), end=datetime(2027, 2, 1, 19, 0),
           rrule="FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH", city="Rabat")
    # Midnight in London is midnight UTC in winter and 23:00 UTC in summer: this series starts exactly
    # at the start of the first window and at the end of the second (both outside if the window's end
    # were included), and ends exactly at the end of the first and at the start of the second.
    create(session, title=EDGE_TITLE, start=datetime(2026, 12, 30, 0, 0), end=datetime(2026, 12, 30, 1, 0),
           tz="Europe/London", rrule="FREQ=DAILY", city="Rabat", organiser="nour-safi")
    create(session, title=AFTER_TITLE, start=datetime(2027, 7, 1, 1, 0), end=datetime(2027, 7, 1, 2, 0),
           tz="Europe/London", city="Rabat", organiser="nour-safi")  # starts exactly at the first window's end
    # Longer than every tier of occurrences.TIERS and begun well before a window: read from the longer
    # occurrences' own indexes (a fair of four weeks over the first window's start, a festival over the second's).
    create(session, title="Veillee de fin d'annee", start=datetime(2026, 12, 31, 16, 0), end=datetime(2027, 1, 1, 4, 0),
           city="Marrakech", organiser="tilila-marrakech")  # 12 hours, begun 9 before the window: the first tier
    create(session, title="Salon des artisanes", kind="fair", start=datetime(2026, 12, 10, 9, 0),
           end=datetime(2027, 1, 12, 18, 0), city="Safi", organiser="amal-safi")
    create(session, title="Festival des arts", kind="fair", start=datetime(2028, 8, 10, 10, 0),
           end=datetime(2028, 9, 5, 22, 0), city="Agadir", organiser="wafae-agadir")
    session.commit()


def independent(session, window):
    """(uid, start, end, status) of every occurrence in the window, counted, as recurring_ical_events
    expands the network feed (which uses the feed's own rules, not our table)."""
    cal = icalendar.Calendar.from_ical(ical.feed(session, NOW, "network", visibilities=("public", "network"),
                                                 start=window[0], end=window[1]))  # the feed of that window
    tz_of = {uid: domain.zone(tz) for uid, tz in session.execute(select(Event.uid, Event.tz))}
    found = Counter()  # counted: an occurrence moved onto another one's time is listed twice
    # A day wider: all-day events are floating dates there; the exact UTC bounds are applied below.
    for component in recurring_ical_events.of(cal).between(window[0] - timedelta(days=1),
                                                          window[1] + timedelta(days=1)):
        start, end = component.decoded("dtstart"), component.decoded("dtend")
        uid = str(component["uid"])
        if not isinstance(start, datetime):
            start = datetime.combine(start, datetime.min.time(), tz_of[uid])
            end = datetime.combine(end, datetime.min.time(), tz_of[uid])
        if end.astimezone(UTC) <= window[0] or start.astimezone(UTC) >= window[1]:
            continue
        found[(uid, start.astimezone(UTC), end.astimezone(UTC), str(component["status"]))] += 1
    return found


def listed(session, window, limit=occurrences.MAX_PAGE_SIZE, **filters):
    """Every occurrence of the window, page by page."""
    items, cursor, given = [], None, set()
    while True:
        page = occurrences.page(session, *window, cursor=cursor, limit=limit, **filters)
        items += page.items
        if page.next is None:
            return items
        assert len(page.items) == limit  # only the last page may be short
        assert page.next not in given  # a cursor given twice would page for ever
        cursor = page.next
        given.add(cursor)


def as_ical(session, found):
    uids = dict(session.execute(select(Event.id, Event.uid)).all())
    return Counter((uids[o.event_id], o.start, o.end, ical.ICS_STATUS[o.status]) for o in found)


@pytest.mark.timeout(600 if SIZE <= 1000 else 3600)  # the full run (10,000) takes minutes
def test_listings_equal_recurring_ical_events_on_a_generated_calendar(session):
    generate(session, SIZE)
    stored = session.scalar(select(func.count()).select_from(StoredOccurrence))
    assert stored > SIZE  # the series are stored, not only their first occurrences
    for window in WINDOWS:
        found = listed(session, window)
        assert len({o.occurrence_id for o in found}) == len(found)  # no occurrence twice
        assert as_ical(session, found) == independent(session, window)
        in_safi = listed(session, window, city="safi", limit=97)
        assert in_safi == [o for o in found if o.city == "Safi"]
        of_one = listed(session, window, association="wafae-agadir", limit=50)
        assert of_one == [o for o in found if "wafae-agadir" in (o.organiser, *o.co_organisers)]


def test_the_comparison_catches_a_window_edge_off_by_one(session, monkeypatch, request):
    """The comparison above can fail: listings that took in what only touches a window (an occurrence
    ending at its start, or starting at its end) differ from the independent expansion."""
    generate(session, 30)
    edges = {window: [o.start for o in listed(session, window) if o.title == EDGE_TITLE] for window in WINDOWS}
    assert edges[WINDOWS[0]][0] == WINDOWS[0][0]  # starts at the window's start: in
    assert edges[WINDOWS[0]][-1] == datetime(2027, 6, 30, 23, 0, tzinfo=UTC)  # ends at the window's end: in
    assert edges[WINDOWS[1]][0] == datetime(2028, 9, 1, 23, 0, tzinfo=UTC)  # ended at the start: out
    assert edges[WINDOWS[1]][-1] == datetime(2029, 2, 28, 0, 0, tzinfo=UTC)  # starts at the end: out
    assert [o for o in listed(session, WINDOWS[0]) if o.title == AFTER_TITLE] == []  # starts at the end: out
    for window in WINDOWS:
        assert as_ical(session, listed(session, window)) == independent(session, window)

    def inclusive(start, end, earliest):  # the mistake: a closed window instead of a half-open one
        return and_(StoredOccurrence.starts_at <= end, StoredOccurrence.ends_at >= start,
                    StoredOccurrence.starts_at >= earliest)
    monkeypatch.setattr(occurrences, "_intersecting", inclusive)
    occurrences._page_statement.cache_clear()  # the pages' statements are built once: again, with the mistake
    request.addfinalizer(occurrences._page_statement.cache_clear)
    for window in WINDOWS:
        assert as_ical(session, listed(session, window)) != independent(session, window)


@pytest.fixture(params=BACKENDS)
def session_on_each_backend(request, tmp_path):
    """A session on SQLite, then on PostgreSQL: a page's statement is written for both."""
    def create_tables(engine):
        Base.metadata.create_all(engine)
        messaging_metadata.create_all(engine)

    with throwaway_engine(request.param, tmp_path, create_tables, "occurrences") as engine, \
            Session(engine, expire_on_commit=False) as session:
        yield session


def test_an_occurrence_begun_before_the_window_and_lasting_obeys_every_filter_of_a_page(session_on_each_backend):
    """The longer occurrences (occurrences.TIERS) come from their own ranges of a page's statement: the
    public does not see a network-only or a draft one, nor a city, kind or association filter another
    one, and a cursor lists each once."""
    session = session_on_each_backend
    march = (datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 4, 1, tzinfo=UTC))
    kinds_of_long_one = {"Ouvert": {}, "Reseau": {"visibility": "network"}, "Brouillon": {"status": "draft"},
                         "Exposition": {"kind": "exhibition"},
                         "Marrakech": {"city": "Marrakech", "organiser": "tilila-marrakech"},
                         "Voisine": {"organiser": "nour-safi"}}
    for hours, begun in ((12, datetime(2027, 2, 28, 20, 0)), (21 * 24, datetime(2027, 2, 20, 9, 0))):
        for title, values in kinds_of_long_one.items():
            create(session, title=f"{title} {hours}h", start=begun, end=begun + timedelta(hours=hours), **values)
    for day in range(1, 6):  # short ones inside the window, so that the cursor has pages to cross
        create(session, title=f"Atelier {day}", start=datetime(2027, 3, day, 10, 0), end=datetime(2027, 3, day, 11, 0))
    session.commit()

    def titles(limit=occurrences.MAX_PAGE_SIZE, **filters):
        return sorted(o.title for o in listed(session, march, limit=limit, **filters))

    workshops = [f"Atelier {day}" for day in range(1, 6)]
    everyone = {"city": "Safi", "kind": "training", "association": "amal-safi"}
    assert titles(visibilities=("public",), **everyone) == sorted(["Ouvert 12h", "Ouvert 504h", *workshops])
    for limit in (1, 2, 3):  # each listed once whatever the page size
        assert titles(limit, visibilities=("public",), **everyone) == titles(visibilities=("public",), **everyone)
    assert "Reseau 504h" in titles(**everyone) and "Reseau 12h" in titles(**everyone)  # network staff see it
    assert "Brouillon 504h" in titles(include_drafts=True, **everyone)
    assert {"Exposition 12h", "Exposition 504h"} <= set(titles(city="Safi"))
    assert {"Marrakech 12h", "Marrakech 504h"} <= set(titles(kind="training"))
    assert {"Voisine 12h", "Voisine 504h"} <= set(titles(city="Safi", kind="training"))


def test_a_listing_never_returns_a_partial_page_without_saying_so(session, monkeypatch):
    # Many occurrences at the same instant with the same title: the cursor must still tell them apart.
    for number in range(7):
        create(session, organiser=sorted(ASSOCIATIONS)[number % 4], rrule="FREQ=DAILY;COUNT=5")
    session.commit()
    window = (datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 28, tzinfo=UTC))
    whole = occurrences.page(session, *window, limit=occurrences.MAX_PAGE_SIZE)
    assert whole.next is None and len(whole.items) == 35
    for limit in (1, 2, 5, 34, 35):
        assert listed(session, window, limit=limit) == whole.items
    exactly = occurrences.page(session, *window, limit=35)
    assert exactly.next is None  # a full last page does not promise another
    # The list without pages refuses rather than cuts.
    monkeypatch.setattr(listing, "MAX_OCCURRENCES", 34)
    with pytest.raises(DomainError) as refused:
        domain.list_occurrences(session, *window)
    assert refused.value.code == "too_many_occurrences"
    monkeypatch.setattr(listing, "MAX_OCCURRENCES", 35)
    assert len(domain.list_occurrences(session, *window)) == 35
    for cursor in ("nonsense", "W10", "WyJ4IiwxLDIsM10", "e30"):
        with pytest.raises(DomainError) as bad:
            occurrences.page(session, *window, cursor=cursor)
        assert bad.value.code == "invalid_cursor"


def test_creating_an_event_expands_no_other_event(session, monkeypatch):
    venue = domain.create_venue(session, name="Maison des jeunes", city="Safi")
    for number in range(40):
        day = 4 if number == 0 else 5 + number % 4  # only the first series meets on Mondays
        create(session, title=f"Serie {number}", rrule="FREQ=WEEKLY", start=datetime(2027, 1, day, 9, 0),
               end=datetime(2027, 1, day, 9, 30), venue_id=venue.id if number == 0 else None)
    session.commit()
    calls = []
    real = recurrence.between
    monkeypatch.setattr(recurrence, "between", lambda *args, **kwargs: calls.append(args) or real(*args, **kwargs))
    # Twenty months ahead, at the same time as one series' occurrence: found from the table.
    _, warnings = create(session, title="Reunion", kind="meeting", start=datetime(2028, 9, 4, 9, 15),
                         end=datetime(2028, 9, 4, 10, 0), force=False)
    assert calls == []
    assert [w["title"] for w in warnings if w["code"] == "overlap"] == ["Serie 0"]
    with pytest.raises(Conflict) as booked:
        create(session, title="Autre", kind="meeting", venue_id=venue.id, start=datetime(2028, 9, 4, 9, 0),
               end=datetime(2028, 9, 4, 9, 10), force=False)
    assert booked.value.code == "venue_conflict"
    assert calls == []


def test_the_series_its_exceptions_and_its_rows_change_together(session):
    event, _ = create(session, rrule="FREQ=WEEKLY;COUNT=6")
    session.commit()

    def rows():
        return sorted((r.recurrence_key, r.starts_at, r.moved, r.title) for r in session.scalars(
            select(StoredOccurrence).where(StoredOccurrence.event_id == event.id)))

    assert len(rows()) == 6
    domain.move_occurrence(session, NOW, event.id, datetime(2027, 2, 1, 10, 0), datetime(2027, 2, 2, 15, 0))
    domain.cancel_occurrence(session, NOW, event.id, datetime(2027, 2, 8, 10, 0))
    domain.update_event(session, NOW, event.id, {"title": "Couture avancee"}, ASSOCIATIONS)
    session.commit()
    assert [(key[:10], start, moved) for key, start, moved, _ in rows()] == [
        ("2027-01-25", datetime(2027, 1, 25, 9, 0, tzinfo=UTC), False),
        ("2027-02-01", datetime(2027, 2, 2, 14, 0, tzinfo=UTC), True),  # 15:00 local, before Ramadan
        ("2027-02-15", datetime(2027, 2, 15, 10, 0, tzinfo=UTC), False),  # Ramadan: 10:00 local is 10:00 UTC
        ("2027-02-22", datetime(2027, 2, 22, 10, 0, tzinfo=UTC), False),
        ("2027-03-01", datetime(2027, 3, 1, 10, 0, tzinfo=UTC), False)]
    assert {title for *_, title in rows()} == {"Couture avancee"}
    domain.cancel_event(session, NOW, event.id)
    session.commit()
    assert {o.status for o in listed(session, (NOW, NOW + timedelta(days=200)))} == {"cancelled"}


def test_the_horizon_moves_on_and_listings_do_not_change(session):
    event, _ = create(session, rrule="FREQ=WEEKLY", start=datetime(2026, 12, 7, 10, 0),
                      end=datetime(2026, 12, 7, 11, 0))
    single, _ = create(session, title="Salon", start=datetime(2029, 5, 1, 10, 0), end=datetime(2029, 5, 1, 12, 0))
    session.commit()
    assert event.occurrences_until == event.starts_at + occurrences.HORIZON  # it starts after now
    assert single.occurrences_until == occurrences.STORED_FOREVER
    window = (datetime(2028, 11, 1, tzinfo=UTC), datetime(2029, 6, 1, tzinfo=UTC))  # across the horizon
    before = listed(session, window)
    assert len(before) == 31 and [o.title for o in before].count("Salon") == 1
    later = NOW + timedelta(days=720)
    assert occurrences.extend(session, later) == 1  # only the open-ended series is due
    session.commit()
    assert event.occurrences_until == later + occurrences.HORIZON
    assert listed(session, window) == before
    assert occurrences.extend(session, later) == 0


def test_events_stored_before_the_table_are_listed_then_stored_by_the_timer(session):
    event, _ = create(session, rrule="FREQ=WEEKLY;COUNT=4")
    session.commit()
    window = (NOW, NOW + timedelta(days=120))
    before = listed(session, window)
    session.execute(StoredOccurrence.__table__.delete())
    event.occurrences_until = None  # as the migration leaves every existing event
    session.commit()
    assert listed(session, window) == before
    assert occurrences.extend(session, NOW) == 1
    session.commit()
    assert event.occurrences_until == occurrences.STORED_FOREVER
    assert session.scalar(select(func.count()).select_from(StoredOccurrence)) == 4
    assert listed(session, window) == before


def test_the_same_instant_in_two_zones_keeps_each_zones_wall_time(session):
    """A rule is cached by its text and start: two series starting at the same instant in two zones
    (15:30 in Paris, 14:30 in Casablanca, both 13:30 UTC) must not share one."""
    paris, _ = create(session, title="Paris", tz="Europe/Paris", rrule="FREQ=DAILY;INTERVAL=3",
                      start=datetime(2027, 10, 17, 15, 30), end=datetime(2027, 10, 17, 17, 0))
    casablanca, _ = create(session, title="Casablanca", rrule="FREQ=DAILY;INTERVAL=3",
                           start=datetime(2027, 10, 17, 14, 30), end=datetime(2027, 10, 17, 16, 0))
    assert paris.starts_at == casablanca.starts_at
    session.commit()
    found = listed(session, (datetime(2028, 9, 1, tzinfo=UTC), datetime(2028, 9, 10, tzinfo=UTC)))
    assert {o.start_local[11:16] for o in found if o.title == "Casablanca"} == {"14:30"}
    assert {o.start_local[11:16] for o in found if o.title == "Paris"} == {"15:30"}
