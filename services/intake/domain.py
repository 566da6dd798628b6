"""Intake rules in plain Python: registration, sessions, consents, sharing for referrals, erasure.

Every function takes a SQLAlchemy Session, the KeyRing and `now`; it never commits
(the caller's unit of work does, together with the outbox rows).
`actor` is a tansiq.contracts.actor.Actor (verified by the service); every rule checks its role here.
"""

import uuid
from datetime import date, datetime, time, timezone
from functools import cache
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, insert, literal, select, union_all

from services.intake import audit, matching
from services.intake.models import (
    AuditEntry,
    Beneficiary,
    BlindIndex,
    Consent,
    Disclosure,
    DuplicateFlag,
    ListeningSession,
)
from services.intake.schemas import NAME_FIELDS
from tansiq import commands, contracts, paging, sealing
from tansiq.contracts.referrals import SHAREABLE_FIELDS
from tansiq.crypto import FieldCipher
from tansiq.db import insert_many
from tansiq.errors import DomainError, Forbidden, NotFound
from tansiq.messaging import outbox

CASABLANCA = ZoneInfo("Africa/Casablanca")  # a day filter means the day as her association lives it

SOURCE = "intake"
PERSONAL_FIELDS = NAME_FIELDS + ("phone", "birth_date", "birth_year")
SESSION_FIELDS = ("orientation", "notes")


def new_id(prefix):
    return f"{prefix}-{uuid.uuid4().hex}"


# --- registration -----------------------------------------------------------------------------


def register_beneficiary(session, keyring, data, actor, now):
    """Store a beneficiary (encrypted) and her first listening session; flag possible duplicates.

    `data` is loaded by schemas.BeneficiarySchema. Returns {"id", "possible_duplicates": [{id, reasons}]}.
    """
    actor.require("cases.write")
    beneficiary_id = new_id("b")
    data_key, wrapped = keyring.new_data_key(beneficiary_id)
    cipher = FieldCipher(data_key, beneficiary_id)
    city = data.get("city") or ""
    # Core inserts in order (her row before those naming it): no ORM object, no flush, on every registration.
    session.execute(insert(Beneficiary.__table__).values(
        id=beneficiary_id, association=actor.association, kind=data["kind"], schooled=data.get("schooled"),
        city=city, language=data.get("language"), wrapped_key=wrapped, registered_by=actor.id, registered_at=now,
        **{f"enc_{field}": cipher.encrypt(field, _blank_to_none(_as_text(data.get(field))))
           for field in PERSONAL_FIELDS}))
    listening = _add_session(session, beneficiary_id, cipher, data, actor, now)

    indexes = _blind_indexes(keyring, data)
    duplicates, shared_values = _find_duplicates(session, actor.association, beneficiary_id, indexes)
    insert_many(session, BlindIndex, [{"beneficiary_id": beneficiary_id, "association": actor.association,
                                        "kind": kind, "value": value} for kind, value in indexes])
    insert_many(session, DuplicateFlag, [{"beneficiary_id": beneficiary_id, "other_id": other_id, "reasons": reasons,
                                           "status": "open", "created_at": now}
                                          for other_id, reasons in duplicates.items()])
    _audit(session, beneficiary_id, actor, "register", [f for f in PERSONAL_FIELDS if data.get(f)], now)

    outbox.add(session, contracts.make("ma.tansiq.beneficiary.registered.v1", SOURCE, {
        "beneficiary_id": beneficiary_id, "association": actor.association, "registered_by": actor.id,
        "urgency": listening["urgency"], "needs": listening["needs"], "city": city,
        "possible_duplicate_of": sorted(duplicates),
    }))
    return {"id": beneficiary_id, "session_id": listening["id"],
            "possible_duplicates": [{"id": other, "reasons": reasons} for other, reasons in sorted(duplicates.items())],
            "shared_values": shared_values}


def _as_text(value):
    return value.isoformat() if isinstance(value, date) else value


def _blank_to_none(value):
    if isinstance(value, str):
        value = value.strip()
    return value if value not in ("", None) else None


