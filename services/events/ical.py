"""iCalendar (RFC 5545) feeds of the calendar, built with the `icalendar` library.

Times keep their IANA zone: DTSTART/DTEND/EXDATE/RECURRENCE-ID carry TZID and the
calendar carries a VTIMEZONE written from zoneinfo for exactly the years the feed covers
(services/events/vtimezone.py), so Google Calendar, Outlook and
Thunderbird show Moroccan events at the right hour on both sides of Ramadan.
"""

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import icalendar
from dateutil.relativedelta import relativedelta
from sqlalchemy import String, cast, func, or_, select

from services.events import occurrences, vtimezone
from services.events.models import Event
from services.events.recurrence import cooperate
from services.events.series import get_event
from services.events.timing import Timing
from services.events.venues import venue_dict
from tansiq.errors import DomainError, NotFound

PRODID = "-//Tansiq//Calendrier du reseau//FR"
SCOPES = ("network", "city", "association", "event")
ICS_STATUS = {"published": "CONFIRMED", "postponed": "TENTATIVE", "cancelled": "CANCELLED"}
TITLES = {"network": "Tansiq", "city": "Tansiq - {}", "association": "Tansiq - {}", "event": "Tansiq - {}"}
MONTHS_BACK, MONTHS_AHEAD = 3, 18  # a feed's default window, from the start of the current month
MAX_FEED_WINDOW = timedelta(days=5 * 366)  # ?from=&to= may ask for more, up to this
UTC = timezone.utc


def window(now, start=None, end=None):
    """A feed's window: [start, end) if given, else 3 months back and 18 ahead of this month's
    start (so a feed, and its ETag, stay the same for a month when nothing changes)."""
    month = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = start or month - relativedelta(months=MONTHS_BACK)
    end = end or month + relativedelta(months=MONTHS_AHEAD)
    if end <= start or end - start > MAX_FEED_WINDOW:
        raise DomainError(f"a feed covers 1 to {MAX_FEED_WINDOW.days} days (from < to)", code="invalid_window")
    return start, end


def feed(session, now, scope, value=None, visibilities=("public",), start=None, end=None):
    """The iCalendar text of one feed: the whole network, a city, an association or one event.

    Drafts never appear; cancelled events stay with STATUS:CANCELLED so that
    subscribed calendars remove them. `visibilities` says whether network-only events
    may be included (only for an authenticated reader). A feed holds the events with an
    occurrence in its window (see `window`), read from the stored occurrences.
    """
    name, content, (start, end) = feed_events(session, now, scope, value, visibilities, start, end)
    return text(content, name, now, start, end)


@dataclass
class FeedContent:
    """What a feed holds: the zones of its timed events (for the VTIMEZONE blocks) and, per event,
    its VEVENTs' text as stored with it (Event.ics_text), or the Event itself when no text is stored."""

    zones: set
    parts: list


_ENTRY_COLUMNS = (Event.id, Event.tz, Event.all_day, Event.ics_text)  # then organiser and co-organisers
_ROWS_PER_FETCH = 2000  # a network feed is streamed from the database this many events at a time


def feed_events(session, now, scope, value=None, visibilities=("public",), start=None, end=None):
    """(calendar name, FeedContent, window) of a feed: everything `text` needs, read in one go
    (texts, not events: nothing is written here unless an event's text was never stored)."""
    start, end = window(now, start, end)
    query, name = scope_query(scope, value, visibilities), TITLES[scope].format(value)
    if scope == "event":
        event = get_event(session, value)
        if event.status == "draft" or event.visibility not in visibilities:
            raise NotFound(f"no event {value!r}", code="unknown_event")
        content = FeedContent(set() if event.all_day else {event.tz}, [event.ics_text or event])
        return TITLES[scope].format(event.title), content, (start, end)
    columns = [*_ENTRY_COLUMNS, Event.organiser, Event.co_organisers] if scope == "association" else _ENTRY_COLUMNS
    query = (query.where(occurrences.spanning(start, end)).with_only_columns(*columns)
             .order_by(Event.starts_at, Event.id))
    # Core rows streamed from a server-side cursor: 100,000 texts are read, never held twice.
    result = session.connection().execution_options(stream_results=True, yield_per=_ROWS_PER_FETCH).execute(query)
    content, missing = FeedContent(set(), []), {}
    for number, row in enumerate(result):
        if number % _ROWS_PER_FETCH == 0:
            cooperate()
        if scope == "association" and row[4] != value and value not in (row[5] or []):
            continue
        event_id, tz, all_day, text = row[:4]
        if not all_day:
            content.zones.add(tz)
        if text is None:
            missing[event_id] = len(content.parts)
        content.parts.append(text)
    if missing:
        for event in session.scalars(select(Event).where(Event.id.in_(list(missing)))):
            content.parts[missing[event.id]] = event
    return name, content, (start, end)


def scope_query(scope, value, visibilities):
    """The events a feed may hold, whatever its window (an association's: a superset, see above)."""
    if scope not in SCOPES:
        raise DomainError(f"scope must be one of {', '.join(SCOPES)}", code="invalid_scope")
    if scope != "network" and not value:
        raise DomainError(f"the {scope} feed needs a value", code="invalid_scope")
    query = select(Event).where(Event.status != "draft", Event.visibility.in_(visibilities))
    if scope == "city":
        query = query.where(func.lower(Event.city) == value.lower())
    elif scope == "event":
        query = query.where(Event.id == value)
    elif scope == "association":
        query = query.where(or_(Event.organiser == value, cast(Event.co_organisers, String).like(f'%"{value}"%')))
    return query


