"""The calendar's hot paths at scale keep the answers of the slow ones: a page's JSON written
by hand equals the schema's, a page read as columns equals occurrences made from the events,
and a feed read from stored texts equals one written now."""

import time
from datetime import datetime, timedelta, timezone

import eventlet
import pytest
from fixtures.events import session  # noqa: F401 - fixture
from sqlalchemy import select

from services.events import domain, feeds, ical, listing, occurrences
from services.events.models import Base, Event, StoredOccurrence
from services.events.schemas import OccurrencePageSchema
from tansiq.db import Sessions, make_engine
from tansiq.errors import DomainError
from tansiq.messaging.store import messaging_metadata

UTC = timezone.utc
NOW = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)
ASSOCIATIONS = {"amal-safi", "nour-safi"}


def varied(session):
    """Single, recurring with a moved and a cancelled occurrence, all-day, at a venue, co-organised,
    registered for, another zone, an Arabic title."""
    venue = domain.create_venue(session, name="Dar Si Said", city="Safi", address="Rue 1", latitude=32.3,
                                longitude=-9.2)
    base = {"kind": "training", "organiser": "amal-safi", "city": "Safi", "status": "published",
            "visibility": "public"}
    domain.create_event(session, NOW, {**base, "title": "Simple", "start": datetime(2027, 1, 5, 10, 0),
                                       "end": datetime(2027, 1, 5, 12, 0), "capacity": 10}, ASSOCIATIONS)
    weekly, _ = domain.create_event(session, NOW, {
        **base, "title": "تكوين أسبوعي", "start": datetime(2027, 1, 6, 10, 0), "end": datetime(2027, 1, 6, 11, 0),
        "rrule": "FREQ=WEEKLY;COUNT=6", "venue_id": venue.id, "co_organisers": ["nour-safi"]}, ASSOCIATIONS,
        force=True)
    domain.move_occurrence(session, NOW, weekly.id, datetime(2027, 1, 13, 10, 0), datetime(2027, 1, 14, 15, 0),
                           force=True)
    domain.cancel_occurrence(session, NOW, weekly.id, datetime(2027, 1, 20, 10, 0))
    domain.create_event(session, NOW, {**base, "title": "Salon", "kind": "fair", "all_day": True,
                                       "start": datetime(2027, 1, 8), "end": datetime(2027, 1, 10)}, ASSOCIATIONS)
    domain.create_event(session, NOW, {**base, "title": "Paris", "tz": "Europe/Paris",
                                       "start": datetime(2027, 1, 7, 9, 0), "end": datetime(2027, 1, 7, 10, 0)},
                        ASSOCIATIONS)
    domain.register(session, NOW, weekly.id, association="amal-safi", name="Salma", known_associations=ASSOCIATIONS)
    session.commit()


def test_a_page_written_by_hand_equals_the_schema_and_the_events(session):  # noqa: F811
    varied(session)
    window = (datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))
    page = occurrences.page(session, *window)
    assert len(page.items) == 6 and page.next is None  # weekly: 6th, 13th moved to the 14th, 27th
    by_hand = {"items": [listing.as_json(o) for o in page.items], "next": page.next, "truncated": False}
    assert by_hand == OccurrencePageSchema().dump({"items": page.items, "next": page.next})
    # The same occurrences as made from the loaded events (make_occurrence), field for field.
    from_events = sorted((o for event in session.scalars(select(Event))
                          for o in domain.occurrences_of(event, *window)), key=lambda o: (o.start, o.title))
    assert [listing.as_json(o) for o in from_events] == by_hand["items"]
    assert {o.registered for o in page.items if o.title == "تكوين أسبوعي"} == {1}


def test_every_change_rewrites_the_stored_text(session):  # noqa: F811
    varied(session)
    for event in session.scalars(select(Event)):
        assert event.ics_text == ical.vevents_text(event)
    event = session.scalar(select(Event).where(Event.title == "Simple"))
    domain.update_event(session, NOW + timedelta(hours=1), event.id, {"title": "Autre"}, ASSOCIATIONS)
    assert "SUMMARY:Autre" in event.ics_text and "SEQUENCE:1" in event.ics_text
    domain.cancel_event(session, NOW + timedelta(hours=2), event.id)
    assert "STATUS:CANCELLED" in event.ics_text


