"""Directory messages: associations of the network and the services they offer."""


from datetime import timedelta

from marshmallow import fields

from tansiq.contracts import ContractSchema, contract
from tansiq.contracts.fields import boolean, bounded_list, identifier, integer, moment, slug, text


@contract(
    "ma.tansiq.association.registered.v1",
    "ma.tansiq.association.updated.v1",
    summary="An association joined the network or changed its public details.",
    partners="receive",
    example={"slug": "amal-safi", "name_ar": "جمعية أمل", "name_fr": "Association Amal", "city": "Safi"},
)
class AssociationChanged(ContractSchema):
    slug = slug(required=True)
    name_ar = text(200, required=True)
    name_fr = text(200, required=True)
    city = text(100, required=True)
    categories = bounded_list(text(80), load_default=list)


# --- the directory's change feed, for the read models other services keep (tansiq.readmodel) ---------
# Each message carries the whole current state of one record and its version (a counter per record,
# raised by every transaction that changes it): a consumer applies it when the version is newer than
# what it holds, so duplicates, redeliveries and reordering change nothing. Staff contact details
# (work email and phone) are in it because notifications delivers to them; no beneficiary's data is.

class OfferedServiceState(ContractSchema):
    id = identifier(required=True)
    association = slug(required=True)
    name = text(200, required=True)
    category = text(64, required=True)
    description = text(5000, load_default="")
    eligibility = text(5000, load_default="")
    languages = bounded_list(text(8), load_default=list)
    schedule = text(200, load_default="")
    status = text(32, required=True)


@contract(
    "ma.tansiq.directory.association_changed.v1",
    summary="The directory's current record of an association (details, services offered, public keys), "
            "with its version.",
    example={"version": 3, "slug": "amal-safi", "name_ar": "جمعية أمل", "name_fr": "Association Amal",
             "city": "Safi", "integration": "app", "public_key": None, "encryption_key": None, "services": []},
)
class AssociationState(ContractSchema):
    version = integer(1, 2**62, required=True)
    slug = slug(required=True)
    name_ar = text(200, required=True)
    name_fr = text(200, required=True)
    city = text(100, required=True)
    address = text(300, load_default="")
    phone = text(40, load_default="")
    email = text(200, load_default="")
    integration = text(16, required=True)
    public_key = text(200, required=True, allow_none=True)
    encryption_key = text(200, required=True, allow_none=True)
    services = bounded_list(fields.Nested(OfferedServiceState), max_length=200, load_default=list)


@contract(
    "ma.tansiq.directory.staff_changed.v1",
    summary="The directory's current record of a staff member (association, roles, language, work contact, "
            "active or not), with its version.",
    example={"version": 2, "id": "stf-1", "association": "amal-safi", "name": "Fatima", "email": "f@amal.example",
             "phone": "", "language": "ar", "roles": ["case_worker"], "active": True},
)
class StaffState(ContractSchema):
    version = integer(1, 2**62, required=True)
    id = identifier(required=True)
    association = slug(required=True)
    name = text(200, required=True)
    email = text(200, required=True)
    phone = text(40, load_default="")
    language = text(2, required=True)
    roles = bounded_list(text(32), max_length=10, load_default=list)
    active = boolean(required=True)


# How long a session of the web app lives: the directory's rule, which the gateways' read models apply too.
SESSION_IDLE = timedelta(minutes=30)
SESSION_ABSOLUTE = timedelta(hours=12)


@contract(
    "ma.tansiq.directory.session_opened.v1",
    summary="A staff member signed in: the SHA-256 of the session token (never the token).",
    example={"token_hash": "9f86d0…", "staff_id": "stf-1",
             "created_at": "2026-03-01T09:00:00+00:00"},
)
class SessionOpened(ContractSchema):
    token_hash = text(64, min_length=64, required=True)
    staff_id = identifier(required=True)
    created_at = moment(required=True)


@contract(
    "ma.tansiq.directory.sessions_revoked.v1",
    summary="Sessions ended (sign-out, password change, deactivation): the SHA-256 of each token.",
    example={"staff_id": "stf-1", "token_hashes": ["9f86d0…"]},
)
class SessionsRevoked(ContractSchema):
    staff_id = identifier(required=True)
    token_hashes = bounded_list(text(64, min_length=64), max_length=10000, required=True)
