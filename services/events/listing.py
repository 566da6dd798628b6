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
    local_start, local_end = start.astimezone(timing.tz), end.astimezone(timing.tz)
    if timing.all_day:
        start_local, end_local = local_start.date().isoformat(), local_end.date().isoformat()
    else:
        start_local, end_local = local_start.isoformat(), local_end.isoformat()
    return Occurrence(
        event_id=event.id, occurrence_id=f"{event.id}/{key}" if event.rrule else event.id,
        recurrence_id=key if event.rrule else None, title=event.title, kind=event.kind, city=event.city,
        organiser=event.organiser, co_organisers=list(event.co_organisers or []),
        venue=venue_dict(event.venue, event.place), start=start, end=end, start_local=start_local, end_local=end_local,
        tz=event.tz, all_day=event.all_day, status=event.status, visibility=event.visibility,
        sequence=event.sequence, moved=is_moved, recurring=bool(event.rrule), description=event.description,
        capacity=event.capacity, registered=len(event.registrations))


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