def _blind_indexes(keyring, data):
    """[(kind, hmac)] of the normalised identifying values; names indexed per script and as a skeleton."""
    values = []
    phone = matching.normalise_phone(data.get("phone"))
    if phone:
        values.append(("phone", phone))
    for first, last in (("first_name", "last_name"), ("first_name_ar", "last_name_ar")):
        full = " ".join(filter(None, (data.get(first), data.get(last))))
        if matching.normalise_name(full):
            values.append(("name", matching.normalise_name(full)))
        if matching.name_skeleton(full):
            values.append(("skeleton", matching.name_skeleton(full)))
    if data.get("birth_date"):
        values.append(("birth_date", data["birth_date"].isoformat()))
    birth_year = data.get("birth_year") or (data["birth_date"].year if data.get("birth_date") else None)
    if birth_year:
        values.append(("birth_year", str(birth_year)))
    return sorted({(kind, keyring.blind_index(kind, value)) for kind, value in values})


# A value on more than this many earlier records of the association (its own phone number, a
# very common name) says nothing about who she is: it stops producing flags and is reported once,
# in the answer's `shared_values`, instead of flagging every record that carries it.
SHARED_VALUE_LIMIT = 10
# Kinds that can make two records candidates; birth date/year only confirm or contradict a name.
MATCHING_KINDS = ("phone", "name", "skeleton")
BIRTH_KINDS = ("birth_date", "birth_year")


@cache
def _duplicate_lookup(count):
    """One round trip for `count` values: each lookup its own limited subquery, the lot joined by UNION ALL.
    Built once for each count (at most five) and run with values: building it cost 2-3% of intake's CPU."""
    return union_all(*[select(select(literal(n).label("n"), BlindIndex.beneficiary_id).where(
        BlindIndex.association == bindparam("association"), BlindIndex.kind == bindparam(f"kind_{n}"),
        BlindIndex.value == bindparam(f"value_{n}"), BlindIndex.beneficiary_id != bindparam("beneficiary_id"),
    ).limit(SHARED_VALUE_LIMIT + 1).subquery()) for n in range(count)])


def _find_duplicates(session, association, beneficiary_id, indexes):
    """({other_id: [reasons]}, [shared kinds]) for earlier records of the association that may be her.

    Same phone is enough; a same name (exact or cross-script skeleton) needs the birth date or year
    not to contradict it. Scoped to the association: another association's records are not hers to see.
    Each value is looked up through ix_blind_index_lookup (association, kind, value) and read at most
    SHARED_VALUE_LIMIT + 1 rows deep, so the cost does not grow with the association's records.
    """
    mine = {}
    for kind, value in indexes:
        mine.setdefault(kind, set()).add(value)
    theirs, shared = {}, set()
    lookups = [(kind, value) for kind, value in indexes if kind in MATCHING_KINDS]
    found = session.execute(_duplicate_lookup(len(lookups)), {
        "association": association, "beneficiary_id": beneficiary_id,
        **{f"kind_{n}": kind for n, (kind, _) in enumerate(lookups)},
        **{f"value_{n}": value for n, (_, value) in enumerate(lookups)}}).all() if lookups else []
    others_of = {}
    for n, other in found:
        others_of.setdefault(n, []).append(other)
    for n, others in others_of.items():
        kind, value = lookups[n]
        if len(others) > SHARED_VALUE_LIMIT:
            shared.add(kind)
            continue
        for other in others:
            theirs.setdefault(other, {}).setdefault(kind, set()).add(value)
    if theirs and mine.keys() & set(BIRTH_KINDS):
        births = session.execute(
            select(BlindIndex.beneficiary_id, BlindIndex.kind, BlindIndex.value).where(
                BlindIndex.beneficiary_id.in_(sorted(theirs)), BlindIndex.kind.in_(BIRTH_KINDS))
        ).all()
        for other, kind, value in births:
            theirs[other].setdefault(kind, set()).add(value)
    found = {}
    for other, kinds in theirs.items():
        same = {kind for kind in mine if mine[kind] & kinds.get(kind, set())}
        births_known = {"birth_year"} <= (mine.keys() & kinds.keys())
        births_disagree = births_known and "birth_year" not in same
        reasons = []
        if "phone" in same:
            reasons.append("same_phone")
        if ("name" in same or "skeleton" in same) and not births_disagree:
            reasons.append("same_name" if "name" in same else "similar_name")
            if "birth_date" in same:
                reasons.append("same_birth_date")
            elif "birth_year" in same:
                reasons.append("same_birth_year")
        if reasons:
            found[other] = reasons
    return found, sorted(shared)


