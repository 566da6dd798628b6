"""Referral messages: the closed loop between two associations.

Nothing a person said or wrote travels in clear. `sealed` maps a field to its value sealed
(tansiq.sealing: X25519 + HKDF-SHA256 + AES-GCM) to the public encryption keys of the parties
that may read it, with the associated data `referral:<referral_id>:<field>`:

- `shared`: the fields the case worker chose (only under a consent or a recorded override),
  sealed to the recipient alone; `shared_fields` names them in clear.
- `reason`, `decline_reason`, `outcome`, `note`: free text, sealed to both parties.

Sealed values reach only a party's own queue (`partner.<slug>`); the internal events on
`tansiq.events` carry no sealed value at all. `reason` and `shared` in clear are kept for
partner systems that do not seal yet (Tansiq seals them on arrival) and are always empty in
what Tansiq sends.
"""

from marshmallow import RAISE, fields, validate

from tansiq.contracts import ContractSchema, contract
from tansiq.contracts.fields import (
    CATEGORIES,
    LANGUAGES,
    bounded_list,
    identifier,
    integer,
    moment,
    slug,
    text,
    urgency,
)

SHAREABLE_FIELDS = ("first_name", "last_name", "phone", "birth_year", "city", "language", "needs", "notes")
SEALED_FIELDS = ("shared", "reason", "decline_reason", "outcome", "note")


def sealed_values():
    """{field: sealed value}; the shape of a sealed value is checked by whoever opens it."""
    return fields.Dict(keys=fields.String(validate=validate.OneOf(SEALED_FIELDS)), values=fields.Dict(),
                       load_default=dict)


CLOSURE_REASONS = ("could_not_contact", "withdrawn", "no_longer_needed")
DEADLINES = ("acknowledgement", "response")


class SharedFields(ContractSchema):
    """The beneficiary's fields a case worker chose to share (each may be absent or null)."""

    class Meta:
        unknown = RAISE  # only the shareable fields: anything else is refused, never carried along

    first_name = text(100, allow_none=True)
    last_name = text(100, allow_none=True)
    phone = text(40, allow_none=True)
    birth_year = integer(1900, 2100, allow_none=True)
    city = text(100, allow_none=True)
    language = fields.String(validate=validate.OneOf(LANGUAGES), allow_none=True)
    needs = bounded_list(fields.String(validate=validate.OneOf(CATEGORIES)), allow_none=True)
    notes = text(4000, allow_none=True)


class ReferralRef(ContractSchema):
    referral_id = identifier(required=True)
    from_association = slug(required=True)
    to_association = slug(required=True)


@contract(
    "ma.tansiq.referral.sent.v1",
    summary="A referral was sent to an association (minimum data, under a consent).",
    partners="both",
    example={"referral_id": "r-41", "from_association": "amal-safi", "to_association": "wafae-marrakech",
             "service_category": "legal_orientation", "urgency": "urgent", "shared_fields": ["first_name", "phone"],
             "sealed": {"shared": {"v": 1, "ct": "<base64>", "to": {"wafae-marrakech": "<base64>"}},
                        "reason": {"v": 1, "ct": "<base64>", "to": {"amal-safi": "<base64>",
                                                                     "wafae-marrakech": "<base64>"}}},
             "consent_id": "c-19",
             "ack_due": "2026-11-30T12:00:00+00:00", "response_due": "2026-12-02T17:00:00+00:00"},
)
class ReferralSent(ReferralRef):
    service_category = text(80, required=True)
    urgency = urgency(required=True)
    reason = text(2000, load_default="")  # clear text only from partners that do not seal yet
    shared = fields.Nested(SharedFields, load_default=dict)
    shared_fields = bounded_list(fields.String(validate=validate.OneOf(SHAREABLE_FIELDS)), load_default=list)
    sealed = sealed_values()
    consent_id = identifier(allow_none=True, load_default=None)
    ack_due = moment(allow_none=True, load_default=None)
    response_due = moment(allow_none=True, load_default=None)
    rerouted_from = identifier(allow_none=True, load_default=None)


