"""Events published by partner systems (ma.tansiq.event.* on their own queues), applied as ours."""

from datetime import timedelta

from sqlalchemy import select

from services.events import occurrences as stored
from services.events.models import Event
from services.events.series import cancel_event, create_event, replace_overrides, update_event
from services.events.timing import Timing, local_input, zone
from tansiq.errors import DomainError, Forbidden, NotFound


def partner_uid(source, event_id):
    return f"{event_id}@{source}.partner.tansiq.ma"


def apply_partner_event(session, now, envelope, known_associations):
    """Create, update or cancel the event a partner system describes in a validated
    `ma.tansiq.event.published|updated|cancelled.v1` envelope. Returns (event, warnings).

    A partner speaks only for its own events (source == organiser). A message older than
    what is stored (lower SEQUENCE) changes nothing, so out-of-order deliveries are harmless;
    the caller deduplicates redeliveries with its inbox.
    """
    data = envelope.data
    if data["organiser"] != envelope.source:
        raise Forbidden(f"{envelope.source} may only publish its own events", code="not_allowed")
    uid = partner_uid(envelope.source, data["event_id"])
    event = session.scalar(select(Event).where(Event.uid == uid))
    if event is not None and data["sequence"] < event.sequence:
        return event, [{"code": "stale", "message": f"sequence {data['sequence']} < {event.sequence}"}]
    if data["status"] == "cancelled" or envelope.type.endswith(".cancelled.v1"):
        if event is None:
            raise NotFound(f"no event {data['event_id']!r} from {envelope.source}", code="unknown_event")
        return cancel_event(session, now, event.id), []
    tz = zone(data["tz"])
    end = data["ends_at"]
    if data["all_day"]:
        end = end.astimezone(tz) - timedelta(days=1)  # the contract's end is exclusive, a spec's last day is not
    spec = {"title": data["title"], "kind": data["kind"], "organiser": data["organiser"],
            "co_organisers": data["co_organisers"], "city": data["city"], "place": data["venue"],
            "start": data["starts_at"], "end": end, "tz": data["tz"], "all_day": data["all_day"],
            "rrule": data["rrule"], "exdates": data["exdates"], "visibility": data["visibility"],
            "status": data["status"]}
    if event is None:
        if spec["status"] == "postponed":
            spec["status"] = "published"  # first heard of already postponed: create, then postpone below
        event, warnings = create_event(session, now, spec, known_associations)
        event.uid = uid
        if data["status"] == "postponed":
            event, more = update_event(session, now, event.id, {"status": "postponed"}, known_associations)
            warnings += more
    else:
        changes = {key: value for key, value in spec.items() if key != "organiser"}
        event, warnings = update_event(session, now, event.id, changes, known_associations)
    set_moves(session, event, data.get("moved") or [])
    event.sequence = max(event.sequence, data["sequence"])
    session.flush()
    stored.store(session, event, now)
    return event, warnings


def set_moves(session, event, moved):
    if not moved:
        return
    timing = Timing.of(event)
    overrides = []
    for move in moved:
        original = local_input(move["recurrence_id"], timing, "recurrence_id")
        if not timing.is_occurrence(original):
            raise DomainError(f"moved occurrence {move['recurrence_id']} is not an occurrence", code="invalid_exdate")
        overrides.append((timing.key(original), move["starts_at"], move["ends_at"]))
    replace_overrides(session, event, overrides, timing)
