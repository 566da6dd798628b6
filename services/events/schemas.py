"""Wire shapes of the calendar (RPC and HTTP): one marshmallow schema per shape."""

from datetime import date, datetime

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from tansiq.contracts.events import EVENT_KINDS
from tansiq.contracts.fields import slug, text


class WallTime(fields.Field):
    """A local wall time ("2027-02-20T10:00", in the event's zone), an aware time, or a date."""

    default_error_messages = {"invalid": "expected an ISO date (2027-03-12) or date-time (2027-03-12T10:00)"}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, (datetime, date)):
            return value
        if not isinstance(value, str) or len(value) > 40:
            raise self.make_error("invalid")
        try:
            return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
        except ValueError:
            raise self.make_error("invalid") from None

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else value.isoformat()


class VenueSchema(Schema):
    id = fields.String(dump_only=True)
    name = text(200, min_length=1, required=True)
    city = text(100, min_length=1, required=True)
    address = text(500, load_default="")
    latitude = fields.Float(allow_none=True, load_default=None, validate=validate.Range(-90, 90))
    longitude = fields.Float(allow_none=True, load_default=None, validate=validate.Range(-180, 180))


class CreateEvent(Schema):
    """A new event. Times are wall times in `tz`; for all-day events `end` is the last day."""

    title = text(200, min_length=1, required=True)
    description = text(5000, load_default="")
    kind = fields.String(required=True, validate=validate.OneOf(EVENT_KINDS))
    organiser = slug(required=True)
    co_organisers = fields.List(slug(), load_default=list, validate=validate.Length(max=20))
    city = text(100, load_default="")
    venue_id = fields.String(allow_none=True, load_default=None)
    place = text(200, load_default="")  # free text, when the venue is not a registered one
    start = WallTime(required=True)
    end = WallTime(required=True)
    tz = text(64, load_default="Africa/Casablanca")
    all_day = fields.Boolean(load_default=False)
    rrule = text(500, allow_none=True, load_default=None)
    exdates = fields.List(WallTime(), load_default=list, validate=validate.Length(max=500))
    capacity = fields.Integer(allow_none=True, load_default=None, validate=validate.Range(min=1))
    visibility = fields.String(load_default="network", validate=validate.OneOf(("network", "public")))
    status = fields.String(load_default="draft", validate=validate.OneOf(("draft", "published")))


class UpdateEvent(CreateEvent):
    """Any CreateEvent field but the organiser; load with partial=True (absent = unchanged)."""

    class Meta:
        exclude = ("organiser",)

    status = fields.String(validate=validate.OneOf(("draft", "published", "postponed")))

    def load(self, data, *, partial=True, **kwargs):
        return super().load(data, partial=partial, **kwargs)


class MoveOccurrence(Schema):
    recurrence_id = WallTime(required=True)  # the occurrence's original start
    start = WallTime(required=True)
    end = WallTime(load_default=None, allow_none=True)


class CancelOccurrence(Schema):
    recurrence_id = WallTime(required=True)


class RegistrationSchema(Schema):
    id = fields.String(dump_only=True)
    event_id = fields.String(dump_only=True)
    kind = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(("participant", "stand")))
    association = slug(required=True)
    staff_id = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=64))
    name = text(200, min_length=1, required=True)
    products = fields.List(text(200), load_default=list, validate=validate.Length(max=50))
    created_at = fields.AwareDateTime(dump_only=True)


class MovedSchema(Schema):
    recurrence_id = fields.Method("_key")
    starts_at = fields.AwareDateTime()
    ends_at = fields.AwareDateTime()

    def _key(self, override):
        from services.events.domain import Timing, override_key

        return override_key(override, Timing.of(override.event))


class EventSchema(Schema):
    id = fields.String()
    uid = fields.String()
    title = fields.String()
    description = fields.String()
    kind = fields.String()
    organiser = fields.String()
    co_organisers = fields.List(fields.String())
    city = fields.String()
    venue = fields.Nested(VenueSchema, allow_none=True)
    place = fields.String()
    starts_at = fields.AwareDateTime()
    ends_at = fields.AwareDateTime()
    start_local = fields.Method("_start_local")
    end_local = fields.Method("_end_local")
    tz = fields.String()
    all_day = fields.Boolean()
    rrule = fields.String(allow_none=True)
    exdates = fields.List(fields.String())
    moved = fields.List(fields.Nested(MovedSchema), attribute="overrides")
    capacity = fields.Integer(allow_none=True)
    registered = fields.Function(lambda event: len(event.registrations))
    registrations = fields.List(fields.Nested(RegistrationSchema))
    visibility = fields.String()
    status = fields.String()
    sequence = fields.Integer()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()

    def _start_local(self, event):
        from services.events.domain import zone

        local = event.starts_at.astimezone(zone(event.tz))
        return local.date().isoformat() if event.all_day else local.isoformat()

    def _end_local(self, event):
        from services.events.domain import zone

        local = event.ends_at.astimezone(zone(event.tz))
        return local.date().isoformat() if event.all_day else local.isoformat()


