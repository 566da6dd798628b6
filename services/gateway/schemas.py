"""Shapes of the gateway's own requests (each area's shapes live with its service)."""

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate

from services.directory.schemas import StaffSchema
from services.events.schemas import EventSchema
from services.intake.schemas import KINDS, BeneficiarySchema, ConsentSchema, SessionSchema
from services.notifications.schemas import InboxItemSchema
from services.referrals.schemas import CreateReferralSchema, ReferralSchema, RerouteSchema, TransitionSchema
from tansiq.contracts.events import EVENT_KINDS
from tansiq.contracts.fields import identifier, slug
from tansiq.contracts.intake import NEEDS
from tansiq.paging import PageQuery


class LoginSchema(Schema):
    email = fields.Email(required=True)
    password = fields.String(required=True, validate=validate.Length(min=1, max=200))


class PasswordChangeSchema(Schema):
    current_password = fields.String(required=True, validate=validate.Length(min=1, max=200))
    new_password = fields.String(required=True, validate=validate.Length(min=10, max=200))


class ServicesQuerySchema(Schema):
    """GET /api/directory/services: the associations offering a service category (optionally in a city)."""

    class Meta:
        unknown = EXCLUDE  # e.g. a lang= the page carries along

    category = fields.String(required=True, validate=validate.OneOf(NEEDS))
    city = fields.String(load_default=None, validate=validate.Length(max=100))


# --- forms of the pages (application/x-www-form-urlencoded; they work without JavaScript) ---

def confirmed():
    """The checkbox a form needs before anything irreversible; unticked reads as a missing field."""
    return fields.Boolean(required=True, validate=validate.Equal(
        True, error=fields.Field.default_error_messages["required"]))


def listed(*names):
    """A form sends one checked box as a value, several as a list: always a list for these fields."""
    @pre_load
    def as_lists(self, data, **kwargs):
        return {**data, **{name: [data[name]] for name in names if isinstance(data.get(name), str)}}
    return as_lists


def blanks_absent(*kept):
    """An empty box or select of a form means no value (not an empty one): its field is left out, but `kept`."""
    @pre_load
    def without_blanks(self, data, **kwargs):
        return {key: value for key, value in data.items() if value != "" or key in kept}
    return without_blanks


LOCAL_TZ = ZoneInfo("Africa/Casablanca")  # a date typed in a form is a Moroccan day


class IntakeFormSchema(BeneficiarySchema):
    """The intake form (registration and her first listening session), posted without JavaScript."""

    as_lists = listed("needs")
    without_blanks = blanks_absent()


class ConsentFormSchema(ConsentSchema):
    """Her consent from her record's form: to one association, or to "any partner offering" the purpose itself;
    an end date rather than a moment (the end of that Moroccan day)."""

    as_lists = listed("fields")
    without_blanks = blanks_absent()

    @pre_load
    def from_form(self, data, **kwargs):
        data = dict(data)
        if data.pop("recipient_kind", "association") == "category":
            data.pop("recipient_association", None)
            data["recipient_category"] = data.get("purpose")
        day = data.pop("expires_on", None)
        if day:
            try:
                data["expires_at"] = datetime.combine(date.fromisoformat(day), time(23, 59, 59), LOCAL_TZ).isoformat()
            except (TypeError, ValueError):
                raise ValidationError({"expires_on": ["Not a valid date."]}) from None
        return data


class ReferFormSchema(CreateReferralSchema):
    """A referral from her record's form: whom it is about is the record's URL, not a form field."""

    beneficiary_id = identifier(load_default=None)
    as_lists = listed("fields")
    without_blanks = blanks_absent()


class SessionFormSchema(SessionSchema):
    """A follow-up listening session from her record's form."""

    as_lists = listed("needs")


class ConfirmFormSchema(Schema):
    """A form that only needs her confirmation (withdraw, revoke a consent, erase)."""

    confirm = confirmed()


