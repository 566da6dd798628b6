"""iCalendar feeds: RFC 5545 shape, and an independent expander finds the same occurrences."""

from datetime import date, datetime, timedelta, timezone

import icalendar
import pytest
import recurring_ical_events
from fixtures.events import session  # noqa: F401 - fixture

from services.events import domain, ical
from tansiq.errors import DomainError, NotFound

UTC = timezone.utc
NOW = datetime(2027, 1, 10, 8, 0, tzinfo=UTC)
ASSOCIATIONS = {"amal-safi", "nour-safi", "tilila-marrakech"}
WINDOW = (datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 6, 1, tzinfo=UTC))


def create(session, **values):
    base = {"title": "Formation couture", "kind": "training", "organiser": "amal-safi", "city": "Safi",
            "start": datetime(2027, 1, 25, 10, 0), "end": datetime(2027, 1, 25, 12, 0), "status": "published",
            "visibility": "public"}
    event, _ = domain.create_event(session, NOW, {**base, **values}, ASSOCIATIONS)
    session.commit()
    return event


@pytest.fixture
def network(session):
    """A weekly training across Ramadan with one exception and one moved occurrence, plus others."""
    venue = domain.create_venue(session, name="Maison des jeunes", city="Safi", address="Bd Zerktouni",
                                latitude=32.2994, longitude=-9.2372)
    training = create(session, venue_id=venue.id, rrule="FREQ=WEEKLY;UNTIL=20270329T235959",
                      exdates=[datetime(2027, 2, 8, 10, 0)])
    domain.move_occurrence(session, NOW, training.id, datetime(2027, 3, 1, 10, 0),
                           datetime(2027, 3, 3, 16, 0), datetime(2027, 3, 3, 18, 0))
    festival = create(session, title="Festival des arts", kind="festival", city="Marrakech",
                      organiser="tilila-marrakech", co_organisers=["amal-safi"], all_day=True,
                      start=date(2027, 3, 12), end=date(2027, 3, 15))
    cancelled = create(session, title="Réunion annulée", kind="meeting", start=datetime(2027, 4, 2, 9, 0),
                       end=datetime(2027, 4, 2, 10, 0))
    domain.cancel_event(session, NOW, cancelled.id)
    create(session, title="Réunion interne", kind="meeting", visibility="network",
           start=datetime(2027, 4, 5, 9, 0), end=datetime(2027, 4, 5, 10, 0))
    create(session, title="Brouillon", status="draft", start=datetime(2027, 4, 6, 9, 0),
           end=datetime(2027, 4, 6, 10, 0))
    session.commit()
    return {"training": training, "festival": festival, "cancelled": cancelled}


def expand(text):
    """Occurrences as an independent library sees them: (uid, start UTC, end UTC, status)."""
    cal = icalendar.Calendar.from_ical(text)
    found = set()
    for component in recurring_ical_events.of(cal).between(*WINDOW):
        start, end = component.decoded("dtstart"), component.decoded("dtend")
        if not isinstance(start, datetime):  # all-day: local midnights in the calendar's zone
            zone = domain.zone("Africa/Casablanca")
            start = datetime.combine(start, datetime.min.time(), zone)
            end = datetime.combine(end, datetime.min.time(), zone)
        found.add((str(component["uid"]), start.astimezone(UTC), end.astimezone(UTC), str(component["status"])))
    return found


def test_feed_expands_to_the_same_occurrences_as_the_api(session, network):
    text = ical.feed(session, NOW, "network", visibilities=("public", "network"))
    listed = domain.list_occurrences(session, *WINDOW)
    uids = {e.id: e.uid for e in network.values()}
    from_api = {(uids.get(o.event_id, o.event_id + "@tansiq.ma"), o.start, o.end,
                 ical.ICS_STATUS[o.status]) for o in listed}
    assert expand(text) == from_api
    training = sorted(o.start_local for o in listed if o.event_id == network["training"].id)
    assert "2027-02-08T10:00:00+00:00" not in training           # EXDATE
    assert "2027-03-01T10:00:00+00:00" not in training           # moved away...
    assert "2027-03-03T16:00:00+00:00" in training               # ...to here
    assert {t[11:] for t in training} == {"10:00:00+01:00", "10:00:00+00:00", "16:00:00+00:00"}
    assert len(training) == 9


def test_feed_carries_zones_rules_and_exceptions(session, network):
    text = ical.feed(session, NOW, "network")
    unfolded = text.replace("\r\n ", "")
    assert "X-WR-CALNAME:Tansiq" in unfolded
    assert "BEGIN:VTIMEZONE" in unfolded and "TZID:Africa/Casablanca" in unfolded
    assert "DTSTART;TZID=Africa/Casablanca:20270125T100000" in unfolded
    assert "RRULE:FREQ=WEEKLY;UNTIL=20270329T225959Z" in unfolded
    assert "EXDATE;TZID=Africa/Casablanca:20270208T100000" in unfolded
    assert "RECURRENCE-ID;TZID=Africa/Casablanca:20270301T100000" in unfolded
    assert "DTSTART;VALUE=DATE:20270312" in unfolded and "DTEND;VALUE=DATE:20270316" in unfolded
    assert "STATUS:CANCELLED" in unfolded and "SEQUENCE:1" in unfolded
    assert "GEO:32.2994;-9.2372" in unfolded
    assert "Réunion interne" not in unfolded  # network-only: not in a public feed
    assert "Brouillon" not in unfolded        # drafts never


def test_vtimezone_itself_knows_the_ramadan_offset(session, network):
    cal = icalendar.Calendar.from_ical(ical.feed(session, NOW, "network"))
    [vtimezone] = cal.walk("VTIMEZONE")
    tz = vtimezone.to_tz()  # built from the VTIMEZONE rules, not from the local tzdata
    assert datetime(2027, 1, 25, 10, 0, tzinfo=tz).utcoffset() == timedelta(hours=1)
    assert datetime(2027, 2, 22, 10, 0, tzinfo=tz).utcoffset() == timedelta(0)
    assert datetime(2027, 3, 22, 10, 0, tzinfo=tz).utcoffset() == timedelta(hours=1)


def test_city_association_and_event_feeds(session, network):
    def summaries(text):
        return {str(c["summary"]) for c in icalendar.Calendar.from_ical(text).walk("VEVENT")}

    assert summaries(ical.feed(session, NOW, "city", "marrakech")) == {"Festival des arts"}
    assert summaries(ical.feed(session, NOW, "association", "amal-safi")) == {
        "Formation couture", "Festival des arts", "Réunion annulée"}
    one = ical.feed(session, NOW, "event", network["training"].id)
    assert summaries(one) == {"Formation couture"}
    assert "X-WR-CALNAME:Tansiq - Formation couture" in one
    with pytest.raises(NotFound):
        ical.feed(session, NOW, "event", "no-such-event")
    with pytest.raises(DomainError):
        ical.feed(session, NOW, "planet", "mars")
