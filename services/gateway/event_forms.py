"""The calendar's HTML forms <-> the events API's JSON bodies (CreateEvent, UpdateEvent, MoveOccurrence…).

Pages post plain forms (they work without JavaScript): dates and times in separate inputs, the
recurrence as a few simple fields (frequency, interval, until or count, weekdays), skipped dates one
per line. This module turns them into the JSON the events service takes, and an event back into the
form's values for editing; it names each problem after the form field that shows it.

Each form is also a marshmallow schema (EventForm, NewEventForm, MoveForm, RegistrationForm,
OccurrenceForm) given as its route's `body` (services.gateway.routes): the declaration loads and
converts the posted form before the handler runs, and a problem comes back as the handler's `errors`
({form field: code}), each code the catalogue key that says it (form.*, event.error.*) or a field code.
"""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from marshmallow import EXCLUDE, INCLUDE, Schema, ValidationError, fields, post_load
from werkzeug.datastructures import MultiDict

from services.events.schemas import CancelOccurrence, CreateEvent, MoveOccurrence, RegistrationSchema, UpdateEvent

FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY")
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# Zones offered in the form (the events service takes any IANA name): Morocco first, then where partners
# and guests most often are.
ZONES = ("Africa/Casablanca", "Europe/Paris", "Europe/Madrid", "Europe/Brussels", "Europe/London", "UTC",
         "Africa/Tunis", "Africa/Algiers", "America/Montreal")
DEFAULT_ZONE = ZONES[0]
MAX_SKIPPED = 100

# A domain error code -> the form field it is shown at ("_form": above the form).
FIELD_OF_CODE = {
    "invalid_rrule": "freq", "invalid_exdate": "exdates", "end_before_start": "end_date", "invalid_time": "start_date",
    "unknown_zone": "tz", "unknown_venue": "venue_id", "venue_conflict": "venue_id", "invalid_venue": "venue_id",
    "unknown_occurrence": "recurrence_id", "already_registered": "name", "event_full": "_form",
    "registration_closed": "_form", "invalid_registration": "products", "invalid_event": "_form",
    "invalid_transition": "status",
}
# A schema field -> the form field it is shown at.
FIELD_OF_KEY = {"start": "start_date", "end": "end_date", "rrule": "freq", "recurrence_id": "recurrence_id"}


class FormErrors(Exception):
    """Problems with a posted form: {form field: [message or i18n key]}."""

    def __init__(self, errors):
        super().__init__(errors)
        self.errors = errors


def _text(form, name):
    return (form.get(name) or "").strip()


def _int(form, name, errors, minimum=1):
    value = _text(form, name)
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < minimum:
        errors.setdefault(name, []).append("form.whole_number")
        return None
    return number


def _date(form, name, errors, required=True):
    value = _text(form, name)
    if not value:
        if required:
            errors.setdefault(name, []).append("form.required")
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors.setdefault(name, []).append("form.invalid_date")
        return None


def _time(form, name, errors):
    value = _text(form, name)
    if not value:
        errors.setdefault(name, []).append("form.required")
        return None
    try:
        return datetime.strptime(value[:5], "%H:%M").time()
    except ValueError:
        errors.setdefault(name, []).append("form.invalid_time")
        return None


def rrule_from_form(form, errors):
    """FREQ=…;INTERVAL=…;BYDAY=…;UNTIL=…|COUNT=… from the recurrence fields, or None (not recurring)."""
    freq = _text(form, "freq").upper()
    if not freq:
        return None
    if freq not in FREQUENCIES:
        errors.setdefault("freq", []).append("form.invalid_choice")
        return None
    parts = [f"FREQ={freq}"]
    interval = _int(form, "interval", errors)
    if interval and interval > 1:
        parts.append(f"INTERVAL={interval}")
    days = [day for day in form.getlist("byday") if day in WEEKDAYS] if hasattr(form, "getlist") else []
    if days:
        if freq == "DAILY":
            errors.setdefault("byday", []).append("event.error.weekdays_daily")
        parts.append("BYDAY=" + ",".join(sorted(set(days), key=WEEKDAYS.index)))
    ends = _text(form, "ends") or "never"
    if ends == "until":
        until = _date(form, "until", errors)
        if until:
            parts.append(f"UNTIL={until:%Y%m%d}")  # through that local day (the events service reads it so)
    elif ends == "count":
        count = _int(form, "count", errors)
        if count is None and "count" not in errors:
            errors.setdefault("count", []).append("form.required")
        if count:
            parts.append(f"COUNT={count}")
    return ";".join(parts)


