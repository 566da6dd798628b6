"""Recurrence is bounded: rules outside the closed set are `invalid_rrule`, expansion starts near the
asked window and has a hard budget, and a runaway rule already in the database cannot hang a listing."""

import json
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from fixtures.events import session  # noqa: F401 - fixture

from services.events import domain, recurrence
from services.events.models import Event
from tansiq.errors import DomainError

UTC = timezone.utc
CASABLANCA = ZoneInfo("Africa/Casablanca")
NOW = datetime(2027, 1, 10, 8, 0, tzinfo=UTC)
ASSOCIATIONS = {"amal-safi"}


def spec(rrule, start=datetime(2027, 1, 20, 10, 0)):
    return {"title": "Formation", "kind": "training", "organiser": "amal-safi", "city": "Safi", "start": start,
            "end": start + timedelta(hours=2), "status": "published", "rrule": rrule}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("rule", [
    "FREQ=DAILY;INTERVAL=0",             # dateutil never ends
    "FREQ=DAILY;INTERVAL=-1",
    "FREQ=DAILY;INTERVAL=1000",
    "FREQ=MINUTELY",                     # no end, a million occurrences every two years
    "FREQ=SECONDLY;COUNT=10",
    "FREQ=HOURLY;UNTIL=20270201T000000Z",
    "FREQ=DAILY;COUNT=1000000",
    "FREQ=DAILY;COUNT=0",
    "FREQ=DAILY;COUNT=1e3",
    "FREQ=WEEKLY;UNTIL=20370101T000000Z",  # ten years
    "FREQ=DAILY;BYHOUR=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23",
    "FREQ=DAILY;BYMINUTE=0,30",
    "FREQ=YEARLY;BYYEARDAY=1",
    "FREQ=YEARLY;BYWEEKNO=3",
    "FREQ=DAILY;BYMONTHDAY=20",          # month days only for MONTHLY and YEARLY
    "FREQ=WEEKLY;BYDAY=2WE",             # n-th weekday only for MONTHLY and YEARLY
    "FREQ=MONTHLY;BYDAY=9WE",
    "FREQ=MONTHLY;BYMONTHDAY=32",
    "FREQ=YEARLY;BYMONTH=13",
    "FREQ=MONTHLY;BYSETPOS=1",
    "FREQ=WEEKLY;WKST=XX",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",  # matches nothing, ever: dateutil would walk to 9999
    "FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30",
])
def test_rules_outside_the_closed_set_are_invalid_rrule(session, rule):
    with pytest.raises(DomainError) as refused:
        domain.create_event(session, NOW, spec(rule), ASSOCIATIONS)
    assert refused.value.code == "invalid_rrule"


@pytest.mark.parametrize("rule", [
    "FREQ=WEEKLY", "FREQ=WEEKLY;BYDAY=WE;COUNT=500", "FREQ=DAILY;INTERVAL=2;UNTIL=20311231T000000Z",
    "FREQ=MONTHLY;BYDAY=3WE", "FREQ=MONTHLY;BYMONTHDAY=20;INTERVAL=3", "FREQ=YEARLY",
    "FREQ=MONTHLY;BYDAY=WE;BYSETPOS=3", "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;WKST=SU",
])
def test_rules_of_peoples_lives_are_accepted(session, rule):
    event, _ = domain.create_event(session, NOW, spec(rule), ASSOCIATIONS)
    assert event.rrule


@pytest.mark.parametrize("rule, start", [
    ("FREQ=MONTHLY", datetime(2027, 1, 31, 10)),                        # 31st: months without one are skipped
    ("FREQ=MONTHLY;BYDAY=-1FR", datetime(2027, 1, 29, 10)),
    ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE,FR;WKST=SU", datetime(2027, 1, 20, 10)),
    ("FREQ=WEEKLY;INTERVAL=3", datetime(2027, 1, 20, 10)),
    ("FREQ=DAILY;INTERVAL=5;BYDAY=MO,TU", datetime(2027, 1, 25, 10)),
    ("FREQ=YEARLY;INTERVAL=2", datetime(2028, 2, 29, 10)),              # leap day, every other year
    ("FREQ=YEARLY;BYMONTH=3,9;BYDAY=1SA", datetime(2027, 3, 6, 10)),
    ("FREQ=MONTHLY;INTERVAL=5;BYMONTHDAY=1,15", datetime(2027, 1, 15, 10)),
    ("FREQ=DAILY;UNTIL=20310101T000000Z", datetime(2027, 1, 20, 10)),
])
@pytest.mark.parametrize("year", [2027, 2030, 2031, 2043])
def test_expansion_near_the_window_finds_what_a_walk_from_the_start_finds(rule, start, year):
    dtstart = start.replace(tzinfo=CASABLANCA)
    lo, hi = datetime(year, 2, 27, 11, tzinfo=CASABLANCA), datetime(year, 11, 3, tzinfo=CASABLANCA)
    full = [moment for moment in rrulestr(rule, dtstart=dtstart).between(lo, hi, inc=True) if moment < hi]
    assert recurrence.between(recurrence.build(rule, dtstart), lo, hi) == full


