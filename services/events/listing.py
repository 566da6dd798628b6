"""Occurrences as listings show them: expanded from an event, or read a page at a time."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.events import occurrences as stored
from services.events import recurrence
from services.events.timing import MAX_OCCURRENCES, Timing, override_key
from services.events.validation import VISIBILITIES
from services.events.venues import venue_dict
from tansiq.errors import DomainError

MAX_WINDOW = timedelta(days=400)  # longest listing window (a year view plus margins)


@dataclass
class Occurrence:
    event_id: str
    occurrence_id: str
    recurrence_id: str | None
    title: str
    kind: str
    city: str
    organiser: str
    co_organisers: list
    venue: dict | None
    start: datetime
    end: datetime
    start_local: str
    end_local: str
    tz: str
    all_day: bool
    status: str
    visibility: str
    sequence: int
    moved: bool = False
    recurring: bool = False
    description: str = ""
    capacity: int | None = None
    registered: int = 0


def occurrences_of(event, window_start, window_end):
    """Every occurrence of `event` intersecting [window_start, window_end), expanded in its zone."""
    recurrence.cooperate()  # listings walk many events: let heartbeats and other requests through
    timing = Timing.of(event)
    moved = {override_key(o, timing): o for o in event.overrides}
    exdates = set(event.exdates or [])
    found = []

    def add(key, start, end, is_moved):
        if end <= window_start or start >= window_end:
            return
        found.append(make_occurrence(event, timing, key, start, end, is_moved))

    for local in timing.starts_between(window_start, window_end):
        key = timing.key(local)
        if key not in exdates and key not in moved:
            add(key, timing.to_utc(local), timing.end_of(local), False)
    for key, override in moved.items():
        if key not in exdates:
            add(key, override.starts_at, override.ends_at, True)
    return sorted(found, key=lambda o: o.start)


def make_occurrence(event, timing, key, start, end, is_moved):
    """One occurrence of `event` (original start `key`, see Timing.key) as listings show it."""
    return occurrence(event, timing.tz, key, start, end, is_moved, venue_dict(event.venue, event.place),
                      len(event.registrations))


def occurrence(facts, tz, key, start, end, is_moved, venue, registered, co_organisers=None):
    """An occurrence from `facts`: an Event, or a row of a listing's query with the same names
    (`co_organisers` given apart, read from its text)."""
    local_start, local_end = start.astimezone(tz), end.astimezone(tz)
    if facts.all_day:
        start_local, end_local = local_start.date().isoformat(), local_end.date().isoformat()
    else:
        start_local, end_local = local_start.isoformat(), local_end.isoformat()
    return Occurrence(
        event_id=facts.id, occurrence_id=f"{facts.id}/{key}" if facts.rrule else facts.id,
        recurrence_id=key if facts.rrule else None, title=facts.title, kind=facts.kind, city=facts.city,
        organiser=facts.organiser,
        co_organisers=list(facts.co_organisers or []) if co_organisers is None else co_organisers,
        venue=venue, start=start, end=end, start_local=start_local, end_local=end_local,
        tz=facts.tz, all_day=facts.all_day, status=facts.status, visibility=facts.visibility,
        sequence=facts.sequence, moved=is_moved, recurring=bool(facts.rrule), description=facts.description,
        capacity=facts.capacity, registered=registered)


def as_json(occurrence):
    """What schemas.OccurrenceSchema dumps, written directly: a listing page is on the hot path
    (500 occurrences through marshmallow cost more than reading them; a test keeps the two equal)."""
    return {"event_id": occurrence.event_id, "occurrence_id": occurrence.occurrence_id,
            "recurrence_id": occurrence.recurrence_id, "title": occurrence.title,
            "description": occurrence.description, "kind": occurrence.kind, "city": occurrence.city,
            "organiser": occurrence.organiser, "co_organisers": list(occurrence.co_organisers),
            "venue": occurrence.venue, "start": occurrence.start.isoformat(), "end": occurrence.end.isoformat(),
            "start_local": occurrence.start_local, "end_local": occurrence.end_local, "tz": occurrence.tz,
            "all_day": occurrence.all_day, "status": occurrence.status, "visibility": occurrence.visibility,
            "sequence": occurrence.sequence, "moved": occurrence.moved, "recurring": occurrence.recurring,
            "capacity": occurrence.capacity, "registered": occurrence.registered}


def list_occurrences(session, window_start, window_end, city=None, kind=None, association=None,
                     visibilities=VISIBILITIES, include_drafts=False):
    """Every occurrence of events in a window (see occurrences.page), sorted by start and title;
    refused rather than cut when there are more than MAX_OCCURRENCES: ask page by page."""
    page = stored.page(session, window_start, window_end, city=city, kind=kind, association=association,
                       visibilities=visibilities, include_drafts=include_drafts, limit=MAX_OCCURRENCES)
    if page.next is not None:
        raise DomainError(f"more than {MAX_OCCURRENCES} occurrences in this window: ask page by page (cursor)",
                          code="too_many_occurrences")
    return page.items