def list_duplicate_flags(session, beneficiary_id, actor, now, *, permission="cases.read"):
    beneficiary = _owned(session, beneficiary_id, actor, permission)
    flags = session.scalars(select(DuplicateFlag).where(
        (DuplicateFlag.beneficiary_id == beneficiary.id) | (DuplicateFlag.other_id == beneficiary.id))).all()
    return [_flag_dict(flag) for flag in flags]


def resolve_duplicate_flag(session, flag_id, decision, actor, now):
    """The case worker's decision on a flag: 'distinct' or 'same'. Nothing is merged automatically."""
    if decision not in ("distinct", "same"):
        raise DomainError("decision must be 'distinct' or 'same'", code="invalid_request")
    flag = session.get(DuplicateFlag, flag_id)
    if flag is None:
        raise NotFound(f"duplicate flag {flag_id} not found")
    _owned(session, flag.beneficiary_id, actor, "cases.write")
    flag.status, flag.resolved_by, flag.resolved_at = decision, actor.id, now
    return _flag_dict(flag)


def _flag_dict(flag):
    return {"id": flag.id, "beneficiary_id": flag.beneficiary_id, "other_id": flag.other_id,
            "reasons": list(flag.reasons), "status": flag.status, "created_at": _iso(flag.created_at)}


# --- listening sessions and reading -------------------------------------------------------------


def add_session(session, keyring, beneficiary_id, data, actor, now):
    beneficiary = _owned(session, beneficiary_id, actor, "cases.write")
    cipher = _cipher(keyring, beneficiary)
    listening = _add_session(session, beneficiary.id, cipher, data, actor, now)
    _audit(session, beneficiary_id, actor, "add_session", [f for f in SESSION_FIELDS if data.get(f)], now)
    return {"id": listening["id"], "beneficiary_id": beneficiary_id}


def _add_session(session, beneficiary_id, cipher, data, actor, now):
    """Insert a listening session (a Core statement); returns its {"id", "needs", "urgency"}."""
    listening = {"id": new_id("s"), "needs": list(dict.fromkeys(data.get("needs") or [])),
                 "urgency": data.get("urgency") or "normal"}
    session.execute(insert(ListeningSession.__table__).values(
        beneficiary_id=beneficiary_id, staff_id=actor.id, held_at=data.get("held_at") or now,
        enc_orientation=cipher.encrypt("orientation", _blank_to_none(data.get("orientation"))),
        enc_notes=cipher.encrypt("notes", _blank_to_none(data.get("notes"))), **listening))
    return listening


def get_beneficiary(session, keyring, beneficiary_id, actor, now, *, permission="cases.read"):
    """Her decrypted record, for staff of her own association only; the access is audited."""
    beneficiary = _owned(session, beneficiary_id, actor, permission)
    record = {"id": beneficiary.id, "association": beneficiary.association, "kind": beneficiary.kind,
              "schooled": beneficiary.schooled, "city": beneficiary.city, "language": beneficiary.language,
              "registered_at": _iso(beneficiary.registered_at), "registered_by": beneficiary.registered_by,
              "erased": beneficiary.erased_at is not None}
    if beneficiary.erased_at is not None:
        _audit(session, beneficiary_id, actor, "read", [], now, detail="erased")
        return record
    cipher = _cipher(keyring, beneficiary)
    for field in PERSONAL_FIELDS:
        record[field] = cipher.decrypt(field, getattr(beneficiary, f"enc_{field}"))
    if record["birth_year"] is not None:
        record["birth_year"] = int(record["birth_year"])
    record["sessions"] = [
        {"id": s.id, "held_at": _iso(s.held_at), "staff_id": s.staff_id, "needs": list(s.needs),
         "urgency": s.urgency, "orientation": cipher.decrypt("orientation", s.enc_orientation),
         "notes": cipher.decrypt("notes", s.enc_notes)}
        for s in beneficiary.sessions
    ]
    record["consents"] = [_consent_dict(c, now) for c in beneficiary.consents]
    record["possible_duplicates"] = [f for f in list_duplicate_flags(session, beneficiary_id, actor, now,
                                                                     permission=permission)
                                     if f["status"] == "open"]
    _audit(session, beneficiary_id, actor, "read", list(PERSONAL_FIELDS + SESSION_FIELDS), now)
    return record


