"""The calendar's rules on a real SQLite database: zones, recurrence, overlaps, bad input."""

import json
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from services.events import domain
from services.events.models import Base, Event, Override, Registration
from tansiq.db import make_engine
from tansiq.errors import Conflict, DomainError, NotFound
from tansiq.messaging.store import OutboxMessage, messaging_metadata

UTC = timezone.utc
NOW = datetime(2027, 1, 10, 8, 0, tzinfo=UTC)
ASSOCIATIONS = {"amal-safi", "nour-safi", "tilila-marrakech"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    """Every rule runs on SQLite and, where reachable, on a throwaway PostgreSQL database."""
    if request.param == "sqlite":
        url, dropped = f"sqlite:///{tmp_path / 'events.db'}", None
    else:
        request.getfixturevalue("postgres")  # skips (or fails under TANSIQ_REQUIRE_POSTGRES=1) when absent
        from harness import create_pg_database, drop_pg_database

        dropped = f"tansiq_events_test_{uuid.uuid4().hex[:10]}"
        # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; the project ships psycopg2.
        url = create_pg_database(dropped).replace("postgresql://", "postgresql+psycopg2://", 1)
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    messaging_metadata.create_all(engine)
    yield engine
    engine.dispose()
    if dropped:
        drop_pg_database(dropped)


@pytest.fixture
def session(engine):
    from sqlalchemy.orm import Session

    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def venue(session):
    venue = domain.create_venue(session, name="Dar Sidi Bouzid", city="Safi", address="Route de Sidi Bouzid",
                                latitude=32.32, longitude=-9.26, venue_id="v-dar")
    session.commit()
    return venue


def spec(**overrides):
    base = {"title": "Formation couture", "kind": "training", "organiser": "amal-safi", "city": "Safi",
            "start": datetime(2027, 1, 20, 10, 0), "end": datetime(2027, 1, 20, 12, 0), "status": "published"}
    return {**base, **overrides}


def create(session, **overrides):
    force = overrides.pop("force", False)
    event, warnings = domain.create_event(session, NOW, spec(**overrides), ASSOCIATIONS, force=force)
    session.commit()
    return event, warnings


def messages(session, type_=None):
    query = select(OutboxMessage).order_by(OutboxMessage.seq)
    if type_:
        query = query.where(OutboxMessage.type == type_)
    return list(session.scalars(query))


def count(session, model):
    return session.scalar(select(func.count()).select_from(model))


def window(session, start, end, **filters):
    return domain.list_occurrences(session, datetime.fromisoformat(start).replace(tzinfo=UTC),
                                   datetime.fromisoformat(end).replace(tzinfo=UTC), **filters)


# --- time zones: Casablanca is UTC+1, but UTC+0 during Ramadan (7 Feb - 14 Mar 2027 in tzdata) ---

def test_casablanca_outside_ramadan_is_utc_plus_one(session):
    event, _ = create(session)
    assert event.starts_at == datetime(2027, 1, 20, 9, 0, tzinfo=UTC)
    assert event.tz == "Africa/Casablanca"
    [occurrence] = window(session, "2027-01-01", "2027-02-01")
    assert occurrence.start_local == "2027-01-20T10:00:00+01:00"


def test_casablanca_during_ramadan_is_utc(session):
    event, _ = create(session, start=datetime(2027, 2, 20, 10, 0), end=datetime(2027, 2, 20, 12, 0))
    assert event.starts_at == datetime(2027, 2, 20, 10, 0, tzinfo=UTC)
    [occurrence] = window(session, "2027-02-01", "2027-03-01")
    assert occurrence.start_local == "2027-02-20T10:00:00+00:00"
    assert occurrence.end == datetime(2027, 2, 20, 12, 0, tzinfo=UTC)


def test_weekly_training_stays_at_ten_local_across_the_ramadan_change(session):
    create(session, start=datetime(2027, 1, 25, 10, 0), end=datetime(2027, 1, 25, 12, 0),
           rrule="FREQ=WEEKLY;BYDAY=MO;UNTIL=20270329T235959")
    occurrences = window(session, "2027-01-01", "2027-05-01")
    assert len(occurrences) == 10
    assert {o.start_local[11:] for o in occurrences} == {"10:00:00+01:00", "10:00:00+00:00"}
    utc_hours = {o.start.date().isoformat(): o.start.hour for o in occurrences}
    assert utc_hours["2027-02-01"] == 9    # before Ramadan: UTC+1
    assert utc_hours["2027-02-08"] == 10   # first Monday of Ramadan time: UTC+0
    assert utc_hours["2027-03-08"] == 10
    assert utc_hours["2027-03-15"] == 9    # clocks back to UTC+1
    assert all(o.end - o.start == timedelta(hours=2) for o in occurrences)


def test_local_until_is_stored_in_utc(session):
    event, _ = create(session, start=datetime(2027, 1, 25, 10, 0), end=datetime(2027, 1, 25, 12, 0),
                      rrule="rrule:freq=weekly;until=20270329T235959")
    assert event.rrule == "FREQ=WEEKLY;UNTIL=20270329T225959Z"


def test_a_wall_time_skipped_by_the_clock_change_is_refused(session):
    with pytest.raises(DomainError, match="does not exist") as caught:
        create(session, start=datetime(2027, 3, 14, 2, 30), end=datetime(2027, 3, 14, 4, 0))
    assert caught.value.code == "invalid_time"


def test_all_day_festival_covers_whole_local_days(session):
    event, _ = create(session, kind="festival", all_day=True, start=date(2027, 3, 12), end=date(2027, 3, 14))
    assert event.starts_at == datetime(2027, 3, 12, 0, 0, tzinfo=UTC)  # local midnight, still Ramadan time
    [occurrence] = window(session, "2027-03-01", "2027-04-01")
    assert (occurrence.start_local, occurrence.end_local) == ("2027-03-12", "2027-03-15")  # end exclusive


# --- recurrence exceptions ---------------------------------------------------------------------

def test_exdate_and_moved_occurrence_in_the_listing(session):
    event, _ = create(session, start=datetime(2027, 1, 25, 10, 0), end=datetime(2027, 1, 25, 12, 0),
                      rrule="FREQ=WEEKLY;COUNT=6", exdates=[datetime(2027, 2, 8, 10, 0)])
    domain.move_occurrence(session, NOW, event.id, datetime(2027, 2, 15, 10, 0),
                           datetime(2027, 2, 17, 15, 0), datetime(2027, 2, 17, 17, 0))
    session.commit()
    starts = [(o.start_local, o.moved) for o in window(session, "2027-01-01", "2027-04-01")]
    assert starts == [
        ("2027-01-25T10:00:00+01:00", False),
        ("2027-02-01T10:00:00+01:00", False),
        ("2027-02-17T15:00:00+00:00", True),
        ("2027-02-22T10:00:00+00:00", False),
        ("2027-03-01T10:00:00+00:00", False),
    ]
    assert event.exdates == ["2027-02-08T10:00:00+00:00"]
    assert event.sequence == 1
    assert [m.type for m in messages(session)] == ["ma.tansiq.event.published.v1", "ma.tansiq.event.updated.v1"]


def test_cancelled_occurrence_becomes_an_exdate_and_loses_its_move(session):
    event, _ = create(session, start=datetime(2027, 1, 25, 10, 0), end=datetime(2027, 1, 25, 12, 0),
                      rrule="FREQ=WEEKLY;COUNT=3")
    domain.move_occurrence(session, NOW, event.id, datetime(2027, 2, 1, 10, 0), datetime(2027, 2, 2, 10, 0))
    domain.cancel_occurrence(session, NOW, event.id, datetime(2027, 2, 1, 10, 0))
    session.commit()
    assert [o.start_local[:10] for o in window(session, "2027-01-01", "2027-04-01")] == ["2027-01-25", "2027-02-08"]
    assert count(session, Override) == 0


def test_moving_the_series_keeps_exceptions_on_the_same_days(session):
    event, _ = create(session, start=datetime(2027, 1, 25, 10, 0), end=datetime(2027, 1, 25, 12, 0),
                      rrule="FREQ=WEEKLY;COUNT=4", exdates=["2027-02-01T10:00"])
    domain.update_event(session, NOW, event.id, {"start": datetime(2027, 1, 25, 14, 0),
                                                 "end": datetime(2027, 1, 25, 16, 0)}, ASSOCIATIONS)
    session.commit()
    assert [o.start_local for o in window(session, "2027-01-01", "2027-04-01")] == [
        "2027-01-25T14:00:00+01:00", "2027-02-08T14:00:00+00:00", "2027-02-15T14:00:00+00:00"]


def test_an_unknown_occurrence_cannot_be_moved(session):
    event, _ = create(session, rrule="FREQ=WEEKLY;COUNT=3")
    with pytest.raises(NotFound):
        domain.move_occurrence(session, NOW, event.id, datetime(2027, 1, 21, 10, 0), datetime(2027, 1, 22, 10, 0))


# --- changes, sequence and messages ------------------------------------------------------------

def test_changes_bump_sequence_and_write_messages(session):
    event, _ = create(session, status="draft")
    assert messages(session) == []  # a draft is nobody else's business
    domain.update_event(session, NOW, event.id, {"status": "published"}, ASSOCIATIONS)
    session.commit()
    assert event.sequence == 0
    domain.update_event(session, NOW, event.id, {"description": "Apportez vos tissus"}, ASSOCIATIONS)
    assert event.sequence == 0  # not significant, but partners still hear of it
    domain.update_event(session, NOW, event.id, {"start": datetime(2027, 1, 21, 10, 0),
                                                 "end": datetime(2027, 1, 21, 12, 0)}, ASSOCIATIONS)
    domain.cancel_event(session, NOW, event.id)
    session.commit()
    assert event.sequence == 2
    sent = messages(session)
    assert [m.type.split(".")[3] for m in sent] == ["published", "updated", "updated", "cancelled"]
    body = json.loads(sent[-1].body)
    assert body["source"] == "amal-safi"
    assert body["data"]["status"] == "cancelled" and body["data"]["sequence"] == 2
    with pytest.raises(Conflict):
        domain.update_event(session, NOW, event.id, {"title": "x"}, ASSOCIATIONS)


def test_invalid_status_transition_is_refused(session):
    event, _ = create(session)
    with pytest.raises(Conflict):
        domain.update_event(session, NOW, event.id, {"status": "draft"}, ASSOCIATIONS)


# --- overlaps ----------------------------------------------------------------------------------

def test_same_city_same_time_warns_both_organisers(session):
    first, _ = create(session)
    second, warnings = create(session, organiser="nour-safi", title="Atelier broderie",
                              start=datetime(2027, 1, 20, 11, 0), end=datetime(2027, 1, 20, 13, 0))
    assert [(w["code"], w["event_id"]) for w in warnings] == [("overlap", first.id)]
    [message] = messages(session, "ma.tansiq.event.overlap_detected.v2")
    data = json.loads(message.body)["data"]
    assert data == {"event_id": second.id, "other_event_ids": [first.id], "city": "Safi",
                    "organisers": ["amal-safi", "nour-safi"]}
    assert messages(session, "ma.tansiq.event.overlap_detected.v1") == []  # no longer sent


def test_a_create_meeting_many_events_tells_them_in_one_message_per_group(session, monkeypatch):
    from tansiq.contracts import events as event_contracts

    others = [create(session, organiser=organiser, title=f"Atelier {n}")[0]
              for n, organiser in enumerate(["amal-safi", "nour-safi", "nour-safi", "tilila-marrakech"])]
    new, warnings = create(session, organiser="nour-safi", title="Nouveau", force=True)
    assert sorted(w["event_id"] for w in warnings) == sorted(o.id for o in others)
    [message] = messages(session, "ma.tansiq.event.overlap_detected.v2")[-1:]
    data = json.loads(message.body)["data"]
    assert data["event_id"] == new.id and sorted(data["other_event_ids"]) == sorted(o.id for o in others)
    assert data["organisers"] == ["amal-safi", "nour-safi", "tilila-marrakech"]  # each once, the creator too

    # More overlaps than a message holds: several messages, each within the contract, none lost or repeated.
    monkeypatch.setattr(event_contracts, "OTHERS_PER_OVERLAP_MESSAGE", 3)
    before = len(messages(session, "ma.tansiq.event.overlap_detected.v2"))
    latest, _ = create(session, organiser="amal-safi", title="Encore", force=True)
    groups = [json.loads(m.body)["data"] for m in messages(session, "ma.tansiq.event.overlap_detected.v2")[before:]]
    assert [len(g["other_event_ids"]) for g in groups] == [3, 2]
    told = [other for g in groups for other in g["other_event_ids"]]
    assert sorted(told) == sorted([o.id for o in others] + [new.id])
    assert all(g["event_id"] == latest.id for g in groups)


def test_other_city_or_other_time_does_not_warn(session):
    create(session)
    _, warnings = create(session, city="Marrakech", organiser="tilila-marrakech")
    assert warnings == []
    _, warnings = create(session, start=datetime(2027, 1, 20, 12, 0), end=datetime(2027, 1, 20, 13, 0))
    assert warnings == []  # back to back is not an overlap


def test_recurring_series_overlaps_a_later_occurrence(session):
    series, _ = create(session, rrule="FREQ=WEEKLY;COUNT=10")
    _, warnings = create(session, organiser="nour-safi", start=datetime(2027, 3, 10, 11, 0),
                         end=datetime(2027, 3, 10, 11, 30))
    assert [w["event_id"] for w in warnings] == [series.id]


def test_same_venue_same_time_is_refused_unless_forced(session, venue):
    first, _ = create(session, venue_id=venue.id)
    with pytest.raises(Conflict, match="Dar Sidi Bouzid") as caught:
        create(session, organiser="nour-safi", venue_id=venue.id)
    session.rollback()
    assert caught.value.code == "venue_conflict"
    assert count(session, Event) == 1
    assert len(messages(session)) == 1  # only the first event's
    _, warnings = create(session, organiser="nour-safi", venue_id=venue.id, force=True)
    assert {w["code"] for w in warnings} == {"venue_double_booked", "overlap"}
    assert count(session, Event) == 2


# --- bad input: a clear error and nothing stored -----------------------------------------------

@pytest.mark.parametrize("bad, code", [
    ({"rrule": "FREQ=SOMETIMES"}, "invalid_rrule"),
    ({"rrule": "BYDAY=MO"}, "invalid_rrule"),
    ({"rrule": "FREQ=WEEKLY;COUNT=2;UNTIL=20270301"}, "invalid_rrule"),
    ({"rrule": "FREQ=WEEKLY;BYDAY=TU"}, "invalid_rrule"),  # 20 Jan 2027 is a Wednesday
    ({"end": datetime(2027, 1, 20, 9, 0)}, "end_before_start"),
    ({"tz": "Africa/Atlantis"}, "unknown_zone"),
    ({"venue_id": "v-nowhere"}, "unknown_venue"),
    ({"organiser": "ghost-assoc"}, "unknown_association"),
    ({"co_organisers": ["amal-safi", "ghost-assoc"]}, "unknown_association"),
    ({"kind": "party"}, "invalid_event"),
    ({"exdates": [datetime(2027, 1, 21, 10, 0)], "rrule": "FREQ=WEEKLY"}, "invalid_exdate"),
])
def test_bad_input_is_refused_and_nothing_is_stored(session, bad, code):
    with pytest.raises(DomainError) as caught:
        create(session, **bad)
    session.rollback()
    assert caught.value.code == code
    assert str(caught.value)
    assert count(session, Event) == 0
    assert messages(session) == []


def test_bad_update_leaves_the_event_as_it_was(session):
    event, _ = create(session)
    with pytest.raises(DomainError):
        domain.update_event(session, NOW, event.id, {"title": "Nouveau", "rrule": "FREQ=NEVER"}, ASSOCIATIONS)
    session.rollback()
    assert session.get(Event, event.id).title == "Formation couture"
    assert len(messages(session)) == 1


def test_known_associations_may_be_a_callable(session):
    asked = []

    def exists(slug):
        asked.append(slug)
        return slug == "amal-safi"

    domain.create_event(session, NOW, spec(), exists)
    assert asked == ["amal-safi"]


# --- registrations and reminders ---------------------------------------------------------------

def test_registrations_are_refused_past_capacity(session):
    event, _ = create(session, capacity=2)
    domain.register(session, NOW, event.id, association="amal-safi", name="Khadija", staff_id="s-1",
                    known_associations=ASSOCIATIONS)
    with pytest.raises(Conflict, match="already"):
        domain.register(session, NOW, event.id, association="amal-safi", name="Khadija B.", staff_id="s-1",
                        known_associations=ASSOCIATIONS)
    domain.register(session, NOW, event.id, association="nour-safi", name="Salma", staff_id="s-2",
                    known_associations=ASSOCIATIONS)
    with pytest.raises(Conflict) as caught:
        domain.register(session, NOW, event.id, association="nour-safi", name="Aicha", staff_id="s-3",
                        known_associations=ASSOCIATIONS)
    assert caught.value.code == "event_full"
    session.commit()
    assert count(session, Registration) == 2


def test_exhibition_stands_list_their_products(session):
    event, _ = create(session, kind="exhibition", title="Salon de l'artisanat")
    stand = domain.register(session, NOW, event.id, association="nour-safi", name="Coopérative Tafilalt",
                            products=["tapis", "poterie"], known_associations=ASSOCIATIONS)
    assert (stand.kind, stand.products) == ("stand", ["tapis", "poterie"])
    with pytest.raises(DomainError, match="product"):
        domain.register(session, NOW, event.id, association="amal-safi", name="Sans produits",
                        known_associations=ASSOCIATIONS)
    with pytest.raises(DomainError):
        domain.register(session, NOW, event.id, kind="participant", association="amal-safi", name="Visiteuse",
                        known_associations=ASSOCIATIONS)


def test_drafts_take_no_registrations(session):
    event, _ = create(session, status="draft")
    with pytest.raises(Conflict):
        domain.register(session, NOW, event.id, association="amal-safi", name="K", known_associations=ASSOCIATIONS)


def test_reminders_once_per_occurrence(session):
    event, _ = create(session, rrule="FREQ=DAILY;COUNT=3")
    domain.register(session, NOW, event.id, association="amal-safi", name="Khadija", staff_id="s-1",
                    known_associations=ASSOCIATIONS)
    domain.register(session, NOW, event.id, association="nour-safi", name="Salma",
                    known_associations=ASSOCIATIONS)  # no staff account: nobody to remind
    session.commit()
    now = datetime(2027, 1, 20, 8, 0, tzinfo=UTC)
    sent = domain.due_reminders(session, now, timedelta(hours=24))
    assert [(e.data["starts_at"], e.data["staff_ids"]) for e in sent] == [("2027-01-20T09:00:00+00:00", ["s-1"])]
    assert domain.due_reminders(session, now + timedelta(minutes=5), timedelta(hours=24)) == []
    later = domain.due_reminders(session, now, timedelta(hours=50))
    assert [e.data["starts_at"][:10] for e in later] == ["2027-01-21", "2027-01-22"]
    session.commit()
    assert len(messages(session, "ma.tansiq.event.reminder_due.v1")) == 3


# --- partner systems publish their own events by message ---------------------------------------

def partner_message(type_="ma.tansiq.event.published.v1", source="nour-safi", **data):
    from tansiq import contracts

    body = {"event_id": "np-7", "organiser": "nour-safi", "title": "Foire des coopératives", "kind": "fair",
            "city": "Safi", "venue": "Place Moulay Youssef", "starts_at": "2027-02-20T09:00:00+00:00",
            "ends_at": "2027-02-20T17:00:00+00:00", "tz": "Africa/Casablanca", "sequence": 0,
            "status": "published", "visibility": "public", **data}
    return contracts.validate(contracts.make(type_, source, body))


def test_partner_events_are_created_updated_and_cancelled(session):
    event, _ = domain.apply_partner_event(session, NOW, partner_message(), ASSOCIATIONS)
    session.commit()
    assert (event.place, event.starts_at.isoformat()) == ("Place Moulay Youssef", "2027-02-20T09:00:00+00:00")
    [occurrence] = window(session, "2027-02-01", "2027-03-01")
    assert occurrence.start_local == "2027-02-20T09:00:00+00:00"  # Ramadan: local = UTC
    update = partner_message("ma.tansiq.event.updated.v1", sequence=3, title="Foire de printemps")
    same, _ = domain.apply_partner_event(session, NOW, update, ASSOCIATIONS)
    assert same.id == event.id and same.title == "Foire de printemps" and same.sequence == 3
    stale = partner_message("ma.tansiq.event.updated.v1", sequence=1, title="Ancien titre")
    _, warnings = domain.apply_partner_event(session, NOW, stale, ASSOCIATIONS)
    assert warnings[0]["code"] == "stale" and same.title == "Foire de printemps"
    domain.apply_partner_event(session, NOW, partner_message("ma.tansiq.event.cancelled.v1", sequence=4,
                                                             status="cancelled"), ASSOCIATIONS)
    session.commit()
    assert same.status == "cancelled" and count(session, Event) == 1


def test_a_partner_speaks_only_for_its_own_events(session):
    from tansiq.errors import Forbidden

    with pytest.raises(Forbidden):
        domain.apply_partner_event(session, NOW, partner_message(source="amal-safi"), ASSOCIATIONS)
    session.rollback()
    assert count(session, Event) == 0


@pytest.mark.parametrize("now", [NOW, datetime(2027, 2, 10, 12, 0, tzinfo=UTC),
                                 datetime(2026, 12, 31, 23, 30, tzinfo=UTC)])
def test_demo_calendar_seeds_once_around_any_date(session, now):
    from services.events import demo

    slugs = {"amal-safi", "wafae-marrakech", "mogador-essaouira", "dar-noor-casablanca", "insaf-rabat",
             "tifawin-agadir"}
    demo.seed(session, now, slugs, progress=lambda _: None)
    demo.seed(session, now, slugs, progress=lambda _: None)
    session.commit()
    assert count(session, Event) == 7
    listed = domain.list_occurrences(session, now - timedelta(days=7), now + timedelta(days=31))
    assert {o.city for o in listed} == {"Safi", "Marrakech", "Essaouira", "Casablanca", "Rabat", "Agadir"}
    assert any(o.moved for o in listed)


def test_listing_window_must_be_sane(session):
    with pytest.raises(DomainError):
        window(session, "2027-02-01", "2027-01-01")
    with pytest.raises(DomainError):
        window(session, "2027-01-01", "2029-01-01")


def test_two_bookings_of_one_venue_checked_at_once_cannot_both_pass(engine, venue):
    """The second booking's check waits for the first one's unit of work: it cannot find the venue free
    while the first is still uncommitted (PostgreSQL reads committed rows only)."""
    import threading

    from tansiq.db import session_scope

    first_checked, go, outcomes = threading.Event(), threading.Event(), {}

    def first():
        with session_scope(engine) as session:
            domain.create_event(session, NOW, spec(venue_id=venue.id), ASSOCIATIONS)
            first_checked.set()
            go.wait(10)  # its booking checked and written, not yet committed

    def second():
        try:
            with session_scope(engine) as session:
                domain.create_event(session, NOW, spec(organiser="nour-safi", venue_id=venue.id), ASSOCIATIONS)
            outcomes["second"] = "booked"
        except Conflict as exc:
            outcomes["second"] = exc.code

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert first_checked.wait(10)
    threads.append(threading.Thread(target=second))
    threads[1].start()
    threads[1].join(1.0)  # without the wait it books the venue now
    go.set()
    for thread in threads:
        thread.join(20)
    assert outcomes == {"second": "venue_conflict"}
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Event).where(Event.venue_id == venue.id)) == 1