def form_from_rrule(rrule, tz=DEFAULT_ZONE):
    """The recurrence fields of the edit form from a stored rule (UNTIL back to a local date)."""
    if not rrule:
        return {"freq": "", "interval": "1", "ends": "never", "until": "", "count": "", "byday": []}
    parts = dict(part.partition("=")[::2] for part in rrule.split(";"))
    values = {"freq": parts.get("FREQ", ""), "interval": parts.get("INTERVAL", "1"), "ends": "never", "until": "",
              "count": "", "byday": [day for day in parts.get("BYDAY", "").split(",") if day in WEEKDAYS]}
    if "COUNT" in parts:
        values.update(ends="count", count=parts["COUNT"])
    elif "UNTIL" in parts:
        until = parts["UNTIL"]
        if len(until) == 8:
            day = datetime.strptime(until, "%Y%m%d").date()
        else:  # stored in UTC (the last second of the local day the form said)
            day = datetime.strptime(until, "%Y%m%dT%H%M%SZ").replace(tzinfo=ZoneInfo("UTC")).astimezone(
                ZoneInfo(tz)).date()
        values.update(ends="until", until=day.isoformat())
    return values


def _schema_errors(exc):
    """A marshmallow error dict -> {form field: [message]} (lists and nested shapes flattened)."""
    found = {}
    for key, messages in exc.messages.items():
        field = FIELD_OF_KEY.get(key, key)
        if isinstance(messages, dict):
            messages = [message for nested in messages.values() for message in
                        (nested if isinstance(nested, list) else [nested])]
        found.setdefault(field, []).extend(messages if isinstance(messages, list) else [messages])
    return found


def event_body_from_form(form, organiser=None, new=None):
    """The CreateEvent body (organiser given, or `new`: the handler adds her association) or the
    UpdateEvent body (organiser None) of an event form."""
    new = organiser is not None if new is None else new
    errors = {}
    all_day = form.get("all_day") in ("on", "1", "true")
    start_day, end_day = _date(form, "start_date", errors), _date(form, "end_date", errors, required=False)
    end_day = end_day or start_day
    if all_day:
        start, end = (start_day.isoformat() if start_day else None), (end_day.isoformat() if end_day else None)
        start_time = None
    else:
        start_time, end_time = _time(form, "start_time", errors), _time(form, "end_time", errors)
        start = f"{start_day.isoformat()}T{start_time:%H:%M}" if start_day and start_time else None
        end = f"{end_day.isoformat()}T{end_time:%H:%M}" if end_day and end_time else None
    skipped = []
    for line in _text(form, "exdates").replace(",", "\n").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            day = date.fromisoformat(line)
        except ValueError:
            errors.setdefault("exdates", []).append("form.invalid_date")
            continue
        # An occurrence is named by its original start: the day at the series' start time.
        skipped.append(day.isoformat() if all_day or start_time is None else f"{day.isoformat()}T{start_time:%H:%M}")
    if len(skipped) > MAX_SKIPPED:
        errors.setdefault("exdates", []).append("form.too_many")
    body = {
        "title": _text(form, "title"), "description": _text(form, "description"), "kind": _text(form, "kind"),
        "city": _text(form, "city"), "venue_id": _text(form, "venue_id") or None, "place": _text(form, "place"),
        "start": start, "end": end, "tz": _text(form, "tz") or DEFAULT_ZONE, "all_day": all_day,
        "rrule": rrule_from_form(form, errors), "exdates": skipped,
        "capacity": _int(form, "capacity", errors), "visibility": _text(form, "visibility") or "network",
        "status": _text(form, "status") or "published",
    }
    for name in ("title", "kind"):
        if not body[name]:
            errors.setdefault(name, []).append("form.required")
    if not body["city"] and not body["venue_id"]:
        errors.setdefault("city", []).append("event.error.city_or_venue")
    if body["venue_id"]:
        body["place"] = ""  # a registered venue wins over the free text
    if organiser is not None:
        body["organiser"] = organiser
    schema = CreateEvent(partial=("organiser",)) if new else UpdateEvent()
    try:
        loaded = schema.load({key: value for key, value in body.items() if value is not None or key in (
            "venue_id", "rrule", "capacity")})
    except ValidationError as exc:
        timing_shown = any(name in errors for name in ("start_date", "start_time", "end_date", "end_time"))
        for field, messages in _schema_errors(exc).items():
            if field in errors or (timing_shown and field in ("start_date", "end_date")):
                continue  # the form's own, more precise message first
            errors[field] = messages
        loaded = None
    if errors:
        raise FormErrors(errors)
    return schema.dump(loaded)


