"""Occurrences stored, not recomputed: the `event_occurrences` table and what reads it.

Each event's occurrences are written next to it, in the same unit of work as the series and
its exceptions (`store`), over a rolling horizon: a recurring series is stored up to
HORIZON after now (or after its start), and a timer (`extend`) moves that horizon on before it
comes near. Listings, overlap and venue checks then read one index range, (city, start),
(venue, start) or (start), instead of expanding every recurring event of the city.

Beyond the stored horizon (a window years ahead, or an event stored before this table
existed), the few series concerned are expanded live and merged in, so an answer is never
short of an occurrence. A listing is paged by a cursor on (start, title, event, occurrence):
a page says where the next one starts, and the last one says there is none.
"""

import base64
import binascii
import collections
import functools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Integer,
    String,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    or_,
    select,
    text,
    tuple_,
    union_all,
)

from services.events import ical, listing, overlaps, recurrence
from services.events import timing as timing_rules
from services.events.models import TIER_MINUTES, Event, Registration, StoredOccurrence, Venue, longer_than
from services.events.validation import VISIBILITIES
from services.events.venues import venue_dict
from tansiq.db import insert_many
from tansiq.errors import DomainError

UTC = timezone.utc
HORIZON = timedelta(days=730)  # how far ahead recurring series are stored
RENEW_BEFORE = timedelta(days=30)  # the timer extends a series once less than this is left
STORED_FOREVER = datetime(9999, 1, 1, tzinfo=UTC)  # occurrences_until of an event with nothing left to store
PAGE_SIZE = 200  # a month view page: read, made and written as JSON well within 20 ms
MAX_PAGE_SIZE = 2000
_CHUNK = timedelta(days=366)  # at most one occurrence a day: a chunk stays within the expansion budget
EXTEND_BATCH = 200  # events one unit of work of the timer brings up to date
_SPANS_PER_QUERY = 50  # overlap checks ask for this many spans in one statement (a range each by city and venue)
# A range of stored occurrences looks back at most TIERS[0] for what started before it and still goes on; what
# lasts longer is read from the partial indexes of each tier (ix_occurrences_over*), each range looking back to
# the next tier, the last one to the longest stored. One 16-day exhibition made every overlap check read 16 days
# of its city's rows and every month page 16 days of the network's.
TIERS = tuple(timedelta(minutes=minutes) for minutes in TIER_MINUTES)


def _tiers(longest):
    """[(minutes, shortest reach, longest reach)]: each tier the stored occurrences reach past, and how far
    back its range looks (past the reach of the one before, up to the next tier or the longest)."""
    bounds = [*(tier for tier in TIERS if tier < longest), longest]
    return [(minutes, bounds[n], bounds[n + 1]) for n, minutes in enumerate(TIER_MINUTES[:len(bounds) - 1])]


# --- writing ----------------------------------------------------------------------------------

def store(session, event, now):
    """Rewrite every stored occurrence of `event`, as it is now in this session, and the VEVENT text
    feeds read (ical.vevents_text): one DELETE, one UPDATE of the event, one INSERT."""
    session.flush()
    session.execute(delete(StoredOccurrence).where(StoredOccurrence.event_id == event.id))
    insert_rows(session, prepare(event, now))  # its autoflush writes the event's derived columns at once


def prepare(event, now):
    """Set what the event's own fields determine (occurrences_until, its span, its VEVENT text) and
    return the rows of its stored occurrences. A new event is prepared before its INSERT, so that
    one statement writes it whole (series.create_event)."""
    rows, event.occurrences_until = rows_of(event, now)
    set_span(event, rows)
    event.ics_text = None if event.status == "draft" else ical.vevents_text(event)  # feeds never show drafts
    return rows


def insert_rows(session, rows):
    insert_many(session, StoredOccurrence, rows)


def set_span(event, rows):
    """When the event's occurrences begin and end (span_ends_at None: a series without end), so a
    feed finds the events of its window in the events table alone."""
    starts = [row["starts_at"] for row in rows]
    event.span_starts_at = min([event.starts_at, *starts])
    complete = event.occurrences_until == STORED_FOREVER
    event.span_ends_at = max([event.ends_at, *(row["ends_at"] for row in rows)]) if complete else None