class DuplicateFormSchema(ConfirmFormSchema):
    decision = fields.String(required=True, validate=validate.OneOf(("same", "distinct")))


class TransitionFormSchema(TransitionSchema):
    """acknowledge, accept, start, complete (outcome) from a referral's form."""


class DeclineFormSchema(TransitionSchema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=200))
    confirm = confirmed()


class WithdrawFormSchema(TransitionSchema):
    """withdraw, or dismiss a declined or expired referral: irreversible, so confirmed."""

    confirm = confirmed()


class RerouteFormSchema(RerouteSchema):
    confirm = confirmed()
    as_lists = listed("fields")


class BeneficiarySearchSchema(PageQuery):
    """GET /beneficiaries: one box for a name (Arabic or Latin, as typed) or a phone, and the filters."""

    class Meta:
        unknown = EXCLUDE  # lang

    q = fields.String(load_default="", validate=validate.Length(max=200))
    kind = fields.String(load_default=None, validate=validate.OneOf(("", *KINDS)))
    registered_since = fields.Date(load_default=None)
    without_blanks = blanks_absent("q")  # an empty select or date means no filter


# --- answers the gateway puts together (for the OpenAPI document; see api_openapi.py) ---

class ErrorDetailSchema(Schema):
    code = fields.String(required=True, metadata={"description": "stable machine code, e.g. not_found, no_consent"})
    message = fields.String(required=True, metadata={"description": "human-readable, in English"})
    details = fields.Dict(required=True, metadata={"description": "per-field messages for validation_error, else {}"})
    field_codes = fields.Dict(keys=fields.String(), values=fields.String(), data_key="fields", metadata={
        "description": "validation_error only: a stable code per field ({\"needs.0\": \"not_one_of\"}), which "
                       "the pages translate (msgids field_error.<code>) and show at the field"})


class ErrorSchema(Schema):
    error = fields.Nested(ErrorDetailSchema, required=True)


class LoginResultSchema(Schema):
    """Her profile only: the session token is in the HttpOnly tansiq_session cookie, never in a body."""

    staff = fields.Nested(StaffSchema)  # as directory.sign_in returns her


class SessionClaimsSchema(Schema):
    """What the session token carries (GET /api/me)."""

    id = fields.String()
    association = fields.String()
    roles = fields.List(fields.String())
    language = fields.String()
    name = fields.String()


class DuplicateSchema(Schema):
    id = fields.String()
    reasons = fields.List(fields.String(validate=validate.OneOf(
        ("same_phone", "same_name", "similar_name", "same_birth_date", "same_birth_year"))))


class RegisteredSchema(Schema):
    """intake.register_beneficiary's answer: the new id and earlier records that may be the same woman."""

    id = fields.String()
    possible_duplicates = fields.List(fields.Nested(DuplicateSchema))
    # Kinds of value (phone, name, skeleton) found on too many records to mean anything: not flagged.
    shared_values = fields.List(fields.String())


class InboxEntrySchema(InboxItemSchema):
    """An inbox item with its subject and body in the staff member's language (notifications.inbox)."""

    subject = fields.String()
    body = fields.String()


class BeneficiarySummarySchema(Schema):
    """A record in her association's list: no personal field (opening it is the audited read)."""

    id = fields.String()
    kind = fields.String()
    city = fields.String()
    language = fields.String(allow_none=True)
    registered_at = fields.String(metadata={"format": "date-time"})
    registered_by = fields.String()


class BeneficiaryPageSchema(Schema):
    """One page of an association's beneficiaries, newest first (tansiq.paging)."""

    items = fields.List(fields.Nested(BeneficiarySummarySchema))
    next = fields.String(allow_none=True, metadata={
        "description": "cursor of the following page (pass it as `cursor`); null on the last page"})


class ReferralPageSchema(Schema):
    """One page of referrals sent or received, newest first (tansiq.paging)."""

    items = fields.List(fields.Nested(ReferralSchema))
    next = fields.String(allow_none=True, metadata={
        "description": "cursor of the following page (pass it as `cursor`); null on the last page"})


