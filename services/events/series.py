"""An event's life: created, changed, cancelled, and one occurrence of a series moved or cancelled.

Every function takes a SQLAlchemy Session and `now` (aware UTC) and never reads the clock.
Each change writes its message into the outbox in the caller's transaction and rewrites the
event's stored occurrences (occurrences.store) in the same unit of work; all validation
happens before anything is added to the session.
"""

import uuid
from datetime import timedelta

from sqlalchemy.orm import make_transient_to_detached

from services.events import occurrences as stored
from services.events.models import Event, Override, Venue
from services.events.overlaps import Who, check_overlaps
from services.events.timing import Timing, as_datetime, local_input, local_to_utc, override_key, zone
from services.events.validation import validate
from tansiq import contracts
from tansiq.db import insert_many
from tansiq.errors import Conflict, DomainError, Forbidden, NotFound
from tansiq.messaging import outbox

TRANSITIONS = {
    "draft": {"draft", "published", "cancelled"},
    "published": {"published", "postponed", "cancelled"},
    "postponed": {"postponed", "published", "cancelled"},
    "cancelled": set(),
}
# RFC 5545 5.2.1-ish: what attendees must be told about (SEQUENCE goes up).
SIGNIFICANT = ("title", "kind", "city", "venue_id", "starts_at", "ends_at", "tz", "all_day", "rrule", "exdates",
               "status")


def create_event(session, now, spec, known_associations, force=False):
    """A new event from `spec` (see schemas.CreateEvent). Returns (event, warnings)."""
    values, timing, _, warnings = validate(session, spec, known_associations)
    event = _new_event(now, values, str(uuid.uuid4()))
    if event.venue_id:
        event.venue = session.get(Venue, event.venue_id)  # validation read it: no query
    # The checks read before the event joins the session, and everything derived from it is set
    # before it does: one INSERT of the event, one of its messages, one of its occurrences.
    if event.status == "published":
        warnings += check_overlaps(session, Who(event.id, event.organiser, event.city, event.venue_id), timing,
                                    set(event.exdates), [], force)
    rows = stored.prepare(event, now)
    # A Core INSERT, as load_events stores events, then the object joins the session as the stored row
    # it now is: no ORM flush, and later changes in this session still reach it.
    insert_many(session, Event, [_event_row(event)])
    make_transient_to_detached(event)
    session.add(event)
    if event.status == "published":
        _emit(session, "ma.tansiq.event.published.v1", event)
    stored.insert_rows(session, rows)
    return event, warnings


def load_events(connection, now, specs, known_associations, new_id=None):
    """Store the events of `specs` as create_event stores them (validated; their occurrences, span
    and VEVENT text made by the same functions) in one INSERT of events and one of occurrences,
    without overlap checks or messages: how a big calendar is loaded at once (the benchmark, the
    scale test). `connection`: a Connection or Session; `new_id()`: the events' ids (uuid4 if
    None). Returns the events, which are not added to any session."""
    events, rows = [], []
    for spec in specs:
        values, _, _, _ = validate(None, spec, known_associations)
        event = _new_event(now, values, new_id() if new_id else str(uuid.uuid4()))
        rows += stored.prepare(event, now)
        events.append(event)
    insert_many(connection, Event, [_event_row(event) for event in events])
    stored.insert_rows(connection, rows)
    return events


_EVENT_COLUMNS = [column.key for column in Event.__table__.columns]


def _event_row(event):
    return {column: getattr(event, column) for column in _EVENT_COLUMNS}


def _new_event(now, values, event_id):
    if values["status"] not in ("draft", "published"):
        raise DomainError("a new event is a draft or published", code="invalid_transition")
    # Its collections start empty and known: answering the create reads them without a query.
    return Event(id=event_id, uid=f"{event_id}@tansiq.ma", sequence=0, created_at=now, updated_at=now,
                 overrides=[], registrations=[], **values)


def get_event(session, event_id):
    event = session.get(Event, event_id)
    if event is None:
        raise NotFound(f"no event {event_id!r}", code="unknown_event")
    return event