def event_form_values(event):
    """An event (EventSchema) as the edit form's values, in its own zone's wall time."""
    start_local, end_local = event.get("start_local") or "", event.get("end_local") or ""
    values = {"title": event.get("title", ""), "description": event.get("description", ""),
              "kind": event.get("kind", ""), "city": event.get("city", ""),
              "venue_id": (event.get("venue") or {}).get("id") or "", "place": event.get("place", ""),
              "tz": event.get("tz") or DEFAULT_ZONE, "all_day": bool(event.get("all_day")),
              "capacity": "" if event.get("capacity") is None else str(event["capacity"]),
              "visibility": event.get("visibility", "network"), "status": event.get("status", "published"),
              "start_date": start_local[:10], "start_time": start_local[11:16],
              "end_date": end_local[:10], "end_time": end_local[11:16]}
    values.update(form_from_rrule(event.get("rrule"), values["tz"]))
    values["exdates"] = "\n".join(skipped_days(event))
    return values


def skipped_days(event):
    """The local days of an event's cancelled occurrences (stored as their original UTC start or date)."""
    zone = ZoneInfo(event.get("tz") or DEFAULT_ZONE)
    days = []
    for key in event.get("exdates") or []:
        days.append(key[:10] if len(key) == 10 else datetime.fromisoformat(key).astimezone(zone).date().isoformat())
    return sorted(set(days))


def move_body_from_form(form):
    """MoveOccurrence: which occurrence (its original start, as listed), and its new local start and end."""
    errors = {}
    start_day, end_day = _date(form, "start_date", errors), _date(form, "end_date", errors, required=False)
    all_day = form.get("all_day") in ("on", "1", "true")
    if all_day:
        body = {"recurrence_id": _text(form, "recurrence_id"), "start": start_day and start_day.isoformat(),
                "end": end_day and end_day.isoformat()}
    else:
        start_time, end_time = _time(form, "start_time", errors), _time(form, "end_time", errors)
        end_day = end_day or start_day
        body = {"recurrence_id": _text(form, "recurrence_id"),
                "start": f"{start_day}T{start_time:%H:%M}" if start_day and start_time else None,
                "end": f"{end_day}T{end_time:%H:%M}" if end_day and end_time else None}
    return _loaded(MoveOccurrence(), body, errors)


def registration_body_from_form(form, association=None):
    """RegistrationSchema for her own association (None: the handler adds it): a participant, or a stand
    with its products."""
    products = [line.strip() for line in _text(form, "products").splitlines() if line.strip()]
    body = {"association": association, "name": _text(form, "name"), "kind": _text(form, "kind") or None,
            "products": products}
    return _loaded(RegistrationSchema(partial=("association",)), body, {})


def _loaded(schema, body, errors):
    try:
        loaded = schema.load({key: value for key, value in body.items() if value is not None})
    except ValidationError as exc:
        for field, messages in _schema_errors(exc).items():
            errors.setdefault(field, messages)
        loaded = None
    if errors:
        raise FormErrors(errors)
    return schema.dump(loaded)


def field_of(code, default="_form"):
    return FIELD_OF_CODE.get(code, default)



class FormSchema(Schema):
    """A calendar form as a route's body: loads the posted fields as {"api": the events API's body}
    (`convert`), or raises the form's problems at their fields, as their catalogue keys (web.field_code)."""

    class Meta:
        unknown = INCLUDE  # the form's own fields are read by `convert`

    api = fields.Raw(dump_only=True)  # what the handler sends over RPC

    @staticmethod
    def convert(form):
        raise NotImplementedError

    @post_load
    def _convert(self, data, **kwargs):
        # routes.form_body gives a field posted several times (weekdays) as a list
        form = MultiDict([(key, item) for key, value in data.items()
                          for item in (value if isinstance(value, list) else [value])])
        try:
            return {"api": self.convert(form)}
        except FormErrors as problems:
            raise ValidationError(problems.errors) from None  # their keys are their codes (web.field_code)


class NewEventForm(FormSchema):
    """The new-event form (its organiser is her association, added by the handler)."""

    convert = staticmethod(lambda form: event_body_from_form(form, new=True))


class EventForm(FormSchema):
    """The edit form of an event."""

    convert = staticmethod(event_body_from_form)


class MoveForm(FormSchema):
    """Moving one occurrence."""

    convert = staticmethod(move_body_from_form)


class RegistrationForm(FormSchema):
    """Registering her association (a participant, or a stand and its products)."""

    convert = staticmethod(registration_body_from_form)


class OccurrenceForm(CancelOccurrence):
    """Cancelling one occurrence: which one (its original start, as listed)."""

    class Meta:
        unknown = EXCLUDE  # the idempotency key, read by the handler