class OccurrenceSchema(Schema):
    event_id = fields.String()
    occurrence_id = fields.String()
    recurrence_id = fields.String(allow_none=True)
    title = fields.String()
    description = fields.String()
    kind = fields.String()
    city = fields.String()
    organiser = fields.String()
    co_organisers = fields.List(fields.String())
    venue = fields.Dict(allow_none=True)
    start = fields.AwareDateTime()
    end = fields.AwareDateTime()
    start_local = fields.String()  # ISO with the offset in force then, or a date for all-day events
    end_local = fields.String()    # exclusive for all-day events (like iCalendar DTEND)
    tz = fields.String()
    all_day = fields.Boolean()
    status = fields.String()
    visibility = fields.String()
    sequence = fields.Integer()
    moved = fields.Boolean()
    recurring = fields.Boolean()
    capacity = fields.Integer(allow_none=True)
    registered = fields.Integer()


class Window(Schema):
    """Query of the occurrence listing: a UTC window and optional filters."""

    start = fields.AwareDateTime(required=True)
    end = fields.AwareDateTime(required=True)
    city = text(100, load_default=None, allow_none=True)
    kind = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(EVENT_KINDS))
    association = slug(load_default=None, allow_none=True)


class PagedWindow(Window):
    """The listing's window, and where a page starts (the `next` of the page before) and its size."""

    cursor = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))
    limit = fields.Integer(load_default=200, validate=validate.Range(min=1, max=2000))  # occurrences.PAGE_SIZE


class FeedWindow(Schema):
    """?from=&to= of a feed (dates or aware date-times); absent: the default window."""

    start = fields.AwareDateTime(load_default=None, allow_none=True)
    end = fields.AwareDateTime(load_default=None, allow_none=True)
    if_modified_since = fields.AwareDateTime(load_default=None, allow_none=True)


class OccurrencePageSchema(Schema):
    """One page of occurrences: `next` is the cursor of the following page, null on the last one,
    and `truncated` is always false: what a window holds is never cut without a `next`."""

    items = fields.List(fields.Nested(OccurrenceSchema))
    next = fields.String(allow_none=True)
    truncated = fields.Constant(False)


def load_window(data, schema=Window):
    """Window from query strings: dates (2027-03-01) or aware date-times are both accepted."""
    normalised = dict(data)
    for key in ("start", "end"):
        value = normalised.get(key)
        if isinstance(value, str) and len(value) == 10:
            normalised[key] = f"{value}T00:00:00+00:00"
    for key in ("city", "kind", "association"):
        if normalised.get(key) == "":
            normalised[key] = None
    return schema().load(normalised)


IMPORT_MAX_BYTES = 10 * 1024 * 1024  # imports.MAX_BYTES: an .ics sent in the body, at most


class ImportRequest(Schema):
    """Import an association's existing calendar: its http(s) URL (a Google or Outlook address it
    already keeps) or the text of an .ics file, exactly one of the two."""

    association = slug(required=True)
    url = fields.Url(schemes={"http", "https"}, load_default=None, allow_none=True,
                     validate=validate.Length(max=2000))
    ics = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=IMPORT_MAX_BYTES))
    name = text(200, load_default="calendar.ics")  # the file's name, shown in the job

    @validates_schema
    def _one_source(self, data, **kwargs):
        if bool(data.get("url")) == bool(data.get("ics")):
            raise ValidationError("give the calendar's url or its ics text (one of them)", "_schema")


class ImportJobSchema(Schema):
    """An import's progress and report: `errors` are the first malformed or refused VEVENTs, each
    with its line in the source; `status` queued, running, done or failed (then `message`)."""

    id = fields.String()
    association = fields.String()
    source = fields.String()
    status = fields.String(validate=validate.OneOf(("queued", "running", "done", "failed")))
    total = fields.Integer(allow_none=True)
    processed = fields.Integer()
    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()
    skipped = fields.Integer()
    error_count = fields.Integer()
    errors = fields.List(fields.Dict())
    message = fields.String()
    created_at = fields.String(allow_none=True)
    started_at = fields.String(allow_none=True)
    finished_at = fields.String(allow_none=True)


class SearchQuery(Schema):
    """The calendar's search: words of the title, a city, a range of dates (each optional)."""

    words = text(200, load_default=None, allow_none=True)
    city = text(100, load_default=None, allow_none=True)
    start = fields.AwareDateTime(load_default=None, allow_none=True)
    end = fields.AwareDateTime(load_default=None, allow_none=True)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))


class SearchResultSchema(Schema):
    """One event found, at the first of its occurrences in the range (`first_local`: in its own zone)."""

    event_id = fields.Function(lambda found: found["event"].id)
    title = fields.Function(lambda found: found["event"].title)
    kind = fields.Function(lambda found: found["event"].kind)
    city = fields.Function(lambda found: found["event"].city)
    organiser = fields.Function(lambda found: found["event"].organiser)
    status = fields.Function(lambda found: found["event"].status)
    visibility = fields.Function(lambda found: found["event"].visibility)
    tz = fields.Function(lambda found: found["event"].tz)
    all_day = fields.Function(lambda found: found["event"].all_day)
    recurring = fields.Function(lambda found: bool(found["event"].rrule))
    first = fields.AwareDateTime()
    first_local = fields.Method("_first_local")

    def _first_local(self, found):
        from services.events.domain import zone

        local = found["first"].astimezone(zone(found["event"].tz))
        return local.date().isoformat() if found["event"].all_day else local.isoformat()
