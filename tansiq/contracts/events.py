"""Calendar messages: exhibitions, festivals, fairs, trainings, campaigns, meetings."""

from marshmallow import fields, validate

from tansiq.contracts import ContractSchema, contract
from tansiq.contracts.fields import boolean, bounded_list, identifier, integer, moment, slug, text

EVENT_KINDS = ("exhibition", "festival", "fair", "training", "campaign", "meeting")


class MovedOccurrence(ContractSchema):
    """One occurrence of a recurring event moved in time (iCalendar RECURRENCE-ID)."""

    recurrence_id = text(40, required=True)  # original start: UTC ISO date-time, or ISO date if all-day
    starts_at = moment(required=True)
    ends_at = moment(required=True)


@contract(
    "ma.tansiq.event.published.v1",
    "ma.tansiq.event.updated.v1",
    "ma.tansiq.event.cancelled.v1",
    summary="A calendar event was published, changed or cancelled (times in UTC plus their IANA zone).",
    partners="both",
    example={"event_id": "e-3", "organiser": "amal-safi", "title": "Salon de l'artisanat", "kind": "exhibition",
             "city": "Safi", "starts_at": "2027-03-12T09:00:00+00:00", "ends_at": "2027-03-14T18:00:00+00:00",
             "tz": "Africa/Casablanca", "all_day": False, "rrule": None, "sequence": 0, "status": "published"},
)
class EventChanged(ContractSchema):
    event_id = identifier(required=True)
    organiser = slug(required=True)
    co_organisers = bounded_list(slug(), 20, load_default=list)
    title = text(200, required=True)
    kind = fields.String(required=True, validate=validate.OneOf(EVENT_KINDS))
    city = text(100, required=True)
    venue = text(200, load_default="")
    starts_at = moment(required=True)
    ends_at = moment(required=True)
    tz = text(64, load_default="Africa/Casablanca")
    all_day = boolean(load_default=False)
    rrule = text(500, allow_none=True, load_default=None)
    sequence = integer(0, 2**31 - 1, load_default=0)
    status = fields.String(load_default="published",
                           validate=validate.OneOf(("draft", "published", "postponed", "cancelled")))
    visibility = fields.String(load_default="network", validate=validate.OneOf(("network", "public")))
    # Optional (added within v1): occurrences that do not happen, and occurrences moved in time.
    exdates = bounded_list(text(40), 500, load_default=list)
    moved = bounded_list(fields.Nested(MovedOccurrence), 500, load_default=list)


@contract(
    "ma.tansiq.event.overlap_detected.v1",
    summary="Two published events in the same city overlap in time; both organisers are told. No longer "
            "sent (v2 tells every overlap of a change at once); still understood, for messages already queued.",
    example={"event_id": "e-3", "other_event_id": "e-5", "city": "Safi", "organisers": ["amal-safi", "nour-safi"]},
)
class EventOverlap(ContractSchema):
    event_id = identifier(required=True)
    other_event_id = identifier(required=True)
    city = text(100, required=True)
    organisers = bounded_list(slug(), 20, required=True)


OTHERS_PER_OVERLAP_MESSAGE = 100  # a change overlapping more events is told in several messages


@contract(
    "ma.tansiq.event.overlap_detected.v2",
    summary="A published event overlaps others in the same city: one message for the change (up to "
            f"{OTHERS_PER_OVERLAP_MESSAGE} other events each), so every organiser is told once, not once per "
            "pair as in v1.",
    example={"event_id": "e-3", "other_event_ids": ["e-5", "e-8"], "city": "Safi",
             "organisers": ["amal-safi", "nour-safi"]},
)
class EventOverlaps(ContractSchema):
    event_id = identifier(required=True)
    other_event_ids = bounded_list(identifier(), OTHERS_PER_OVERLAP_MESSAGE, required=True)
    city = text(100, required=True)
    organisers = bounded_list(slug(), OTHERS_PER_OVERLAP_MESSAGE + 1, required=True)


@contract(
    "ma.tansiq.event.reminder_due.v1",
    summary="An event registered staff take part in starts soon.",
    example={"event_id": "e-3", "title": "Formation couture", "starts_at": "2027-03-12T09:00:00+00:00",
             "staff_ids": ["s-1"]},
)
class EventReminder(ContractSchema):
    event_id = identifier(required=True)
    title = text(200, required=True)
    starts_at = moment(required=True)
    staff_ids = bounded_list(identifier(), 1000, required=True)