def rows_of(event, now):
    """(rows of `event_occurrences`, occurrences_until) of an event: what `store` writes."""
    timing = timing_rules.Timing.of(event)
    until = max(now, timing.starts_at) + HORIZON
    rows = _natural_rows(event, timing, None, until)
    moved = _moved(event, timing)
    exdates = set(event.exdates or [])
    rows += [_row(event, timing, key, start, end, True) for key, (start, end) in moved.items() if key not in exdates]
    return rows, STORED_FOREVER if _complete(timing, until) else until


def extend(session, now, batch=None):
    """Store the occurrences of up to `batch` (EXTEND_BATCH) series whose horizon is near (or never
    stored). Returns how many events were brought up to date; the timer calls it until fewer."""
    batch = batch or EXTEND_BATCH
    due = now + HORIZON - RENEW_BEFORE
    events = list(session.scalars(select(Event).where(
        or_(Event.occurrences_until.is_(None), Event.occurrences_until < due)).limit(batch)))
    for event in events:
        recurrence.cooperate()
        if event.occurrences_until is None:
            store(session, event, now)
            continue
        timing = timing_rules.Timing.of(event)
        until = max(now, timing.starts_at) + HORIZON
        rows = _natural_rows(event, timing, event.occurrences_until, until)
        insert_rows(session, rows)
        event.occurrences_until = STORED_FOREVER if _complete(timing, until) else until
        if event.occurrences_until == STORED_FOREVER:  # the series' end is now stored
            event.span_ends_at = session.scalar(select(func.max(StoredOccurrence.ends_at)).where(
                StoredOccurrence.event_id == event.id)) or event.ends_at
    session.flush()
    return len(events)


def _moved(event, timing):
    return {timing_rules.override_key(o, timing): (o.starts_at, o.ends_at) for o in event.overrides}


def _natural_rows(event, timing, lo, hi):
    """Rows of the occurrences the rule itself gives, whose start is in [lo, hi) (lo None: from
    the first), less exdates and moved ones (those are stored from their override)."""
    skip = set(event.exdates or []) | set(_moved(event, timing))
    rows = []
    for local in natural_starts(timing, lo, hi):
        key = timing.key(local)
        if key not in skip:
            rows.append(_row(event, timing, key, timing.to_utc(local), timing.end_of(local), False))
    return rows


def natural_starts(timing, lo, hi):
    """Local starts of the rule with a UTC start in [lo, hi), walked a year at a time."""
    rule = timing.rule()
    if rule is None:
        inside = (lo is None or timing.starts_at >= lo) and timing.starts_at < hi
        return [timing.local_start] if inside else []
    found = []
    chunk_lo = max(lo, timing.starts_at) if lo is not None else timing.starts_at
    while chunk_lo < hi:
        chunk_hi = min(chunk_lo + _CHUNK, hi)
        local_lo, local_hi = chunk_lo.astimezone(timing.tz), chunk_hi.astimezone(timing.tz)
        if timing.all_day:
            local_lo, local_hi = local_lo.replace(tzinfo=None), local_hi.replace(tzinfo=None)
        found += [local for local in recurrence.between(rule, max(local_lo, timing.local_start), local_hi)
                  if chunk_lo <= timing.to_utc(local) < chunk_hi]
        chunk_lo = chunk_hi
    return found


def _complete(timing, until):
    """Whether the rule has no occurrence starting at or after `until`."""
    rule = timing.rule()
    if rule is None:
        return True
    if rule._until is not None:
        last = rule._until
        last = timing.to_utc(last) if last.tzinfo is None else last.astimezone(UTC)
        return last < until
    if rule._count is not None:
        return len(recurrence.between(rule, timing.local_start, _local(timing, until))) >= rule._count
    return False


def _local(timing, moment):
    local = moment.astimezone(timing.tz)
    return local.replace(tzinfo=None) if timing.all_day else local