def version(session, scope, value, visibilities):
    """(last change, (number of events, sum of their SEQUENCEs)) of what a feed may hold: its ETag
    changes when any does (the sum catches two changes within one clock tick)."""
    # The aggregates replace the scope's columns: a subquery of whole events cost more to build in Python
    # (a proxy per column, each time) than the database took to answer.
    last, count, sequences = session.execute(scope_query(scope, value, visibilities).with_only_columns(
        func.max(Event.updated_at), func.count(), func.coalesce(func.sum(Event.sequence), 0))).one()
    return last, (count, int(sequences))


def text(content, name, now, start, end, event_text=None):
    """The feed's text from its FeedContent, with a yield every few hundred events: a feed of
    many events never holds the event loop (heartbeats, other requests) for long.
    `event_text(event)`: the VEVENTs of an event whose text is not stored (feeds.py keeps those)."""
    event_text = event_text or vevents_text
    head = calendar([], name, now).to_ical().decode("utf-8")
    opening, closing = head[:head.rindex("END:VCALENDAR")], "END:VCALENDAR\r\n"
    parts = [opening]
    if content.zones:
        parts.append(_vtimezones_text(tuple(sorted(content.zones)), start.year, (end - timedelta(seconds=1)).year))
        cooperate()
    for first in range(0, len(content.parts), _YIELD_EVERY):
        parts += [part if isinstance(part, str) else event_text(part)
                  for part in content.parts[first:first + _YIELD_EVERY]]
        cooperate()
    parts.append(closing)
    return "".join(parts)


_YIELD_EVERY = 200  # stored texts are only joined: a yield per event would cost more than the work


@functools.lru_cache(maxsize=64)
def _vtimezones_text(zones, first_year, last_year):
    """The VTIMEZONE blocks of a feed's zones and years (the same for every feed of a month)."""
    return "".join(component.to_ical().decode("utf-8") for component in vtimezone.for_zones(zones, first_year,
                                                                                          last_year))


def vevents_text(event):
    return "".join(component.to_ical().decode("utf-8") for component in components(event))


def calendar(events, name, now):
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", name)
    cal.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", "PT1H")
    zones = {event.tz for event in events if not event.all_day}
    if zones:
        # Before the events that use them; every transition of the covered years, from zoneinfo.
        first, last = covered_years(events, now)
        for component in vtimezone.for_zones(zones, first, last):
            cal.add_component(component)
    for event in events:
        cooperate()  # a feed of many events is CPU work: let heartbeats and other requests through
        for component in components(event):
            cal.add_component(component)
    return cal


def covered_years(events, now):
    """The years a feed's times fall in: its first start to its last end, or three years ahead."""
    first = min(e.starts_at for e in events) - timedelta(days=1)
    last = max([*(e.ends_at for e in events), now + timedelta(days=3 * 366)]) + timedelta(days=1)
    return first.year, last.year


def components(event):
    """The event's VEVENT, then one VEVENT per moved occurrence (same UID, RECURRENCE-ID)."""
    timing = Timing.of(event)
    master = _vevent(event, timing, timing.starts_at, timing.ends_at)
    if timing.rule() is not None:  # a stored rule that fails today's checks is not handed on either
        master.add("rrule", icalendar.vRecur.from_ical(event.rrule))
        if event.exdates:
            # Same value type and zone as DTSTART (RFC 5545 3.8.5.1).
            master.add("exdate", [_moment(timing, timing.local_of_key(key)) for key in event.exdates])
    found = [master]
    for override in event.overrides:
        moved = _vevent(event, timing, override.starts_at, override.ends_at)
        original = override.recurrence_id.astimezone(timing.tz)
        moved.add("recurrence-id", original.date() if timing.all_day else original)
        found.append(moved)
    return found


def _moment(timing, local):
    """A date for all-day events, else the wall time with its zone (TZID)."""
    if timing.all_day:
        return local.date() if isinstance(local, datetime) else local
    return local.astimezone(timing.tz)


def _vevent(event, timing, start, end):
    vevent = icalendar.Event()
    vevent.add("uid", event.uid)
    vevent.add("dtstamp", event.updated_at)
    vevent.add("created", event.created_at)
    vevent.add("last-modified", event.updated_at)
    vevent.add("sequence", event.sequence)
    vevent.add("summary", event.title)
    if event.description:
        vevent.add("description", event.description)
    local_start, local_end = start.astimezone(timing.tz), end.astimezone(timing.tz)
    if timing.all_day:
        vevent.add("dtstart", local_start.date())
        vevent.add("dtend", local_end.date())
    else:
        vevent.add("dtstart", local_start)
        vevent.add("dtend", local_end)
    vevent.add("status", ICS_STATUS[event.status])
    vevent.add("categories", [event.kind])
    vevent.add("class", "PUBLIC" if event.visibility == "public" else "CONFIDENTIAL")
    venue = venue_dict(event.venue, event.place)
    parts = [venue["name"], venue["address"]] if venue else []
    if not any(event.city.casefold() in (part or "").casefold() for part in parts):
        parts.append(event.city)  # the address often names the city already
    vevent.add("location", ", ".join(part for part in parts if part))
    if venue and venue["latitude"] is not None and venue["longitude"] is not None:
        vevent.add("geo", (venue["latitude"], venue["longitude"]))
    vevent.add("x-tansiq-organiser", event.organiser)
    if event.co_organisers:
        vevent.add("x-tansiq-co-organisers", ",".join(event.co_organisers))
    if event.status == "postponed":
        vevent.add("x-tansiq-status", "postponed")
    return vevent