def list_beneficiaries(session, keyring, actor, *, phone=None, name=None, kind=None, registered_since=None, limit=None,
                       cursor=None):
    """One page of her association's records, newest first: ids and coarse fields, no personal data.

    `phone` or `name` narrow it to the records carrying that value, found through the blind index
    (exact after normalisation: any phone format, any case or diacritics). Personal fields stay
    encrypted here; opening a record (get_beneficiary) is the audited read. Erased records are not listed.
    `kind` and `registered_since` (a date, Casablanca midnight) narrow it further.
    """
    actor.require("cases.read")
    query = select(Beneficiary).where(Beneficiary.association == actor.association, Beneficiary.erased_at.is_(None))
    if kind:
        query = query.where(Beneficiary.kind == kind)
    if registered_since:
        start = datetime.combine(registered_since, time.min, tzinfo=CASABLANCA).astimezone(timezone.utc)
        query = query.where(Beneficiary.registered_at >= start)
    searched = []
    if phone:
        searched.append(("phone", matching.normalise_phone(phone)))
    if name:
        searched.append(("name", matching.normalise_name(name)))
    for key, value in searched:
        if not value:
            raise DomainError(f"the {key} to search for is not readable", code="invalid_request")
        digest = keyring.blind_index(key, value)
        query = query.where(Beneficiary.id.in_(select(BlindIndex.beneficiary_id).where(
            BlindIndex.association == actor.association, BlindIndex.kind == key, BlindIndex.value == digest)))
    scope = ("beneficiaries", actor.association, [(key, keyring.blind_index(key, value)) for key, value in searched],
             kind, str(registered_since or ""))
    rows, next_cursor = paging.page_descending(session, query, (Beneficiary.registered_at, Beneficiary.id), scope,
                                               limit, cursor)
    return {"items": [{"id": b.id, "kind": b.kind, "city": b.city, "language": b.language,
                       "registered_at": _iso(b.registered_at), "registered_by": b.registered_by} for b in rows],
            "next": next_cursor}


def _owned(session, beneficiary_id, actor, permission="cases.read"):
    """Her record, for an actor of her association whose role holds `permission` (else Forbidden, audited upstream)."""
    beneficiary = session.get(Beneficiary, beneficiary_id)
    if beneficiary is None:
        raise NotFound(f"beneficiary {beneficiary_id} not found")
    if beneficiary.association != actor.association:
        # Same answer as a missing record would leak existence; Forbidden is explicit and is audited upstream.
        raise Forbidden("this beneficiary belongs to another association", details={"reason": "other_association"})
    actor.require(permission)
    return beneficiary


def _cipher(keyring, beneficiary):
    if beneficiary.erased_at is not None or beneficiary.wrapped_key is None:
        raise Forbidden("this beneficiary's personal data was erased", details={"reason": "erased"})
    return FieldCipher(keyring.unwrap(beneficiary.wrapped_key, beneficiary.id), beneficiary.id)


def _audit(session, beneficiary_id, actor, action, fields, now, detail=""):
    audit.append(session, beneficiary_id=beneficiary_id, staff_id=actor.id, association=actor.association,
                 action=action, fields=list(fields), detail=detail, at=now)


def record_refusal(session, beneficiary_id, actor, action, error, now):
    """Audit a refused attempt (its own unit of work: the refused one was rolled back)."""
    _audit(session, beneficiary_id, actor, action, [], now, detail=f"refused: {refusal_reason(error)}")


