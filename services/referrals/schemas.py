"""marshmallow shapes of the referrals RPC (and the gateway's JSON API, which reuses them)."""

from marshmallow import EXCLUDE, Schema, fields, validate

from services.referrals.domain import ACTIONS, FINAL_STATES, ORDER
from tansiq import paging
from tansiq.contracts.fields import identifier, slug, text, urgency
from tansiq.contracts.referrals import SHAREABLE_FIELDS

STATES = tuple(ORDER) + FINAL_STATES


class Input(Schema):
    class Meta:
        unknown = EXCLUDE


def shared_fields(**kwargs):
    return fields.List(fields.String(validate=validate.OneOf(SHAREABLE_FIELDS)), **kwargs)


class CreateReferralSchema(Input):
    beneficiary_id = identifier(required=True)
    to_association = slug(required=True)
    service_category = text(80, min_length=1, required=True)
    service_id = identifier(load_default=None, allow_none=True)
    reason = text(2000, min_length=1, required=True)
    urgency = urgency(required=True)
    fields = shared_fields(load_default=list)  # minimum data: nothing unless chosen
    override_reason = text(500, load_default=None, allow_none=True)
    note = text(2000, load_default="")


class TransitionSchema(Input):
    reason = text(200, load_default=None, allow_none=True)  # decline: free text; close: a closure reason
    outcome = text(2000, load_default=None, allow_none=True)
    note = text(2000, load_default="")


class RerouteSchema(Input):
    to_association = slug(required=True)
    service_category = text(80, load_default=None, allow_none=True)
    service_id = identifier(load_default=None, allow_none=True)
    reason = text(2000, load_default=None, allow_none=True)
    urgency = urgency(load_default=None, allow_none=True)
    fields = shared_fields(load_default=None, allow_none=True)  # None: the fields shared the first time
    override_reason = text(500, load_default=None, allow_none=True)
    note = text(2000, load_default="")


class ActionSchema(Input):
    action = fields.String(required=True, validate=validate.OneOf(ACTIONS))


class ListQuerySchema(Input, paging.PageQuery):
    direction = fields.String(load_default="sent", validate=validate.OneOf(("sent", "received")))
    status = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(STATES))


class HolidaySchema(Input):
    day = fields.Date(required=True)
    is_holiday = fields.Boolean(required=True)
    name = text(200, load_default="")


class HistorySchema(Schema):
    action = fields.String()
    from_state = fields.String(allow_none=True)
    to_state = fields.String()
    by = fields.String(allow_none=True)
    by_association = fields.String(allow_none=True)
    at = fields.AwareDateTime()
    note = fields.String()


class ReferralSchema(Schema):
    """A referral as one party sees it (domain.view); `shared` only on the recipient's side."""

    id = fields.String()
    direction = fields.String()
    beneficiary_id = fields.String(allow_none=True)
    from_association = fields.String()
    to_association = fields.String()
    service_category = fields.String()
    service_id = fields.String(allow_none=True)
    reason = fields.String()  # "" once the reader's copy ended
    urgency = fields.String()
    state = fields.String()
    overdue = fields.Boolean()
    origin = fields.String()
    consent_id = fields.String(allow_none=True)
    consent_override = fields.Boolean()
    created_by = fields.String(allow_none=True)
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()
    ack_due = fields.AwareDateTime(allow_none=True)
    response_due = fields.AwareDateTime(allow_none=True)
    expires_at = fields.AwareDateTime(allow_none=True)
    decline_reason = fields.String(allow_none=True)
    closure_reason = fields.String(allow_none=True)
    outcome = fields.String(allow_none=True)
    rerouted_from = fields.String(allow_none=True)
    rerouted_to = fields.String(allow_none=True)
    shared_fields = fields.List(fields.String())
    shared_erased_at = fields.AwareDateTime(allow_none=True)
    copy_expires_at = fields.AwareDateTime(allow_none=True)  # when the recipient's copy ends
    shared = fields.Dict(keys=fields.String())
    history = fields.List(fields.Nested(HistorySchema))
