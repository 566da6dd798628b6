"""Directory rules: who is in the network, what they offer, who works where."""

import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy import select

from services.directory import changes  # noqa: F401 - every change of this module's records is announced there
from services.directory.models import Association, OfferedService, Staff
from tansiq import contracts, sealing
from tansiq.contracts.fields import CATEGORIES, LANGUAGES, ROLES
from tansiq.envelope import utcnow
from tansiq.errors import DomainError, NotFound
from tansiq.messaging import outbox

SOURCE = "directory"
SERVICE_STATUSES = ("active", "inactive", "defunct", "temporarily closed")  # HSDS 3.0
_hasher = PasswordHasher()


def get_association(session, slug):
    association = session.get(Association, slug)
    if association is None:
        raise NotFound(f"no association {slug!r} in the directory")
    return association


def upsert_association(session, data):
    """Create or update an association; announces it. Safe to repeat."""
    association = session.get(Association, data["slug"])
    created = association is None
    if created:
        association = Association(slug=data["slug"])
        session.add(association)
    changed = False
    for key, value in data.items():
        if key != "services" and getattr(association, key, None) != value:
            setattr(association, key, value)
            changed = True
    for offered in data.get("services", []):
        changed |= upsert_service(session, association, offered)
    if created or changed:
        session.flush()
        verb = "registered" if created else "updated"
        outbox.add(session, contracts.make(f"ma.tansiq.association.{verb}.v1", SOURCE, {
            "slug": association.slug, "name_ar": association.name_ar, "name_fr": association.name_fr,
            "city": association.city, "categories": sorted({s.category for s in association.services}),
        }))
    return association


def upsert_service(session, association, data):
    if data["category"] not in CATEGORIES:
        raise DomainError(f"unknown service category {data['category']!r}; one of {', '.join(CATEGORIES)}")
    if data.get("status", "active") not in SERVICE_STATUSES:
        raise DomainError(f"service status must be one of {', '.join(SERVICE_STATUSES)}")
    existing = next((s for s in association.services
                     if s.category == data["category"] and s.name == data["name"]), None)
    if existing is None:
        association.services.append(OfferedService(id=f"svc-{uuid.uuid4().hex[:12]}", **data))
        return True
    changed = False
    for key, value in data.items():
        if getattr(existing, key) != value:
            setattr(existing, key, value)
            changed = True
    return changed


def upsert_staff(session, data, password=None):
    unknown = set(data.get("roles", ())) - set(ROLES)
    if unknown:
        raise DomainError(f"unknown roles {sorted(unknown)}; one of {', '.join(ROLES)}")
    if data.get("language", "fr") not in LANGUAGES:
        raise DomainError(f"language must be one of {', '.join(LANGUAGES)}")
    get_association(session, data["association_slug"])
    staff = session.get(Staff, data["id"])
    if staff is None:
        staff = Staff(**data)
        session.add(staff)
    else:
        for key, value in data.items():
            setattr(staff, key, value)
    if password:
        staff.password_hash = _hasher.hash(password)
    session.flush()
    if password or not staff.active:  # a new password or a deactivation ends her sessions at once
        from services.directory.signin import revoke_all  # signin builds on this module

        revoke_all(session, utcnow(), staff.id)
    return staff


def find_services(session, category, city=None):
    query = (select(OfferedService).join(Association)
             .where(OfferedService.category == category, OfferedService.status == "active"))
    if city:
        query = query.where(Association.city == city)
    return session.scalars(query.order_by(Association.city, Association.slug)).all()


def list_associations(session, city=None, category=None):
    query = select(Association)
    if city:
        query = query.where(Association.city == city)
    if category:
        query = query.where(Association.services.any(OfferedService.category == category))
    return session.scalars(query.order_by(Association.city, Association.slug)).all()


def list_staff(session, association, role=None):
    get_association(session, association)
    staff = session.scalars(select(Staff).where(Staff.association_slug == association, Staff.active)
                            .order_by(Staff.id)).all()
    return [member for member in staff if role is None or role in member.roles]


def get_staff(session, staff_id):
    staff = session.get(Staff, staff_id)
    if staff is None:
        raise NotFound(f"no staff member {staff_id!r}")
    return staff


def authenticate(session, email, password):
    """The staff member with these credentials, or None (same answer for unknown email and bad password)."""
    staff = session.scalar(select(Staff).where(Staff.email == email.strip().lower(), Staff.active))
    if staff is None or not staff.password_hash:
        _hasher.hash(password)  # same cost either way: no timing hint about which emails exist
        return None
    try:
        _hasher.verify(staff.password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return None
    return staff


def set_public_key(session, slug, public_key, integration="queue"):
    association = get_association(session, slug)
    association.public_key = public_key
    association.integration = integration
    return association


def set_encryption_key(session, slug, encryption_key):
    """A partner's published X25519 public key (base64): referral data to it is sealed to this key."""
    try:
        sealing.load_public_key(encryption_key)
    except ValueError as exc:
        raise DomainError(str(exc), code="invalid_request") from None
    association = get_association(session, slug)
    association.encryption_key = encryption_key
    return association