ROUTE_REFUSED = "route_refused"  # a gateway route refused: who, which route, when (no record, no personal data)


def record_route_refusal(session, actor, method, route, reason, now):
    """Audit a web route the gateway (or the service behind it) refused to `actor` for role or association
    reasons: the route's pattern, never its values; the chain is the one `tansiq audit verify` checks."""
    _audit(session, "", actor, ROUTE_REFUSED, [], now, detail=f"refused: {method} {route} ({reason})"[:300])


def route_refusals(session, since):
    """[(staff id, association, at, detail)] of the route refusals since `since`, oldest first."""
    rows = session.execute(select(AuditEntry.staff_id, AuditEntry.association, AuditEntry.at, AuditEntry.detail)
                           .where(AuditEntry.action == ROUTE_REFUSED, AuditEntry.at >= since)
                           .order_by(AuditEntry.id)).all()
    return [tuple(row) for row in rows]


def refusal_reason(error):
    """The precise reason of a Forbidden (its code is the generic 'forbidden' unless it is 'no_consent')."""
    return error.details.get("reason") or error.code


def audit_trail(session, beneficiary_id, actor, now, *, permission="cases.read"):
    _owned(session, beneficiary_id, actor, permission)
    entries = session.scalars(select(AuditEntry).where(AuditEntry.beneficiary_id == beneficiary_id)
                              .order_by(AuditEntry.id)).all()
    return [_audit_dict(e) for e in entries]


def audit_page(session, beneficiary_id, actor, now, *, limit=None, cursor=None):
    """One page of her audit trail, newest first: {"items", "next"} (tansiq.paging)."""
    _owned(session, beneficiary_id, actor)
    query = select(AuditEntry).where(AuditEntry.beneficiary_id == beneficiary_id)
    rows, next_cursor = paging.page_descending(session, query, (AuditEntry.id,), ("audit", beneficiary_id),
                                               limit, cursor)
    return {"items": [_audit_dict(e) for e in rows], "next": next_cursor}


def _audit_dict(entry):
    return {"staff_id": entry.staff_id, "association": entry.association, "action": entry.action,
            "fields": list(entry.fields), "detail": entry.detail, "at": _iso(entry.at)}


# --- consents ----------------------------------------------------------------------------------


def record_consent(session, beneficiary_id, data, actor, now):
    """`data` is loaded by schemas.ConsentSchema."""
    beneficiary = _owned(session, beneficiary_id, actor, "cases.write")
    if beneficiary.erased_at is not None:
        raise Forbidden("this beneficiary's personal data was erased", details={"reason": "erased"})
    if data.get("expires_at") and _aware(data["expires_at"]) <= now:
        raise DomainError("a consent must expire in the future", code="invalid_request")
    consent = SimpleNamespace(
        id=new_id("c"), beneficiary_id=beneficiary_id, association=beneficiary.association, purpose=data["purpose"],
        fields=sorted(set(data["fields"])), recipient_association=data.get("recipient_association"),
        recipient_category=data.get("recipient_category"), given_at=now, expires_at=data.get("expires_at"),
        recorded_by=actor.id,
    )
    session.execute(insert(Consent.__table__).values(vars(consent)))  # Core: no ORM object, no flush
    consent.revoked_at = None
    _audit(session, beneficiary_id, actor, "record_consent", consent.fields, now, detail=consent.id)
    return _consent_dict(consent, now)


def revoke_consent(session, consent_id, actor, now):
    """Revoke; the event names every association that received data under this consent."""
    consent = session.get(Consent, consent_id)
    if consent is None:
        raise NotFound(f"consent {consent_id} not found")
    _owned(session, consent.beneficiary_id, actor, "cases.write")
    if consent.revoked_at is None:
        _revoke(session, consent, actor, now)
    return _consent_dict(consent, now)


