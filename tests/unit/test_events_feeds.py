"""Feeds bounded and cached: a window, ETag and 304, one build shared, and a build that holds
neither the database nor the event loop while it writes the text."""

import threading
from datetime import datetime, timedelta, timezone

import icalendar
import pytest
from fixtures.events import db  # noqa: F401 - fixture
from sqlalchemy import select

from services.events import domain, feeds, ical
from services.events.models import Event
from tansiq.errors import DomainError

UTC = timezone.utc
NOW = datetime(2027, 1, 10, 8, 0, tzinfo=UTC)
ASSOCIATIONS = {"amal-safi", "tilila-marrakech"}




def create(db, **values):
    base = {"title": "Formation couture", "kind": "training", "organiser": "amal-safi", "city": "Safi",
            "start": datetime(2027, 1, 25, 10, 0), "end": datetime(2027, 1, 25, 12, 0), "status": "published",
            "visibility": "public"}
    with db.session() as session:
        event, _ = domain.create_event(session, NOW, {**base, **values}, ASSOCIATIONS, force=True)
    return event


def titles(text):
    return sorted(str(c["summary"]) for c in icalendar.Calendar.from_ical(text).walk("VEVENT"))


def test_a_feed_covers_its_window_and_its_zones_for_those_years_only(db):
    create(db, title="Cette annee", rrule="FREQ=WEEKLY;COUNT=3")
    create(db, title="Il y a un an", start=datetime(2026, 1, 5, 10, 0), end=datetime(2026, 1, 5, 11, 0))
    create(db, title="Dans deux ans", start=datetime(2029, 3, 5, 10, 0), end=datetime(2029, 3, 5, 11, 0))
    create(db, title="Serie commencee avant", rrule="FREQ=MONTHLY", start=datetime(2026, 3, 2, 10, 0),
           end=datetime(2026, 3, 2, 11, 0))
    with db.session() as session:
        default = ical.feed(session, NOW, "network")
        wide = ical.feed(session, NOW, "network", start=datetime(2025, 1, 1, tzinfo=UTC),
                         end=datetime(2030, 1, 1, tzinfo=UTC))
        with pytest.raises(DomainError):
            ical.feed(session, NOW, "network", start=datetime(2020, 1, 1, tzinfo=UTC),
                      end=datetime(2030, 1, 1, tzinfo=UTC))
    # 3 months back, 18 ahead of January 2027: October 2026 to July 2028.
    assert titles(default) == ["Cette annee", "Serie commencee avant"]
    assert titles(wide) == ["Cette annee", "Dans deux ans", "Il y a un an", "Serie commencee avant"]
    [zone] = icalendar.Calendar.from_ical(default).walk("VTIMEZONE")
    assert {o.decoded("dtstart").year for o in zone.subcomponents} == {2026, 2027, 2028}


def test_etag_last_modified_and_not_modified(db):
    event = create(db)
    cache = feeds.FeedCache()
    first = cache.answer(db.session, NOW, "city", "Safi")
    assert "Formation couture" in first.text and first.etag.startswith('"')
    assert first.last_modified == NOW
    again = cache.answer(db.session, NOW, "city", "safi", if_none_match=f'"other", {first.etag}')
    assert again.text is None and again.etag == first.etag  # 304
    assert cache.answer(db.session, NOW, "city", "Safi", if_modified_since=NOW).text is None
    assert cache.answer(db.session, NOW, "city", "Safi",
                        if_modified_since=NOW - timedelta(seconds=1)).text == first.text
    assert cache.answer(db.session, NOW, "city", "Marrakech").etag != first.etag
    assert cache.answer(db.session, NOW, "city", "Safi", ("public", "network")).etag != first.etag
    with db.session() as session:
        domain.update_event(session, NOW + timedelta(hours=1), event.id, {"title": "Couture avancee"}, ASSOCIATIONS)
    changed = cache.answer(db.session, NOW, "city", "Safi", if_none_match=first.etag)
    assert changed.etag != first.etag and "Couture avancee" in changed.text
    create(db, title="Nouvelle")  # a new event changes the ETag even at the same last change time
    latest = cache.answer(db.session, NOW, "city", "Safi", if_none_match=changed.etag)
    assert "Nouvelle" in latest.text
    with db.session() as session:  # a change within the same clock tick as the last one
        domain.update_event(session, NOW + timedelta(hours=1), event.id, {"title": "Couture 2"}, ASSOCIATIONS)
    assert "Couture 2" in cache.answer(db.session, NOW, "city", "Safi", if_none_match=latest.etag).text