def test_expansion_stops_at_its_budget():
    rule = recurrence.build("FREQ=DAILY", datetime(2027, 1, 1, 10, tzinfo=CASABLANCA))
    lo = datetime(2040, 1, 1, tzinfo=CASABLANCA)
    assert len(recurrence.between(rule, lo, lo + timedelta(days=3000), limit=100)) < 100


def test_first_occurrence_of_a_rule_that_never_matches_is_none():
    rule = rrulestr("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", dtstart=datetime(2027, 1, 1))
    assert recurrence.first_occurrence(rule) is None
    rule = rrulestr("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", dtstart=datetime(2027, 1, 1, 9, tzinfo=CASABLANCA))
    assert recurrence.first_occurrence(rule) == datetime(2028, 2, 29, 9, tzinfo=CASABLANCA)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stored", ["FREQ=DAILY;INTERVAL=0", "FREQ=SECONDLY", "FREQ=MINUTELY;COUNT=1000000",
                                    "FREQ=DAILY;COUNT=1000000", "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "garbage"])
def test_a_stored_runaway_rule_cannot_hang_listing_reminders_or_the_feed(session, stored):
    """Rules written before the checks existed: the event keeps its first occurrence, nothing hangs."""
    from services.events import ical

    start = datetime(2027, 1, 20, 9, tzinfo=UTC)
    event_id = str(uuid.uuid4())
    session.add(Event(id=event_id, uid=f"{event_id}@tansiq.ma", title="Ancienne règle", kind="training",
                      organiser="amal-safi", city="Safi", starts_at=start, ends_at=start + timedelta(hours=1),
                      tz="Africa/Casablanca", rrule=stored, status="published", visibility="public",
                      created_at=NOW, updated_at=NOW))
    session.commit()
    listed = domain.list_occurrences(session, datetime(2027, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC))
    assert [o.start for o in listed] == [start]
    assert domain.due_reminders(session, NOW, timedelta(days=30)) == []
    assert "RRULE" not in ical.feed(session, NOW, "network")


def test_listing_a_year_of_an_open_ended_daily_series_in_its_tenth_year(session):
    domain.create_event(session, NOW, spec("FREQ=DAILY", start=datetime(2027, 1, 20, 10)), ASSOCIATIONS)
    session.commit()
    listed = domain.list_occurrences(session, datetime(2036, 1, 1, tzinfo=UTC), datetime(2037, 1, 1, tzinfo=UTC))
    assert len(listed) == 366
    assert {o.start_local[11:16] for o in listed} == {"10:00"}  # local 10:00, Ramadan or not


@pytest.mark.parametrize("rule", ["FREQ=DAILY;INTERVAL=0", "FREQ=MINUTELY", "FREQ=DAILY;COUNT=1000000"])
def test_invalid_rrule_is_a_400_in_the_api(session, rule):
    from services.gateway import web

    with pytest.raises(DomainError) as refused:
        domain.create_event(session, NOW, spec(rule), ASSOCIATIONS)
    response = web.response_for(refused.value)
    assert response.status_code == 400
    assert json.loads(response.get_data())["error"]["code"] == "invalid_rrule"


def test_a_long_expansion_yields_to_other_green_threads(monkeypatch):
    """Heartbeats and other requests run during CPU-heavy expansion (cooperate() is eventlet.sleep(0) there)."""
    yields = []
    monkeypatch.setattr(recurrence, "cooperate", lambda: yields.append(1))
    rule = recurrence.build("FREQ=DAILY", datetime(2027, 1, 1, 10, tzinfo=CASABLANCA))
    lo = datetime(2027, 1, 1, tzinfo=CASABLANCA)
    assert len(recurrence.between(rule, lo, lo + timedelta(days=1000))) == 1000
    assert len(yields) >= 1000 // recurrence.YIELD_EVERY