def _revoke(session, consent, actor, now):
    consent.revoked_at, consent.revoked_by = now, actor.id
    recipients = sorted(set(session.scalars(
        select(Disclosure.recipient_association).where(Disclosure.consent_id == consent.id))))
    outbox.add(session, contracts.make("ma.tansiq.consent.revoked.v1", SOURCE, {
        "consent_id": consent.id, "beneficiary_id": consent.beneficiary_id, "association": consent.association,
        "recipients": recipients, "revoked_at": now.isoformat(),
    }))
    _audit(session, consent.beneficiary_id, actor, "revoke_consent", [], now, detail=consent.id)


def _consent_dict(consent, now):
    return {"id": consent.id, "beneficiary_id": consent.beneficiary_id, "purpose": consent.purpose,
            "fields": list(consent.fields), "recipient_association": consent.recipient_association,
            "recipient_category": consent.recipient_category, "given_at": _iso(consent.given_at),
            "expires_at": _iso(consent.expires_at), "revoked_at": _iso(consent.revoked_at),
            "valid": _valid(consent, now)}


def _aware(moment):
    # SQLite hands back naive datetimes (stored as UTC): make them comparable with `now`.
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _iso(moment):
    return _aware(moment).isoformat() if moment is not None else None


def _valid(consent, now):
    return consent.revoked_at is None and (consent.expires_at is None or _aware(consent.expires_at) > now)


def _covers(consent, recipient, category, fields, recipient_offers):
    if not _valid_fields(consent, fields) or consent.purpose != category:
        return False
    if consent.recipient_association:
        return consent.recipient_association == recipient
    # "Any partner offering <category>": the referral targets a service of that category; the directory
    # check is optional here (the service passes it) because the referral side already picked the service.
    return consent.recipient_category == category and (
        recipient_offers is None or recipient_offers(recipient, category))


def _valid_fields(consent, fields):
    return set(fields) <= set(consent.fields)


# --- sharing for a referral ----------------------------------------------------------------------


def prepare_referral_share(session, keyring, beneficiary_id, recipient_association, category, fields, actor, now, *,
                           override_reason=None, recipient_offers=None, seal_for=None):
    """The chosen fields for a referral — only under a consent or a recorded override.

    Returns {"consent_id", "fields", "override", "shared": {field: value}} and records the disclosure.
    With `seal_for` ({"reader", "key", "context"}: the recipient and its public encryption key) the values
    leave intake sealed to the recipient alone: "sealed_shared" instead of "shared".
    The actor is the case worker making the referral (her assertion, forwarded by referrals).
    """
    if seal_for is not None:
        if seal_for.get("reader") != recipient_association:
            raise DomainError("values are sealed to the recipient only", code="invalid_request")
        try:
            sealing.load_public_key(seal_for.get("key") or "")
        except ValueError as exc:
            raise DomainError(str(exc), code="invalid_request") from None
    fields = list(dict.fromkeys(fields))
    unknown = set(fields) - set(SHAREABLE_FIELDS)
    if unknown:
        raise DomainError(f"fields cannot be shared: {', '.join(sorted(unknown))}", code="invalid_request")
    beneficiary = session.get(Beneficiary, beneficiary_id)
    if beneficiary is None:
        raise NotFound(f"beneficiary {beneficiary_id} not found")
    _owned(session, beneficiary_id, actor, "referrals.act")
    cipher = _cipher(keyring, beneficiary)

    consent = next((c for c in sorted(beneficiary.consents, key=lambda c: c.given_at, reverse=True)
                    if _valid(c, now) and _covers(c, recipient_association, category, fields, recipient_offers)), None)
    override = consent is None
    if override:
        if not override_reason or not override_reason.strip():
            raise Forbidden("no valid consent covers this recipient, purpose and fields", code="no_consent")
        if not actor.can("cases.share_without_consent"):
            raise Forbidden("only a coordinator or an admin may share without consent",
                            details={"reason": "override_not_allowed"})

    shared = {field: _shareable_value(session, beneficiary, cipher, field) for field in fields}
    session.execute(insert(Disclosure.__table__).values(
        beneficiary_id=beneficiary_id, consent_id=consent.id if consent else None,
        recipient_association=recipient_association, category=category, fields=fields, staff_id=actor.id, at=now,
        override=override,
        # The reason often tells her story: encrypted with her key like her other personal data.
        enc_override_reason=cipher.encrypt("override_reason", override_reason.strip()) if override else None,
    ))
    _audit(session, beneficiary_id, actor, "override_share" if override else "share", fields, now,
           detail=f"to {recipient_association} for {category}")
    answer = {"consent_id": consent.id if consent else None, "fields": fields, "override": override}
    if seal_for is None:
        return {**answer, "shared": shared}
    return {**answer, "sealed_shared": sealing.seal(shared, {seal_for["reader"]: seal_for["key"]},
                                                    seal_for["context"])}