class InboxQuerySchema(PageQuery):
    """GET /api/inbox: one page of her inbox, newest first; `lang` renders subjects in that language."""

    unread = fields.String(load_default=None, validate=validate.OneOf(("1", "true", "yes")))
    lang = fields.String(load_default=None, validate=validate.OneOf(("ar", "fr", "en")))


class InboxListSchema(Schema):
    """One page of the inbox, newest first (tansiq.paging)."""

    items = fields.List(fields.Nested(InboxEntrySchema))
    next = fields.String(allow_none=True, metadata={
        "description": "cursor of the following page (pass it as `cursor`); null on the last page"})


class UnreadCountSchema(Schema):
    unread = fields.Integer()


class EventResultSchema(Schema):
    """events.create_event / update_event / move_occurrence: the event and any clash warnings."""

    event = fields.Nested(EventSchema)
    warnings = fields.List(fields.Dict(), metadata={"description": "venue or time clashes; pass force=1 to go on"})


# --- query strings of the calendar routes (strings go on to the events service, which reads them again) ---

class Query(Schema):
    class Meta:
        unknown = EXCLUDE  # a page's own parameters (lang...) are not the route's business


def _when(description, **kwargs):
    return fields.String(load_default=None, validate=validate.Length(max=40),
                         metadata={"format": "date-time", "description": description}, **kwargs)


class EventWindowQuery(Query):
    """GET /api/events: occurrences in a window (public ones, plus network ones when signed in)."""

    start = _when("default: 7 days ago")
    end = _when("default: in 62 days")
    city = fields.String(load_default=None, validate=validate.Length(max=100))
    kind = fields.String(load_default=None, validate=validate.OneOf(EVENT_KINDS))
    association = fields.String(load_default=None, validate=validate.Length(max=63),
                                metadata={"description": "organiser or co-organiser slug"})


class OccurrencePageQuery(EventWindowQuery):
    cursor = fields.String(load_default=None, validate=validate.Length(max=2000),
                           metadata={"description": "the `next` of the page before; absent for the first page"})
    limit = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2000),
                           metadata={"description": "occurrences per page (default 200)"})


class ForceQuery(Query):
    force = fields.String(load_default=None, validate=validate.OneOf(("1", "true", "yes")),
                          metadata={"description": "save despite venue/time clash warnings"})


class FeedQuery(Query):
    """?from=&to= of an iCalendar feed."""

    since = _when("window start; default: 3 months before this month", data_key="from")
    until = _when("window end; default: 18 months after this month (at most 5 years in all)", data_key="to")


class CalendarSearchQuery(Query):
    """GET /calendar/search: words, a city and the days to look between; an empty field of the form is no filter."""

    q = fields.String(load_default="", validate=validate.Length(max=200))
    city = fields.String(load_default="", validate=validate.Length(max=100))
    since = fields.Date(data_key="from", load_default=None, error_messages={"invalid": "form.invalid_date"},
                        metadata={"description": "first day (YYYY-MM-DD)"})
    until = fields.Date(data_key="to", load_default=None, error_messages={"invalid": "form.invalid_date"},
                        metadata={"description": "last day, included"})

    @pre_load
    def blanks_are_absent(self, data, **kwargs):
        return {key: value.strip() for key, value in data.items() if isinstance(value, str) and value.strip()}


class VenuesQuery(Query):
    city = fields.String(load_default=None, validate=validate.Length(max=100))


# --- values in the URL of the feeds (422 before the events service is asked) ---

PRINTABLE = validate.Regexp(r"^[^\x00-\x1f\x7f-\x9f]*$", error="must not hold control characters")


class FeedPathSchema(Schema):
    city = fields.String(validate=[validate.Length(min=1, max=100), PRINTABLE])
    slug = slug()
    event_id = fields.String(validate=[validate.Length(min=1, max=64), PRINTABLE])
