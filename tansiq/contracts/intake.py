"""Intake messages. They never carry a name, contact or story: only ids and categories."""

from marshmallow import fields, validate

from tansiq.contracts import ContractSchema, contract
from tansiq.contracts.fields import CATEGORIES, bounded_list, identifier, moment, slug, text, urgency

NEEDS = CATEGORIES  # a need is named by the category of service that answers it


@contract(
    "ma.tansiq.beneficiary.registered.v1",
    summary="A beneficiary was registered after a listening session (no personal data).",
    example={"beneficiary_id": "b-7c2e", "association": "amal-safi", "registered_by": "s-1",
             "urgency": "normal", "needs": ["legal_orientation"], "city": "Safi"},
)
class BeneficiaryRegistered(ContractSchema):
    beneficiary_id = identifier(required=True)
    association = slug(required=True)
    registered_by = identifier(required=True)
    urgency = urgency(required=True)
    needs = bounded_list(fields.String(validate=validate.OneOf(NEEDS)), load_default=list)
    city = text(100, load_default="")
    possible_duplicate_of = bounded_list(identifier(), load_default=list)


@contract(
    "ma.tansiq.consent.revoked.v1",
    summary="A consent was revoked: recipients must stop using, and erase, the data shared under it.",
    partners="receive",
    example={"consent_id": "c-19", "beneficiary_id": "b-7c2e", "association": "amal-safi",
             "recipients": ["wafae-marrakech"], "revoked_at": "2026-11-29T10:00:00+00:00"},
)
class ConsentRevoked(ContractSchema):
    consent_id = identifier(required=True)
    beneficiary_id = identifier(required=True)
    association = slug(required=True)
    recipients = bounded_list(slug(), load_default=list)
    revoked_at = moment(required=True)


@contract(
    "ma.tansiq.beneficiary.erased.v1",
    summary="A beneficiary was erased: every copy of her data ends, shared under a consent or an override.",
    example={"beneficiary_id": "b-7c2e", "association": "amal-safi", "erased_at": "2026-11-29T10:00:00+00:00"},
)
class BeneficiaryErased(ContractSchema):
    beneficiary_id = identifier(required=True)
    association = slug(required=True)
    erased_at = moment(required=True)
