"""VTIMEZONE from the zone database: every transition of the covered years, and a parser that
trusts the feed's own VTIMEZONE (vobject) places the Ramadan-crossing training where zoneinfo does."""

import io
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import icalendar
import vobject

from services.events import domain, ical, vtimezone

UTC = timezone.utc
CASABLANCA = ZoneInfo("Africa/Casablanca")
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def zoneinfo_transitions(tz, first_year, last_year):
    """Every offset change, hour by hour, straight from zoneinfo (independent of the bisection)."""
    moment = datetime(first_year, 1, 1, tzinfo=UTC)
    end = datetime(last_year + 1, 1, 1, tzinfo=UTC)
    found, offset = [], moment.astimezone(tz).utcoffset()
    while moment < end:
        moment += timedelta(hours=1)
        now_offset = moment.astimezone(tz).utcoffset()
        if now_offset != offset:
            found.append((moment, offset, now_offset))
            offset = now_offset
    return found


def test_every_casablanca_transition_2026_2030_is_in_the_block():
    expected = zoneinfo_transitions(CASABLANCA, 2026, 2030)
    assert len(expected) == 11  # into and out of Ramadan each year, and into it again in December 2030
    assert any(t[0].year == 2027 and t[0].month == 2 for t in expected)  # the one icalendar misses
    component = vtimezone.vtimezone(CASABLANCA, 2026, 2030)
    tz = icalendar.Calendar.from_ical(component.to_ical()).walk("VTIMEZONE")[0].to_tz()  # from the block only
    written = [(o.decoded("dtstart"), o.decoded("tzoffsetfrom"), o.decoded("tzoffsetto"))
               for o in component.subcomponents][1:]
    assert [(onset - before, before, after) for onset, before, after in written] == [  # local -> UTC
        (instant.replace(tzinfo=None), before, after) for instant, before, after in expected]
    # And the block, read back, agrees with zoneinfo hour by hour over the five years.
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    while moment < datetime(2031, 1, 1, tzinfo=UTC):
        assert moment.astimezone(tz).utcoffset() == moment.astimezone(CASABLANCA).utcoffset(), moment
        moment += timedelta(hours=1)


def test_block_covers_exactly_the_years_asked():
    component = vtimezone.vtimezone(CASABLANCA, 2027, 2027)
    onsets = [o.decoded("dtstart") for o in component.subcomponents]
    assert {onset.year for onset in onsets} == {2027}
    assert len(onsets) == 3  # where 2027 begins, into Ramadan, out of it


def test_vobject_expands_the_ramadan_training_from_the_feeds_own_vtimezone(tmp_path):
    from sqlalchemy.orm import Session

    from services.events.models import Base
    from tansiq.db import make_engine
    from tansiq.messaging.store import messaging_metadata

    engine = make_engine(f"sqlite:///{tmp_path / 'events.db'}")
    Base.metadata.create_all(engine)
    messaging_metadata.create_all(engine)
    with Session(engine, expire_on_commit=False) as session:
        event, _ = domain.create_event(session, NOW, {
            "title": "Formation couture", "kind": "training", "organiser": "amal-safi", "city": "Safi",
            "start": datetime(2027, 1, 4, 10, 0), "end": datetime(2027, 1, 4, 12, 0), "status": "published",
            "visibility": "public", "rrule": "FREQ=WEEKLY;COUNT=20"}, {"amal-safi"})
        session.commit()
        text = ical.feed(session, NOW, "network")
    engine.dispose()

    # The expected instants: 10:00 local every Monday, offsets from zoneinfo.
    expected = [datetime(2027, 1, 4, 10, 0, tzinfo=CASABLANCA) + timedelta(weeks=n) for n in range(20)]
    expected = [(moment.astimezone(UTC), (moment + timedelta(hours=2)).astimezone(UTC)) for moment in expected]
    assert {start.utcoffset() for start, _ in expected} == {timedelta(0)}
    assert len({(s.astimezone(CASABLANCA).utcoffset()) for s, _ in expected}) == 2  # crosses Ramadan

    parsed = vobject.readOne(io.StringIO(text))
    [vevent] = parsed.vevent_list
    dtstart = vevent.dtstart.value
    assert not isinstance(dtstart.tzinfo, ZoneInfo)  # vobject built the zone from the feed's VTIMEZONE
    duration = vevent.dtend.value - dtstart
    found = [(s.astimezone(UTC), (s + duration).astimezone(UTC)) for s in vevent.getrruleset(addRDate=True)]
    assert found == expected