def update_event(session, now, event_id, changes, known_associations, force=False):
    """Change an event (any CreateEvent field but the organiser). Returns (event, warnings)."""
    event = get_event(session, event_id)
    if event.status == "cancelled":
        raise Conflict("a cancelled event cannot be changed", code="invalid_transition")
    if "organiser" in changes and changes["organiser"] != event.organiser:
        raise DomainError("the organiser of an event cannot change", code="invalid_event")
    old = Timing.of(event)
    spec = {**spec_of(event), **changes}
    carried = (old, [] if "exdates" in changes else list(event.exdates or []),
               [(override_key(o, old), o.starts_at, o.ends_at) for o in event.overrides])
    values, timing, overrides, warnings = validate(session, spec, known_associations, carried)
    if values["status"] not in TRANSITIONS[event.status]:
        raise Conflict(f"an event cannot go from {event.status} to {values['status']}", code="invalid_transition")
    if values["status"] == "cancelled":
        raise DomainError("use cancel_event to cancel", code="invalid_transition")
    before = {name: getattr(event, name) for name in values}
    old_overrides = sorted(carried[2])
    significant = (any(values[name] != before[name] for name in SIGNIFICANT)
                   or sorted(overrides) != old_overrides)
    changed = significant or any(values[name] != before[name] for name in values)
    if values["status"] == "published" and (significant or event.status != "published"):
        warnings += check_overlaps(session, Who(event.id, values["organiser"], values["city"], values["venue_id"]),
                                    timing, set(values["exdates"]), overrides, force)
    was_draft = event.status == "draft"
    for name, value in values.items():
        setattr(event, name, value)
    if sorted(overrides) != old_overrides:
        replace_overrides(session, event, overrides, timing)
    if significant and not was_draft:
        event.sequence += 1
    event.updated_at = now
    session.flush()
    stored.store(session, event, now)
    if was_draft and event.status == "published":
        _emit(session, "ma.tansiq.event.published.v1", event)
    elif not was_draft and changed:
        _emit(session, "ma.tansiq.event.updated.v1", event)
    return event, warnings


def cancel_event(session, now, event_id):
    event = get_event(session, event_id)
    if event.status == "cancelled":
        return event  # cancelling twice changes nothing
    was_draft = event.status == "draft"
    event.status = "cancelled"
    if not was_draft:
        event.sequence += 1
    event.updated_at = now
    session.flush()
    stored.store(session, event, now)
    if not was_draft:
        _emit(session, "ma.tansiq.event.cancelled.v1", event)
    return event


def move_occurrence(session, now, event_id, recurrence_id, start, end=None, force=False):
    """Move one occurrence of a recurring event (iCalendar RECURRENCE-ID). Returns (event, warnings)."""
    event = _changeable_series(session, event_id)
    timing = Timing.of(event)
    original = local_input(recurrence_id, timing, "recurrence_id")
    key = timing.key(original)
    if not timing.is_occurrence(original) or key in event.exdates:
        raise NotFound(f"{recurrence_id} is not an occurrence of the event", code="unknown_occurrence")
    if timing.all_day:
        new_start = timing.to_utc(local_input(start, timing, "start"))
        new_end = timing.to_utc(local_input(end, timing, "end") + timedelta(days=1)) if end else (
            new_start + (timing.ends_at - timing.starts_at))
    else:
        new_start = local_to_utc(as_datetime(start, "start"), timing.tz)
        new_end = local_to_utc(as_datetime(end, "end"), timing.tz) if end else timing.end_of(
            new_start.astimezone(timing.tz))
    if new_end <= new_start:
        raise DomainError("the end must be after the start", code="end_before_start")
    warnings = []
    if event.status == "published":
        moved = Timing(new_start, new_end, timing.tz, timing.all_day)
        warnings = check_overlaps(session, Who(event.id, event.organiser, event.city, event.venue_id), moved,
                                   set(), [], force)
    existing = {override_key(o, timing): o for o in event.overrides}
    if key in existing:
        existing[key].starts_at, existing[key].ends_at = new_start, new_end
    else:
        event.overrides.append(Override(recurrence_id=timing.to_utc(original), starts_at=new_start, ends_at=new_end))
    _touch(session, now, event)
    return event, warnings