@contract(
    "ma.tansiq.referral.acknowledged.v1",
    "ma.tansiq.referral.accepted.v1",
    "ma.tansiq.referral.started.v1",
    "ma.tansiq.referral.withdrawn.v1",
    "ma.tansiq.referral.data_erased.v1",
    summary="A referral moved to a new state, or its shared data was erased (consent revoked).",
    partners="both",
    example={"referral_id": "r-41", "from_association": "amal-safi", "to_association": "wafae-marrakech",
             "by": "s-9", "note": ""},
)
class ReferralTransition(ReferralRef):
    by = identifier(allow_none=True, load_default=None)
    note = text(2000, load_default="")  # clear text only from partners that do not seal yet
    sealed = sealed_values()
    urgency = urgency(load_default="normal")


@contract(
    "ma.tansiq.referral.declined.v1",
    summary="The recipient declined the referral; a reason is required.",
    partners="both",
    example={"referral_id": "r-41", "from_association": "amal-safi", "to_association": "wafae-marrakech",
             "by": "s-9", "sealed": {"decline_reason": {"v": 1, "ct": "<base64>", "to": {"amal-safi": "<base64>"}}}},
)
class ReferralDeclined(ReferralTransition):
    reason = text(200, load_default="")  # required, in clear or in sealed.decline_reason


@contract(
    "ma.tansiq.referral.reminder_due.v1",
    "ma.tansiq.referral.escalated.v1",
    "ma.tansiq.referral.expired.v1",
    summary="A referral deadline is near (reminder), passed (escalation to coordinators) or long past (expiry).",
    partners="receive",
    example={"referral_id": "r-41", "from_association": "amal-safi", "to_association": "wafae-marrakech",
             "deadline": "acknowledgement", "due_at": "2026-11-30T12:00:00+00:00", "urgency": "urgent"},
)
class ReferralDeadline(ReferralTransition):
    deadline = fields.String(validate=validate.OneOf(DEADLINES), load_default=None, allow_none=True)
    due_at = moment(load_default=None, allow_none=True)


@contract(
    "ma.tansiq.referral.rerouted.v1",
    summary="The sender re-routed a declined or expired referral to another association (a new referral).",
    example={"referral_id": "r-41", "from_association": "amal-safi", "to_association": "wafae-marrakech",
             "by": "s-1", "new_referral_id": "r-42", "new_to_association": "nour-marrakech"},
)
class ReferralRerouted(ReferralTransition):
    new_referral_id = identifier(required=True)
    new_to_association = slug(required=True)


@contract(
    "ma.tansiq.referral.dismissed.v1",
    summary="The sender closed a declined or expired referral without re-routing it (internal: the recipient's "
            "copy had ended with its decline, or ends now and a partner recipient hears referral.data_erased).",
    example={"referral_id": "r-41", "from_association": "amal-safi", "to_association": "wafae-marrakech",
             "by": "s-1"},
)
class ReferralDismissed(ReferralTransition):
    pass


@contract(
    "ma.tansiq.referral.closed.v1",
    summary="The recipient closed the referral without completing it, with a closure reason.",
    partners="both",
    example={"referral_id": "r-41", "from_association": "amal-safi", "to_association": "wafae-marrakech",
             "by": "s-9", "reason": "could_not_contact"},
)
class ReferralClosed(ReferralTransition):
    reason = fields.String(required=True, validate=validate.OneOf(CLOSURE_REASONS))


@contract(
    "ma.tansiq.referral.completed.v1",
    summary="The referral ended with an outcome reported back to the sender.",
    partners="both",
    example={"referral_id": "r-41", "from_association": "amal-safi", "to_association": "wafae-marrakech",
             "by": "s-9", "sealed": {"outcome": {"v": 1, "ct": "<base64>", "to": {"amal-safi": "<base64>"}}}},
)
class ReferralEnded(ReferralTransition):
    outcome = text(2000, load_default="")  # required, in clear or in sealed.outcome