def test_a_meeting_inside_a_long_exhibition_is_warned_and_its_check_looks_back_a_day_at_most(session, venue):
    """Longer occurrences are read from partial indexes of their own (occurrences.TIERS): a one-hour meeting
    two weeks into a sixteen-day exhibition is told about it, and refused at its venue, while the check's
    ranges over every occurrence look back no more than six hours however long the exhibition (they used
    to look back 16 days, and read every row of the city in them)."""
    from sqlalchemy import event as sqlalchemy_event

    fair, _ = create(session, title="Salon", kind="exhibition", venue_id=venue.id,
                     start=datetime(2027, 2, 1, 9, 0), end=datetime(2027, 2, 16, 18, 0))
    looked_back_to = []

    def remember(connection, cursor, statement, parameters, context, executemany):
        # Only the ranges over every occurrence (range 0): those of the longer occurrences' own small
        # indexes (earliest_1_n, earliest_2_n) may look back further.
        for values in context.compiled_parameters:
            looked_back_to.extend(value if value.tzinfo else value.replace(tzinfo=UTC)
                                  for name, value in values.items() if name.startswith("earliest_0_"))

    engine = session.get_bind()
    sqlalchemy_event.listen(engine, "before_cursor_execute", remember)
    try:
        _, warnings = create(session, organiser="nour-safi", start=datetime(2027, 2, 14, 10, 0),
                             end=datetime(2027, 2, 14, 11, 0))
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", remember)
    assert [(w["code"], w["event_id"]) for w in warnings] == [("overlap", fair.id)]
    assert looked_back_to and min(looked_back_to) >= datetime(2027, 2, 14, 2, 0, tzinfo=UTC)
    with pytest.raises(Conflict) as caught:
        create(session, organiser="nour-safi", venue_id=venue.id, start=datetime(2027, 2, 15, 10, 0),
               end=datetime(2027, 2, 15, 11, 0))
    session.rollback()
    assert caught.value.code == "venue_conflict"
    _, warnings = create(session, organiser="nour-safi", start=datetime(2027, 2, 17, 10, 0),
                         end=datetime(2027, 2, 17, 11, 0))
    assert warnings == []  # the day after it ended