def recheck_repeated_share(session, beneficiary_id, first, actor, now):
    """A repeated share (the same key: referrals retrying) is answered from its first result only while what
    that share rested on still holds: her record is still this actor's to refer, and its consent is neither
    revoked nor expired (or the override is still hers to make). Otherwise refused as a first share would be:
    a revocation made between the two must stop the referral, not be bypassed by the stored answer."""
    _owned(session, beneficiary_id, actor, "referrals.act")
    if first.get("override"):
        if not actor.can("cases.share_without_consent"):
            raise Forbidden("only a coordinator or an admin may share without consent",
                            details={"reason": "override_not_allowed"})
        return
    consent = session.get(Consent, first.get("consent_id") or "")
    if consent is None or consent.beneficiary_id != beneficiary_id or not _valid(consent, now):
        raise Forbidden("the consent this share rested on has been revoked or has expired", code="no_consent")


def _shareable_value(session, beneficiary, cipher, field):
    if field in ("first_name", "last_name"):
        # Latin script if written, else the Arabic one: the recipient needs a name either way.
        return (cipher.decrypt(field, getattr(beneficiary, f"enc_{field}"))
                or cipher.decrypt(f"{field}_ar", getattr(beneficiary, f"enc_{field}_ar")))
    if field == "phone":
        return cipher.decrypt("phone", beneficiary.enc_phone)
    if field == "birth_year":
        year = cipher.decrypt("birth_year", beneficiary.enc_birth_year)
        birth_date = cipher.decrypt("birth_date", beneficiary.enc_birth_date)
        return int(year) if year else (int(birth_date[:4]) if birth_date else None)
    if field in ("city", "language"):
        return getattr(beneficiary, field)
    if field == "needs":
        return sorted({need for s in beneficiary.sessions for need in s.needs})
    if field == "notes":
        latest = beneficiary.sessions[-1] if beneficiary.sessions else None
        return cipher.decrypt("notes", latest.enc_notes) if latest else None
    raise DomainError(f"field {field} cannot be shared", code="invalid_request")


def list_disclosures(session, keyring, beneficiary_id, actor, now, *, permission="cases.read"):
    """Where her data went (for her association: answering her, or checking overrides); audited."""
    beneficiary = _owned(session, beneficiary_id, actor, permission)
    cipher = None if beneficiary.erased_at else _cipher(keyring, beneficiary)
    rows = session.scalars(select(Disclosure).where(Disclosure.beneficiary_id == beneficiary_id)
                           .order_by(Disclosure.id)).all()
    _audit(session, beneficiary_id, actor, "read_disclosures", ["override_reason"], now)
    return [_disclosure_dict(d, cipher) for d in rows]


def disclosures_page(session, keyring, beneficiary_id, actor, now, *, limit=None, cursor=None):
    """One page of where her data went, newest first: {"items", "next"} (tansiq.paging); audited."""
    beneficiary = _owned(session, beneficiary_id, actor)
    cipher = None if beneficiary.erased_at else _cipher(keyring, beneficiary)
    query = select(Disclosure).where(Disclosure.beneficiary_id == beneficiary_id)
    rows, next_cursor = paging.page_descending(session, query, (Disclosure.id,), ("disclosures", beneficiary_id),
                                               limit, cursor)
    _audit(session, beneficiary_id, actor, "read_disclosures", ["override_reason"], now)
    return {"items": [_disclosure_dict(d, cipher) for d in rows], "next": next_cursor}