def test_a_feed_build_never_holds_the_event_loop_for_long(tmp_path, monkeypatch):
    """While the network feed of 800 events is built in one green thread, another one (a month view,
    an AMQP heartbeat) waits at most the longest stretch between two yields of the build. Measured,
    with the issue's bound (100 ms) as a generous ceiling: the build joins stored texts and yields
    every 200 of them and every 2,000 rows read, so the stretches are a few milliseconds; a build
    that wrote every VEVENT without yielding (about 1 ms each) would hold the loop for most of a second."""
    from tansiq import bench_calendar

    engine = make_engine(f"sqlite:///{tmp_path / 'events.db'}")
    Base.metadata.create_all(engine)
    messaging_metadata.create_all(engine)
    bench_calendar.load(engine, 800)
    # A running service has compiled its SQL and written this month's VTIMEZONE blocks already.
    feeds.FeedCache().answer(Sessions(engine).session, bench_calendar.NOW, "network")
    for module in (ical, feeds):
        monkeypatch.setattr(module, "cooperate", lambda: eventlet.sleep(0))  # what eventlet's monkey patching does
    done, gaps = [], []

    def ticker():
        last = time.monotonic()
        while not done:
            eventlet.sleep(0.001)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    def build():
        answer = feeds.FeedCache().answer(Sessions(engine).session, bench_calendar.NOW, "network")
        done.append(answer.text.count("BEGIN:VEVENT"))

    ticking = eventlet.spawn(ticker)
    eventlet.spawn(build).wait()
    ticking.wait()
    assert done[0] >= 700 and len(gaps) >= 3  # the ticker ran during the build, not only after it
    print(f"longest stretch without a yield: {max(gaps) * 1000:.1f} ms over {len(gaps)} ticks")
    assert max(gaps) < 0.1, f"the build held the loop for {max(gaps) * 1000:.0f} ms"
    engine.dispose()


def test_a_bulk_load_stores_events_as_a_create_does(session):  # noqa: F811
    """domain.load_events (the benchmark's and the scale test's loader) writes the same event row,
    VEVENT text and stored occurrences as create_event, for every kind of event."""
    base = {"kind": "training", "organiser": "amal-safi", "city": "Safi", "status": "published",
            "visibility": "public", "start": datetime(2027, 1, 5, 10, 0), "end": datetime(2027, 1, 5, 12, 0)}
    specs = [{**base, "title": "Simple", "capacity": 10, "co_organisers": ["nour-safi"]},
             {**base, "title": "Hebdomadaire", "rrule": "FREQ=WEEKLY;COUNT=6", "exdates": ["2027-01-12T10:00"]},
             {**base, "title": "Sans fin", "tz": "Europe/Paris", "rrule": "FREQ=DAILY;INTERVAL=3",
              "visibility": "network"},
             {**base, "title": "Salon", "all_day": True, "start": datetime(2027, 1, 8), "end": datetime(2027, 1, 10)},
             {**base, "title": "Brouillon", "status": "draft"}]
    created = [domain.create_event(session, NOW, spec, ASSOCIATIONS, force=True)[0] for spec in specs]
    loaded = domain.load_events(session, NOW, specs, ASSOCIATIONS)
    session.commit()
    session.expire_all()

    def stored(event_id):
        event = session.get(Event, event_id)
        row = {column.key: getattr(event, column.key) for column in Event.__table__.columns
               if column.key not in ("id", "uid")}
        row["ics_text"] = row["ics_text"] and row["ics_text"].replace(event.uid, "UID")
        occurrences_ = session.execute(select(StoredOccurrence).where(StoredOccurrence.event_id == event_id)
                                       .order_by(StoredOccurrence.starts_at)).scalars()
        return row, [{column.key: getattr(o, column.key) for column in StoredOccurrence.__table__.columns
                      if column.key not in ("id", "event_id")} for o in occurrences_]

    for made, bulk in zip(created, loaded, strict=True):
        assert stored(bulk.id) == stored(made.id)
    assert stored(loaded[1].id)[1] and stored(loaded[0].id)[0]["ics_text"]  # the comparison compares something
    with pytest.raises(DomainError) as refused:
        domain.load_events(session, NOW, [{**specs[0], "status": "postponed"}], ASSOCIATIONS)
    assert refused.value.code == "invalid_transition"