def test_a_cached_feed_is_not_built_again_and_a_change_rewrites_one_event(db, monkeypatch):
    events = [create(db, title=f"Evenement {n}") for n in range(5)]
    with db.session() as session:  # an event stored before its text was (ics_text NULL): written on the fly
        session.get(Event, events[4].id).ics_text = None
    cache = feeds.FeedCache()
    built, written = [], []
    real_text, real_vevents = ical.text, ical.vevents_text
    monkeypatch.setattr(ical, "text", lambda *args, **kwargs: built.append(1) or real_text(*args, **kwargs))
    monkeypatch.setattr(ical, "vevents_text", lambda event: written.append(event.title) or real_vevents(event))
    first = cache.answer(db.session, NOW, "network")
    assert cache.answer(db.session, NOW, "network").text == first.text
    assert len(built) == 1 and written == ["Evenement 4"]  # the others' texts were stored with them
    with db.session() as session:
        domain.update_event(session, NOW + timedelta(hours=1), events[2].id, {"title": "Change"}, ASSOCIATIONS)
    assert written[1:] == ["Change"]  # written once, with the change
    second = cache.answer(db.session, NOW, "network")
    assert len(built) == 2 and written[1:] == ["Change"]  # the build wrote nothing: Evenement 4 was cached
    assert titles(second.text) == sorted(["Evenement 0", "Evenement 1", "Change", "Evenement 3", "Evenement 4"])
    with db.session() as session:
        fresh = ical.feed(session, NOW, "network")
    assert second.text == fresh  # the same text as a build from nothing
    monkeypatch.setattr(ical, "vevents_text", real_vevents)
    with db.session() as session:  # and the same as writing every event now
        for event in session.scalars(select(Event)):
            event.ics_text = None
        assert ical.feed(session, NOW, "network") == fresh


def test_the_build_holds_neither_the_database_nor_the_event_loop(db, monkeypatch):
    for number in range(30):
        create(db, title=f"Evenement {number}", start=datetime(2027, 2, 1 + number % 20, 10, 0),
               end=datetime(2027, 2, 1 + number % 20, 11, 0))
    lock = db.engine.tansiq_lock
    seen = {"free_while_writing": [], "yields": 0}

    def probe():
        got = lock.acquire(blocking=False)  # another thread: succeeds only if no unit of work is open
        if got:
            lock.release()
        seen["free_while_writing"].append(got)

    def cooperate():
        seen["yields"] += 1
        if seen["yields"] == 10:  # mid-build: could a month view open its unit of work now?
            thread = threading.Thread(target=probe)
            thread.start()
            thread.join()

    monkeypatch.setattr(ical, "cooperate", cooperate)
    monkeypatch.setattr(ical, "_YIELD_EVERY", 1)  # 30 events: yield after each to look inside the build
    answer = feeds.FeedCache().answer(db.session, NOW, "network")
    assert len(titles(answer.text)) == 30
    assert seen["yields"] >= 30  # once per event at least
    assert seen["free_while_writing"] == [True]


def test_two_requests_for_the_same_feed_share_one_build(db, monkeypatch):
    create(db)
    cache = feeds.FeedCache()
    real, calls, gate = ical.text, [], threading.Event()

    def slow_text(*args, **kwargs):
        calls.append(1)
        gate.wait(timeout=30)
        return real(*args, **kwargs)

    monkeypatch.setattr(ical, "text", slow_text)
    answers = []
    first = threading.Thread(target=lambda: answers.append(cache.answer(db.session, NOW, "network")))
    first.start()
    while not calls:
        threading.Event().wait(0.01)
    claims, real_claim = [], cache._claim
    cache._claim = lambda etag: claims.append(real_claim(etag)) or claims[-1]
    second = threading.Thread(target=lambda: answers.append(cache.answer(db.session, NOW, "network")))
    second.start()
    while not claims:
        threading.Event().wait(0.01)
    assert claims[0][0] is False  # the second request waits for the build under way
    gate.set()
    first.join()
    second.join()
    assert len(calls) == 1 and answers[0].text == answers[1].text