def _disclosure_dict(disclosure, cipher):
    d = disclosure
    return {"id": d.id, "consent_id": d.consent_id, "recipient_association": d.recipient_association,
            "category": d.category, "fields": list(d.fields), "staff_id": d.staff_id, "at": _iso(d.at),
            "override": d.override,
            "override_reason": cipher.decrypt("override_reason", d.enc_override_reason) if cipher else None}


# --- erasure -------------------------------------------------------------------------------------


def erase_beneficiary(session, beneficiary_id, actor, now):
    """Destroy her data key (nothing can be decrypted afterwards) and her blind indexes.

    Active consents are revoked first, so every association that received data is told to erase it.
    """
    beneficiary = _owned(session, beneficiary_id, actor, "cases.erase")
    if beneficiary.erased_at is not None:
        return {"id": beneficiary_id, "erased_at": _iso(beneficiary.erased_at)}
    for consent in beneficiary.consents:
        if consent.revoked_at is None:
            _revoke(session, consent, actor, now)
    beneficiary.wrapped_key = None
    for field in PERSONAL_FIELDS:
        setattr(beneficiary, f"enc_{field}", None)  # belt and braces: the key is already gone
    for listening in beneficiary.sessions:
        listening.enc_orientation = listening.enc_notes = None
    for disclosure in session.scalars(select(Disclosure).where(Disclosure.beneficiary_id == beneficiary_id)):
        disclosure.enc_override_reason = None
    for index in session.scalars(select(BlindIndex).where(BlindIndex.beneficiary_id == beneficiary_id)):
        session.delete(index)
    audit.erase_details(session, beneficiary_id)
    commands.forget_results(session, [beneficiary_id])  # her record as idempotent commands first answered it
    beneficiary.erased_at, beneficiary.erased_by = now, actor.id
    _audit(session, beneficiary_id, actor, "erase", list(PERSONAL_FIELDS + SESSION_FIELDS), now)
    # Referrals (consented or overridden) and notifications end their copies too.
    outbox.add(session, contracts.make("ma.tansiq.beneficiary.erased.v1", SOURCE, {
        "beneficiary_id": beneficiary_id, "association": beneficiary.association, "erased_at": now.isoformat()}))
    return {"id": beneficiary_id, "erased_at": now.isoformat()}


# --- her right of access (law 09-08) and key rotation ---------------------------------------------


def export_beneficiary(session, keyring, beneficiary_id, actor, now):
    """Everything this service holds about her, decrypted, for her right of access; `cases.export` (admins), audited."""
    permission = "cases.export"
    _owned(session, beneficiary_id, actor, permission)
    record = get_beneficiary(session, keyring, beneficiary_id, actor, now, permission=permission)
    record["disclosures"] = list_disclosures(session, keyring, beneficiary_id, actor, now, permission=permission)
    record["consents"] = [_consent_dict(c, now) for c in _owned(session, beneficiary_id, actor, permission).consents]
    _audit(session, beneficiary_id, actor, "export", [], now)
    session.flush()
    record["audit_trail"] = audit_trail(session, beneficiary_id, actor, now, permission=permission)
    return record


def rekey(session, keyring, new_keyring):
    """Master-key rotation: every data key rewrapped, every blind index recomputed. Returns how many records."""
    count = 0
    for beneficiary in session.scalars(select(Beneficiary).where(Beneficiary.wrapped_key.is_not(None))).all():
        cipher = _cipher(keyring, beneficiary)
        values = {field: cipher.decrypt(field, getattr(beneficiary, f"enc_{field}")) for field in PERSONAL_FIELDS}
        if values.get("birth_date"):
            values["birth_date"] = date.fromisoformat(values["birth_date"])
        beneficiary.wrapped_key = keyring.rewrap(beneficiary.wrapped_key, beneficiary.id, new_keyring)
        for index in session.scalars(select(BlindIndex).where(BlindIndex.beneficiary_id == beneficiary.id)).all():
            session.delete(index)
        session.flush()
        session.add_all(BlindIndex(beneficiary_id=beneficiary.id, association=beneficiary.association, kind=kind,
                                   value=value) for kind, value in _blind_indexes(new_keyring, values))
        count += 1
    session.flush()
    return count
