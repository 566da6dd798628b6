"""Registrations (participants, artisans' stands) and the reminders sent to registered staff."""

import uuid

from sqlalchemy import and_, or_, select

from services.events.listing import occurrences_of
from services.events.models import Event, Registration, ReminderSent
from services.events.overlaps import SOURCE
from services.events.validation import exists_check
from tansiq import contracts
from tansiq.errors import Conflict, DomainError, Forbidden, NotFound
from tansiq.messaging import outbox

STAND_KINDS = {"exhibition", "fair", "festival"}
PARTICIPANT_KINDS = {"training", "meeting", "campaign", "festival"}


def register(session, now, event_id, *, association, name, kind=None, staff_id=None, products=(),
             known_associations=()):
    """Register a participant or an artisan's stand; refused past capacity or when not open."""
    # Lock the event row so two registrations cannot both take the last place (PostgreSQL;
    # SQLite has a single writer anyway). Only the row: FOR UPDATE refuses the venue outer join.
    locked = session.scalar(select(Event.id).where(Event.id == event_id).with_for_update())
    event = session.get(Event, event_id) if locked else None
    if event is None:
        raise NotFound(f"no event {event_id!r}", code="unknown_event")
    if event.status not in ("published", "postponed"):
        raise Conflict(f"registrations are closed: the event is {event.status}", code="registration_closed")
    kind = kind or ("stand" if event.kind in ("exhibition", "fair") else "participant")
    allowed = STAND_KINDS if kind == "stand" else PARTICIPANT_KINDS if kind == "participant" else set()
    if event.kind not in allowed:
        raise DomainError(f"a {event.kind} does not take {kind} registrations", code="invalid_registration")
    products = [p.strip() for p in products or () if p and p.strip()]
    if kind == "stand" and not products:
        raise DomainError("a stand lists at least one product", code="invalid_registration")
    if not (name or "").strip():
        raise DomainError("a registration needs a name", code="invalid_registration")
    if not exists_check(known_associations)(association):
        raise NotFound(f"unknown association {association!r}", code="unknown_association")
    for existing in event.registrations:
        if (staff_id and existing.staff_id == staff_id) or (
                existing.kind == kind and existing.association == association and existing.name == name.strip()):
            raise Conflict("already registered", code="already_registered", details={"registration_id": existing.id})
    if event.capacity is not None and len(event.registrations) >= event.capacity:
        raise Conflict(f"the event is full ({event.capacity} places)", code="event_full")
    registration = Registration(id=str(uuid.uuid4()), kind=kind, association=association, staff_id=staff_id,
                                name=name.strip(), products=products, created_at=now)
    event.registrations.append(registration)
    session.flush()
    return registration


def due_reminders(session, now, horizon):
    """Emit `reminder_due` once per occurrence starting within `horizon` that has registered staff."""
    window_end = now + horizon
    events = session.scalars(select(Event).where(
        Event.status == "published",
        Event.registrations.any(Registration.staff_id.is_not(None)),
        or_(Event.rrule.is_not(None), and_(Event.starts_at < window_end, Event.starts_at >= now))))
    sent = []
    for event in events:
        staff_ids = sorted({r.staff_id for r in event.registrations if r.staff_id})
        for occurrence in occurrences_of(event, now, window_end):
            if occurrence.start < now:
                continue  # already under way: too late to remind
            done = session.scalar(select(ReminderSent.id).where(ReminderSent.event_id == event.id,
                                                                ReminderSent.occurrence_start == occurrence.start))
            if done is not None:
                continue
            session.add(ReminderSent(event_id=event.id, occurrence_start=occurrence.start, sent_at=now))
            sent.append(outbox.add(session, contracts.make("ma.tansiq.event.reminder_due.v1", SOURCE, {
                "event_id": event.id, "title": event.title, "starts_at": occurrence.start.isoformat(),
                "staff_ids": staff_ids})))
    session.flush()
    return sent


def check_registrant(actor, association):
    """The staff id the registration is recorded under: the actor's own, never one the client names."""
    if actor is None or actor.association != association:
        raise Forbidden("staff register for their own association")
    return actor.id