def _row(event, timing, key, start, end, moved):
    return {"event_id": event.id, "recurrence_key": key, "starts_at": start, "ends_at": end,
            "minutes": max(0, int((end - start).total_seconds() // 60) + 1), "moved": moved, "title": event.title,
            "city_key": event.city.lower(), "venue_id": event.venue_id, "organiser": event.organiser,
            "kind": event.kind, "status": event.status, "visibility": event.visibility}


def _intersecting(start, end, earliest):
    """Rows intersecting [start, end), found by a range on their start (none starts before `earliest`:
    `start` less the longest stored occurrence)."""
    return and_(StoredOccurrence.starts_at < end, StoredOccurrence.ends_at > start,
                StoredOccurrence.starts_at >= earliest)


def _beyond_horizon(window_end):
    """Events some of whose occurrences in a window ending at `window_end` are not stored."""
    return or_(Event.occurrences_until.is_(None), Event.occurrences_until < window_end)


# --- listings ---------------------------------------------------------------------------------

@dataclass
class Page:
    """One page of a listing; `next` is the cursor of the following page, None on the last."""

    items: list
    next: str | None


def page(session, window_start, window_end, city=None, kind=None, association=None,
         visibilities=None, include_drafts=False, cursor=None, limit=PAGE_SIZE):
    """Occurrences in a window sorted by (start, title, event, occurrence), `limit` at a time."""
    visibilities = VISIBILITIES if visibilities is None else visibilities
    if window_end <= window_start:
        raise DomainError("the window end must be after its start", code="invalid_window")
    if window_end - window_start > listing.MAX_WINDOW:
        raise DomainError(f"ask for at most {listing.MAX_WINDOW.days} days at a time", code="invalid_window")
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise DomainError(f"limit must be 1..{MAX_PAGE_SIZE}", code="invalid_request")
    after = decode_cursor(cursor)
    longest, all_stored = _bounds(session, window_end)
    dialect = session.get_bind().dialect.name
    tiers = _tiers(longest)  # what began before the main range and lasts longer: few rows, a range of each tier
    query = _page_statement(dialect, bool(city), bool(kind), bool(association), include_drafts, after is not None,
                            tuple(minutes for minutes, _, _ in tiers))
    values = {"window_start": window_start, "window_end": window_end,
              "earliest": window_start - min(longest, TIERS[0]), "visibilities": list(visibilities),
              "rows": limit + 1, "city": city and city.lower(), "kind": kind, "association": association,
              "co_organiser": f'%"{association}"%'}
    for number, (_, shortest, farthest) in enumerate(tiers):
        values.update({f"oldest_{number}": window_start - farthest, f"earliest_{number}": window_start - shortest})
    if after is not None:
        values.update(zip(_AFTER, after, strict=True))
    found = [(_sort_key(row.starts_at, row.title, row.id, row.recurrence_key),
              listing.occurrence(row, zone(row.tz), row.recurrence_key, row.starts_at, row.ends_at, row.moved,
                                 _venue(row), row.registered, _co_organisers(row.co_organisers_text)))
             for row in _plain_rows(session.connection().execute(query, values))]
    if not all_stored:
        found += _live(session, window_start, window_end, city, kind, visibilities, include_drafts, after)
    if association:
        found = [(key, o) for key, o in found if o.organiser == association or association in o.co_organisers]
    found.sort(key=lambda pair: pair[0])
    items = [o for _, o in found[:limit]]
    more = len(found) > limit
    return Page(items, encode_cursor(found[limit - 1][0]) if more else None)


_AFTER = ("after_start", "after_title", "after_event", "after_key")


@functools.lru_cache(maxsize=128)
def _page_statement(dialect, city, kind, association, include_drafts, after, tiers):
    """A page's statement for one shape of filters, its values as parameters: built once (building it
    took a fifth of a page's time), executed with `page`'s values. One statement, not one per tier:
    each cost a round trip and PostgreSQL's planning (0.7 ms) for a row or two."""
    stored = StoredOccurrence
    moment = stored.starts_at.type
    # The page's rows first, alone: the next `limit` + 1 entries of one index (ix_occurrences_order or
    # ix_occurrences_city_order) read in order; then their events' fields, joined to those rows only.
    # (Joined before the limit, PostgreSQL would hash the whole events table for every page.)
    rows = (select(*_ORDER, stored.ends_at, stored.moved, stored.kind, stored.organiser, stored.status,
                   stored.visibility)
            .where(_intersecting(bindparam("window_start", type_=moment), bindparam("window_end", type_=moment),
                                 bindparam("earliest", type_=moment)),
                   *_page_filters(city, kind, association, include_drafts, after))
            .order_by(*_ORDER).limit(bindparam("rows", type_=Integer)).subquery())
    parts = [_with_event_fields(dialect, rows)]
    # Then what began before :earliest and lasts longer than a tier, in that tier's partial index, each from
    # :oldest_n to :earliest_n (where the range of the tier before began). Few rows: not limited.
    for number, minutes in enumerate(tiers):
        parts.append(_with_event_fields(dialect, stored.__table__).where(
            text(longer_than(minutes)), stored.starts_at >= bindparam(f"oldest_{number}", type_=moment),
            stored.starts_at < bindparam(f"earliest_{number}", type_=moment),
            stored.ends_at > bindparam("window_start", type_=moment),
            *_page_filters(city, kind, association, include_drafts, after)))
    return parts[0] if len(parts) == 1 else union_all(*parts)


def _page_filters(city, kind, association, include_drafts, after):
    """A page's conditions on stored occurrences besides their time, its values as parameters."""
    stored = StoredOccurrence
    conditions = [stored.visibility.in_(bindparam("visibilities", expanding=True))]
    if not include_drafts:
        conditions.append(stored.status != "draft")
    if city:
        conditions.append(stored.city_key == bindparam("city", type_=stored.city_key.type))
    if kind:
        conditions.append(stored.kind == bindparam("kind", type_=stored.kind.type))
    if association:
        # A superset in SQL (the JSON list as text), made exact in `page`.
        conditions.append(or_(stored.organiser == bindparam("association", type_=stored.organiser.type),
                              stored.event_id.in_(select(Event.id).where(cast(Event.co_organisers, String).like(
                                  bindparam("co_organiser", type_=String))))))
    if after:
        conditions.append(tuple_(*_ORDER) > tuple_(*(bindparam(name, type_=column.type)
                                                     for name, column in zip(_AFTER, _ORDER, strict=True))))
    return conditions


def _with_event_fields(dialect, stored):
    """A page's rows from `stored` (the occurrences' table, or a subquery of its rows) with their events'
    and venues' fields."""
    return (select(stored.c.event_id.label("id"), *(stored.c[name] for name in _ROW_FIELDS), *_EVENT_FIELDS)
            .select_from(stored).join(Event, Event.id == _in_events_collation(dialect, stored.c.event_id))
            .outerjoin(Venue, Venue.id == Event.venue_id))


def _plain_rows(result):
    """A result's rows as named tuples: reading a field of SQLAlchemy's Row by name goes through Python
    (about 1 µs), and a page reads 25 of each of its 200 rows."""
    as_tuple = _row_type(tuple(result.keys()))
    return [as_tuple._make(row) for row in result.all()]


@functools.lru_cache(maxsize=64)
def _row_type(fields):
    return collections.namedtuple("Row", fields)


def _in_events_collation(dialect, column):
    """A stored occurrence's event_id (collation "C" on PostgreSQL) in events.id's collation, so that
    a join is answered by the events' primary key rather than by hashing the whole table."""
    return column.collate("default") if dialect == "postgresql" else column


_ROW_FIELDS = ("recurrence_key", "starts_at", "ends_at", "moved", "title", "kind", "organiser", "status", "visibility")
_EVENT_FIELDS = (
    # As text: most events have none, and decoding "[]" for each row of a page cost a tenth of its time.
    Event.city, cast(Event.co_organisers, Text).label("co_organisers_text"), Event.tz, Event.all_day, Event.rrule,
    Event.sequence, Event.description,
    Event.capacity, Event.place, Venue.id.label("venue_id"), Venue.name.label("venue_name"),
    Venue.city.label("venue_city"), Venue.address.label("venue_address"), Venue.latitude.label("venue_latitude"),
    Venue.longitude.label("venue_longitude"),
    select(func.count()).where(Registration.event_id == Event.id).correlate(Event).scalar_subquery().label(
        "registered"))


def _co_organisers(text):
    return [] if text is None or text == "[]" else json.loads(text)


@functools.lru_cache(maxsize=64)
def zone(name):
    return ZoneInfo(name)


def _venue(row):
    venue = None if row.venue_id is None else SimpleNamespace(
        id=row.venue_id, name=row.venue_name, city=row.venue_city, address=row.venue_address,
        latitude=row.venue_latitude, longitude=row.venue_longitude)
    return venue_dict(venue, row.place)


def _bounds(session, window_end):
    """(longest stored occurrence, whether every occurrence before `window_end` is stored): one
    round trip on indexed columns before each page (the second spares the live expansion)."""
    longest, earliest, unstored = session.connection().execute(_BOUNDS).one()
    all_stored = not unstored and (earliest is None or earliest >= window_end)
    return timedelta(minutes=longest or 0), all_stored


# Built once: it has no parameters, and building it cost more than the database took to answer it.
_BOUNDS = select(select(func.max(StoredOccurrence.minutes)).scalar_subquery(),
                 select(func.min(Event.occurrences_until)).scalar_subquery(),
                 exists().where(Event.occurrences_until.is_(None)))

_ORDER = (StoredOccurrence.starts_at, StoredOccurrence.title, StoredOccurrence.event_id,
          StoredOccurrence.recurrence_key)


def _sort_key(start, title, event_id, key):
    return (start.astimezone(UTC), title, event_id, key)


def _live(session, window_start, window_end, city, kind, visibilities, include_drafts, after):
    """Occurrences in the window that are not stored (beyond an event's horizon), expanded now."""
    query = select(Event).where(_beyond_horizon(window_end), Event.visibility.in_(visibilities), or_(
        Event.rrule.is_not(None), and_(Event.starts_at < window_end, Event.ends_at > window_start)))
    if not include_drafts:
        query = query.where(Event.status != "draft")
    if city:
        query = query.where(func.lower(Event.city) == city.lower())
    if kind:
        query = query.where(Event.kind == kind)
    found = []
    for event in session.scalars(query):
        until, timing = event.occurrences_until, timing_rules.Timing.of(event)
        for occurrence in listing.occurrences_of(event, window_start, window_end):
            if until is not None and (occurrence.moved or occurrence.start < until):
                continue  # stored already
            key = _sort_key(occurrence.start, occurrence.title, occurrence.event_id,
                            occurrence.recurrence_id or timing.key(timing.local_start))
            if after is None or key > after:
                found.append((key, occurrence))
    return found


def encode_cursor(key):
    start, title, event_id, recurrence_key = key
    text = json.dumps([start.isoformat(), title, event_id, recurrence_key], ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor):
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
        start, title, event_id, recurrence_key = json.loads(text)
        start = datetime.fromisoformat(start)
        if start.tzinfo is None or not all(isinstance(v, str) for v in (title, event_id, recurrence_key)):
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise DomainError("this cursor was not given by a listing", code="invalid_cursor") from None
    return _sort_key(start, title, event_id, recurrence_key)


def spanning(window_start, window_end):
    """Events whose occurrences may meet [window_start, window_end): from their first start to their
    last end (set_span), a superset only for a series with a gap over the whole window. An event
    stored before its span was (NULL) counts from its first start, without end."""
    return and_(func.coalesce(Event.span_starts_at, Event.starts_at) < window_end,
                or_(Event.span_ends_at.is_(None), Event.span_ends_at > window_start))


# --- overlaps ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Other:
    """Another event, as an overlap warning or a venue refusal names it."""

    id: str
    title: str
    organiser: str
    city: str
    venue_id: str | None
    venue_name: str | None


_OTHER_FIELDS = (Event.id, Event.title, Event.organiser, Event.city, Event.venue_id, Venue.name.label("venue_name"))


@functools.lru_cache(maxsize=256)
def _clashing_statement(dialect, spans, at_a_venue, tiers):
    """The overlap check's statement for `spans` spans (and a venue or not), its values as parameters:
    built once per shape, as a page's is (building it was a tenth of a create's CPU)."""
    stored = StoredOccurrence
    same_place = [stored.city_key == bindparam("city", type_=stored.city_key.type)]
    if at_a_venue:
        same_place.append(stored.venue_id == bindparam("venue", type_=stored.venue_id.type))
    # One index range per (place, span, range of `tiers`), glued with UNION ALL: both SQLite and PostgreSQL
    # walk (city_key, starts_at) or (venue_id, starts_at) for each, never the whole table. Range 0 (tier
    # None) is every occurrence's, from :earliest_0_n to the span's end; range r of a tier (its minutes),
    # the same range in that tier's partial indexes, from :earliest_r_n up to :latest_r_n (where the range
    # before began), for what started earlier and still goes on. Joined to their events in the same
    # statement, with only what a warning names (title, organiser, city, venue): not their text,
    # exceptions or registrations.
    moment = stored.starts_at.type
    found = union_all(*(select(stored.event_id, stored.starts_at, stored.ends_at).where(
        place, *([text(longer_than(minutes))] if minutes else []), stored.status == "published",
        stored.event_id != bindparam("me", type_=stored.event_id.type),
        _intersecting(bindparam(f"start_{n}", type_=moment), bindparam(f"latest_{r}_{n}", type_=moment),
                      bindparam(f"earliest_{r}_{n}", type_=moment)))
        for place in same_place for r, minutes in enumerate(tiers) for n in range(spans))).subquery()
    # Columns, not Event objects: loading entities cost more than the query.
    return (select(*_OTHER_FIELDS, found.c.starts_at, found.c.ends_at).select_from(Event)
            .join(found, Event.id == _in_events_collation(dialect, found.c.event_id))
            .outerjoin(Venue, Venue.id == Event.venue_id))


def clashing(session, who, spans, window_end):
    """{Other: its spans that intersect one of `spans`}: published events in the same city
    or at the same venue, read from stored occurrences (and expanded live beyond their horizon)."""
    theirs, others = {}, {}
    longest, all_stored = _bounds(session, window_end)
    dialect = session.get_bind().dialect.name
    place = {"city": who.city.lower(), "venue": who.venue_id, "me": who.id}
    # Every range from its span's start back TIERS[0]; then each tier's, further back, in its partial indexes:
    # all in one statement (one round trip, one plan).
    ranges = [(None, timedelta(0), min(longest, TIERS[0])), *_tiers(longest)]
    for first in range(0, len(spans), _SPANS_PER_QUERY):
        group = spans[first:first + _SPANS_PER_QUERY]
        values = dict(place)
        for number, (start, end) in enumerate(group):
            values[f"start_{number}"] = start
            for r, (minutes, shortest, farthest) in enumerate(ranges):
                values.update({f"earliest_{r}_{number}": start - farthest,
                               f"latest_{r}_{number}": start - shortest if minutes else end})
        statement = _clashing_statement(dialect, len(group), bool(who.venue_id), tuple(r[0] for r in ranges))
        for row in session.execute(statement, values):
            others[row.id] = Other(*row[:len(_OTHER_FIELDS)])
            theirs.setdefault(row.id, set()).add((row.starts_at, row.ends_at))
    window_start = spans[0][0]
    beyond = [] if all_stored else session.scalars(select(Event).where(
        Event.status == "published", Event.id != who.id, _beyond_horizon(window_end),
        or_(func.lower(Event.city) == who.city.lower(), *([Event.venue_id == who.venue_id] if who.venue_id else [])),
        or_(Event.rrule.is_not(None), and_(Event.starts_at < window_end, Event.ends_at > window_start))))
    for other in beyond:
        others[other.id] = Other(other.id, other.title, other.organiser, other.city, other.venue_id,
                                 other.venue.name if other.venue else None)
        theirs.setdefault(other.id, set()).update(overlaps.event_spans(other, window_start, window_end))
    return {others[event_id]: sorted(found) for event_id, found in sorted(theirs.items()) if found}