def cancel_occurrence(session, now, event_id, recurrence_id):
    """Cancel one occurrence of a recurring event: it becomes an EXDATE (and loses any move)."""
    event = _changeable_series(session, event_id)
    timing = Timing.of(event)
    original = local_input(recurrence_id, timing, "recurrence_id")
    if not timing.is_occurrence(original):
        raise NotFound(f"{recurrence_id} is not an occurrence of the event", code="unknown_occurrence")
    key = timing.key(original)
    if key in event.exdates:
        return event
    event.exdates = sorted({*event.exdates, key})
    for override in list(event.overrides):
        if override_key(override, timing) == key:
            event.overrides.remove(override)
    _touch(session, now, event)
    return event


def _changeable_series(session, event_id):
    event = get_event(session, event_id)
    if event.status == "cancelled":
        raise Conflict("a cancelled event cannot be changed", code="invalid_transition")
    if not event.rrule:
        raise DomainError("only a recurring event has occurrences to move or cancel; change the event itself",
                          code="not_recurring")
    return event


def _touch(session, now, event):
    if event.status != "draft":
        event.sequence += 1
    event.updated_at = now
    session.flush()
    stored.store(session, event, now)
    if event.status != "draft":
        _emit(session, "ma.tansiq.event.updated.v1", event)


def replace_overrides(session, event, overrides, timing):
    wanted = {key: (start, end) for key, start, end in overrides}
    for override in list(event.overrides):
        event.overrides.remove(override)
    session.flush()
    for key, (start, end) in sorted(wanted.items()):
        event.overrides.append(Override(recurrence_id=timing.to_utc(timing.local_of_key(key)),
                                        starts_at=start, ends_at=end))


def spec_of(event):
    """An existing event as a CreateEvent spec in its own local wall time."""
    tz = zone(event.tz)
    start = event.starts_at.astimezone(tz).replace(tzinfo=None)
    end = event.ends_at.astimezone(tz).replace(tzinfo=None)
    if event.all_day:
        start, end = start.date(), (end - timedelta(days=1)).date()
    return {"title": event.title, "description": event.description, "kind": event.kind,
            "organiser": event.organiser, "co_organisers": list(event.co_organisers or []), "city": event.city,
            "venue_id": event.venue_id, "place": event.place, "start": start, "end": end, "tz": event.tz,
            "all_day": event.all_day,
            "rrule": event.rrule, "capacity": event.capacity, "visibility": event.visibility,
            "status": event.status}

def event_data(event):
    """The event as the `ma.tansiq.event.*` contracts carry it."""
    timing = Timing.of(event)
    return {
        "event_id": event.id, "organiser": event.organiser, "co_organisers": list(event.co_organisers or []),
        "title": event.title, "kind": event.kind, "city": event.city,
        "venue": event.venue.name if event.venue else event.place,
        "starts_at": event.starts_at.isoformat(), "ends_at": event.ends_at.isoformat(), "tz": event.tz,
        "all_day": event.all_day, "rrule": event.rrule, "sequence": event.sequence, "status": event.status,
        "visibility": event.visibility, "exdates": list(event.exdates or []),
        "moved": [{"recurrence_id": override_key(o, timing), "starts_at": o.starts_at.isoformat(),
                   "ends_at": o.ends_at.isoformat()} for o in event.overrides],
    }


def _emit(session, type_, event):
    outbox.add(session, contracts.make(type_, event.organiser, event_data(event)))


# --- who may change what ----------------------------------------------------------------------

def check_editor(actor, organiser, co_organisers=()):
    """Staff may change an event of their own association (organiser or co-organiser) if their
    role allows it (tansiq.contracts.actor MATRIX). There is no trusted caller without an actor."""
    if actor is None:
        raise Forbidden("only signed-in staff change the calendar")
    actor.require("calendar.edit")
    if actor.association not in {organiser, *(co_organisers or ())}:
        raise Forbidden("only the organising associations may change this event")

