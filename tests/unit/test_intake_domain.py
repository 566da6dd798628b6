"""Intake domain on a real database: SQLite file, and PostgreSQL (throwaway database) when marked."""

import json
import os
from datetime import date, datetime, timedelta, timezone

import pytest
from actors import actor  # tests/actors.py
from fixtures.databases import BACKENDS, throwaway_engine
from sqlalchemy import inspect, select, text

from services.intake import domain
from services.intake.models import AuditEntry, Beneficiary, BlindIndex, Disclosure, DuplicateFlag, create_all
from services.intake.schemas import BeneficiarySchema, ConsentSchema
from tansiq import contracts, sealing
from tansiq.crypto import FieldCipher, KeyDestroyed, KeyRing
from tansiq.db import session_scope
from tansiq.envelope import parse
from tansiq.errors import DomainError, Forbidden, NotFound
from tansiq.messaging.store import OutboxMessage

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
SAFI_WORKER = actor({"id": "s-1", "association": "amal-safi", "roles": ["case_worker"]})
SAFI_COORD = actor({"id": "s-2", "association": "amal-safi", "roles": ["case_worker", "coordinator"]})
SAFI_ADMIN = actor({"id": "s-3", "association": "amal-safi", "roles": ["admin"]})
OTHER_WORKER = actor({"id": "s-9", "association": "wafae-marrakech", "roles": ["case_worker", "admin"]})
KHADIJA = {"first_name": "Khadija", "last_name": "Benali", "phone": "0612345678", "birth_date": "1990-04-12",
           "city": "Safi", "language": "ar", "kind": "survivor", "needs": ["legal_orientation", "shelter"],
           "urgency": "urgent", "orientation": "Orientée vers avocate", "notes": "Violences conjugales depuis 2019"}
SECRETS = ("Khadija", "Benali", "612345678", "1990-04-12", "avocate", "Violences")


@pytest.fixture(params=BACKENDS)
def engine(request, tmp_path):
    with throwaway_engine(request.param, tmp_path, create_all, "intake") as engine:
        yield engine


@pytest.fixture
def keyring():
    return KeyRing(os.urandom(32))


@pytest.fixture
def intake(engine, keyring):
    """Call a domain function in its own committed unit of work, as service.py does."""

    def call(function, *args, **kwargs):
        with session_scope(engine) as session:
            return function(session, *args, **kwargs)

    return call


def register(intake, keyring, payload=KHADIJA, staff=SAFI_WORKER, now=NOW):
    return intake(domain.register_beneficiary, keyring, BeneficiarySchema().load(payload), staff, now)


def consent(intake, beneficiary_id, staff=SAFI_WORKER, **payload):
    payload.setdefault("purpose", "legal_orientation")
    payload.setdefault("fields", ["first_name", "phone"])
    return intake(domain.record_consent, beneficiary_id, ConsentSchema().load(payload), staff, NOW)


def share(intake, keyring, beneficiary_id, recipient="wafae-marrakech", category="legal_orientation",
          fields=("first_name",), staff=SAFI_WORKER, now=NOW, **kwargs):
    return intake(domain.prepare_referral_share, keyring, beneficiary_id, recipient, category, list(fields),
                  staff, now, **kwargs)


def outbox_messages(engine, type_):
    with session_scope(engine) as session:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.type == type_).order_by(OutboxMessage.seq))
        return [(row.body, parse(row.body.encode())) for row in rows]


def all_rows_text(engine):
    """Every value of every table as text, to look for leaked plaintext."""
    chunks = []
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    chunks.append(bytes(value).decode("latin-1") if isinstance(value, (bytes, memoryview))
                                  else str(value))
    return "\n".join(chunks)


# --- registration and encryption at rest ---------------------------------------------------------


def test_personal_fields_encrypted_at_rest(engine, intake, keyring):
    result = register(intake, keyring)
    dump = all_rows_text(engine)
    assert result["id"] in dump  # the scan does see the rows
    for secret in SECRETS:
        assert secret not in dump
    with engine.connect() as connection:
        row = connection.execute(text("SELECT enc_first_name, enc_phone FROM beneficiary")).one()
    assert row.enc_first_name and b"Khadija" not in bytes(row.enc_first_name)

    record = intake(domain.get_beneficiary, keyring, result["id"], SAFI_WORKER, NOW)
    assert (record["first_name"], record["last_name"], record["phone"]) == ("Khadija", "Benali", "0612345678")
    assert record["birth_date"] == "1990-04-12"
    assert record["sessions"][0]["notes"] == KHADIJA["notes"]
    assert record["sessions"][0]["needs"] == ["legal_orientation", "shelter"]


def test_registered_event_carries_no_personal_data(engine, intake, keyring):
    result = register(intake, keyring)
    [(body, envelope)] = outbox_messages(engine, "ma.tansiq.beneficiary.registered.v1")
    for secret in SECRETS:
        assert secret not in body
    assert contracts.validate(envelope).data == {
        "beneficiary_id": result["id"], "association": "amal-safi", "registered_by": "s-1", "urgency": "urgent",
        "needs": ["legal_orientation", "shelter"], "city": "Safi", "possible_duplicate_of": [],
    }


def test_failed_registration_leaves_no_row_and_no_message(engine, intake, keyring):
    with pytest.raises(RuntimeError):
        with session_scope(engine) as session:
            domain.register_beneficiary(session, keyring, BeneficiarySchema().load(KHADIJA), SAFI_WORKER, NOW)
            raise RuntimeError("crash before commit")
    with session_scope(engine) as session:
        assert session.scalars(select(Beneficiary)).all() == []
        assert session.scalars(select(OutboxMessage)).all() == []


def test_other_association_cannot_read(intake, keyring):
    result = register(intake, keyring)
    with pytest.raises(Forbidden) as refused:
        intake(domain.get_beneficiary, keyring, result["id"], OTHER_WORKER, NOW)
    assert refused.value.code == "forbidden" and domain.refusal_reason(refused.value) == "other_association"
    with pytest.raises(Forbidden):
        share(intake, keyring, result["id"], recipient="amal-safi", staff=OTHER_WORKER, override_reason="urgence")
    with pytest.raises(NotFound):
        intake(domain.get_beneficiary, keyring, "b-missing", SAFI_WORKER, NOW)


def test_every_access_to_personal_data_is_audited(engine, intake, keyring):
    result = register(intake, keyring)
    intake(domain.get_beneficiary, keyring, result["id"], SAFI_COORD, NOW + timedelta(hours=1))
    trail = intake(domain.audit_trail, result["id"], SAFI_WORKER, NOW)
    assert [(e["action"], e["staff_id"]) for e in trail] == [("register", "s-1"), ("read", "s-2")]
    assert "first_name" in trail[1]["fields"] and trail[1]["at"].startswith("2026-11-30T10:00")


@pytest.mark.parametrize("roles", [["coordinator"], ["events_manager"], ["admin"], ["coordinator", "admin"]])
def test_roles_without_case_work_see_no_case_detail(engine, intake, keyring, roles):
    """Only case workers open her record: the coordinator, events manager and admin of her own association
    read nothing (record, audit, disclosures, duplicates) and change nothing; each refusal is audited."""
    beneficiary = register(intake, keyring)["id"]
    given = consent(intake, beneficiary, recipient_association="wafae-marrakech")
    colleague = actor({"id": "s-5", "association": "amal-safi", "roles": roles})
    attempts = [(domain.get_beneficiary, keyring, beneficiary), (domain.audit_trail, beneficiary),
                (domain.list_disclosures, keyring, beneficiary), (domain.list_duplicate_flags, beneficiary),
                (domain.revoke_consent, given["id"]),
                (domain.add_session, keyring, beneficiary, {"needs": ["shelter"]}),
                (domain.record_consent, beneficiary, {"purpose": "shelter", "fields": ["first_name"]})]
    for function, *args in attempts:
        with pytest.raises(Forbidden) as refused:
            intake(function, *args, colleague, NOW)
        assert domain.refusal_reason(refused.value) == "role_required", function.__name__
    with pytest.raises(Forbidden):
        register(intake, keyring, staff=colleague)
    with pytest.raises(Forbidden):
        share(intake, keyring, beneficiary, staff=colleague, override_reason="urgence")


# --- erasure --------------------------------------------------------------------------------------


def test_erasure_makes_data_unreadable(engine, intake, keyring):
    result = register(intake, keyring)
    with engine.connect() as connection:  # what a backup taken before the erasure would hold
        before = connection.execute(text("SELECT enc_first_name FROM beneficiary")).scalar_one()
    with pytest.raises(Forbidden):  # a case worker may not erase
        intake(domain.erase_beneficiary, result["id"], SAFI_WORKER, NOW)

    intake(domain.erase_beneficiary, result["id"], SAFI_ADMIN, NOW)

    with session_scope(engine) as session:
        erased = session.get(Beneficiary, result["id"])
        assert erased.wrapped_key is None and erased.erased_at is not None
        with pytest.raises(KeyDestroyed):
            FieldCipher(keyring.unwrap(erased.wrapped_key, erased.id), erased.id).decrypt("first_name", before)
        assert session.scalars(select(BlindIndex)).all() == []  # HMACs of her name/phone go too
    record = intake(domain.get_beneficiary, keyring, result["id"], SAFI_WORKER, NOW)
    assert record["erased"] and "first_name" not in record
    with pytest.raises(Forbidden) as refused:
        share(intake, keyring, result["id"], staff=SAFI_COORD, override_reason="urgence")
    assert domain.refusal_reason(refused.value) == "erased"
    for secret in SECRETS:
        assert secret not in all_rows_text(engine)


# --- her right of access ---------------------------------------------------------------------------


def test_export_needs_the_export_permission_of_her_own_association(engine, intake, keyring):
    """cases.export (admins): a case worker, a coordinator and another association's admin are refused,
    each refusal in the role's terms; her association's admin gets everything, decrypted, and it is audited."""
    beneficiary = register(intake, keyring)["id"]
    consent(intake, beneficiary, recipient_association="wafae-marrakech")
    for who, reason in ((SAFI_WORKER, "role_required"), (SAFI_COORD, "role_required"),
                        (OTHER_WORKER, "other_association")):
        with pytest.raises(Forbidden) as refused:
            intake(domain.export_beneficiary, keyring, beneficiary, who, NOW)
        assert domain.refusal_reason(refused.value) == reason
    exported = intake(domain.export_beneficiary, keyring, beneficiary, SAFI_ADMIN, NOW)
    assert (exported["first_name"], exported["phone"]) == ("Khadija", "0612345678")
    assert [c["recipient_association"] for c in exported["consents"]] == ["wafae-marrakech"]
    assert exported["audit_trail"][-1]["action"] == "export" and exported["audit_trail"][-1]["staff_id"] == "s-3"
    json.dumps(exported)


# --- consent and sharing ---------------------------------------------------------------------------


def test_consent_covers_recipient_purpose_and_fields(engine, intake, keyring):
    beneficiary = register(intake, keyring)["id"]
    given = consent(intake, beneficiary, recipient_association="wafae-marrakech",
                    fields=["first_name", "phone", "needs"], expires_at="2027-01-01T00:00:00+00:00")

    shared = share(intake, keyring, beneficiary, fields=["first_name", "phone", "needs"])
    assert shared == {"consent_id": given["id"], "override": False, "fields": ["first_name", "phone", "needs"],
                      "shared": {"first_name": "Khadija", "phone": "0612345678",
                                 "needs": ["legal_orientation", "shelter"]}}
    with session_scope(engine) as session:
        [disclosure] = session.scalars(select(Disclosure)).all()
        assert (disclosure.recipient_association, disclosure.fields, disclosure.consent_id, disclosure.staff_id) == (
            "wafae-marrakech", ["first_name", "phone", "needs"], given["id"], "s-1")


def test_shared_values_leave_intake_sealed_to_the_recipient_alone(intake, keyring):
    beneficiary = register(intake, keyring)["id"]
    consent(intake, beneficiary, recipient_association="wafae-marrakech", fields=["first_name", "phone"])
    recipient = sealing.generate_private_key()
    seal_for = {"reader": "wafae-marrakech", "key": sealing.public_key_b64(recipient), "context": "referral:r-1:shared"}
    answer = share(intake, keyring, beneficiary, fields=["first_name", "phone"], seal_for=seal_for)
    assert "shared" not in answer and "Khadija" not in json.dumps(answer)
    assert sealing.open_sealed(answer["sealed_shared"], "wafae-marrakech", recipient, "referral:r-1:shared") == {
        "first_name": "Khadija", "phone": "0612345678"}
    with pytest.raises(DomainError):  # sealed to anyone but the recipient: refused
        share(intake, keyring, beneficiary, fields=["first_name"], seal_for={**seal_for, "reader": "nour-safi"})
    with pytest.raises(DomainError):
        share(intake, keyring, beneficiary, fields=["first_name"], seal_for={**seal_for, "key": "bm90IGEga2V5"})


@pytest.mark.parametrize("change", [
    {"fields": ["first_name", "notes"]},            # a field the consent does not cover
    {"recipient": "ennakhil-casa"},                 # another association
    {"category": "psychological_support"},          # another purpose
    {"now": datetime(2027, 1, 2, tzinfo=timezone.utc)},  # after expiry
])
def test_share_refused_without_covering_consent(engine, intake, keyring, change):
    beneficiary = register(intake, keyring)["id"]
    consent(intake, beneficiary, recipient_association="wafae-marrakech", fields=["first_name", "phone"],
            expires_at="2027-01-01T00:00:00+00:00")
    with pytest.raises(Forbidden) as refused:
        share(intake, keyring, beneficiary, **change)
    assert refused.value.code == "no_consent"
    with session_scope(engine) as session:
        assert session.scalars(select(Disclosure)).all() == []


def test_consent_for_any_partner_offering_a_category(intake, keyring):
    beneficiary = register(intake, keyring)["id"]
    consent(intake, beneficiary, recipient_category="legal_orientation")
    offers = {("wafae-marrakech", "legal_orientation")}
    assert share(intake, keyring, beneficiary, recipient_offers=lambda a, c: (a, c) in offers)["override"] is False
    with pytest.raises(Forbidden):
        share(intake, keyring, beneficiary, recipient="ennakhil-casa", recipient_offers=lambda a, c: (a, c) in offers)


def test_override_needs_role_and_reason_and_is_recorded(engine, intake, keyring):
    beneficiary = register(intake, keyring)["id"]
    with pytest.raises(Forbidden) as refused:
        share(intake, keyring, beneficiary, override_reason="danger immédiat")
    assert domain.refusal_reason(refused.value) == "override_not_allowed"
    for reason in (None, "   "):
        with pytest.raises(Forbidden) as refused:
            share(intake, keyring, beneficiary, staff=SAFI_COORD, override_reason=reason)
        assert refused.value.code == "no_consent"

    result = share(intake, keyring, beneficiary, staff=SAFI_COORD, override_reason="danger immédiat",
                   fields=["first_name", "phone"])
    assert result == {"consent_id": None, "override": True, "fields": ["first_name", "phone"],
                      "shared": {"first_name": "Khadija", "phone": "0612345678"}}
    [disclosure] = intake(domain.list_disclosures, keyring, beneficiary, SAFI_WORKER, NOW)
    assert (disclosure["override"], disclosure["override_reason"], disclosure["staff_id"]) == (
        True, "danger immédiat", "s-2")
    with session_scope(engine) as session:
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "override_share")).one()
        assert audit.staff_id == "s-2" and audit.detail == "to wafae-marrakech for legal_orientation"
    assert "danger" not in all_rows_text(engine)  # the reason may tell her story: encrypted too


def test_revocation_lists_every_recipient_and_stops_sharing(engine, intake, keyring):
    beneficiary = register(intake, keyring)["id"]
    given = consent(intake, beneficiary, recipient_category="legal_orientation")
    other = consent(intake, beneficiary, recipient_association="ennakhil-casa", purpose="shelter")
    share(intake, keyring, beneficiary, recipient="wafae-marrakech")
    share(intake, keyring, beneficiary, recipient="adala-rabat")
    share(intake, keyring, beneficiary, recipient="ennakhil-casa", category="shelter")  # under the other consent

    revoked = intake(domain.revoke_consent, given["id"], SAFI_WORKER, NOW + timedelta(days=1))
    assert revoked["valid"] is False and revoked["revoked_at"]
    [(body, envelope)] = outbox_messages(engine, "ma.tansiq.consent.revoked.v1")
    data = contracts.validate(envelope).data
    assert data["recipients"] == ["adala-rabat", "wafae-marrakech"]
    assert (data["consent_id"], data["beneficiary_id"], data["association"]) == (given["id"], beneficiary, "amal-safi")
    assert "Khadija" not in body
    with pytest.raises(Forbidden):
        share(intake, keyring, beneficiary, recipient="wafae-marrakech", now=NOW + timedelta(days=2))
    shared = share(intake, keyring, beneficiary, recipient="ennakhil-casa", category="shelter")
    assert shared["consent_id"] == other["id"]
    with pytest.raises(Forbidden):
        intake(domain.revoke_consent, given["id"], OTHER_WORKER, NOW)


def test_erasure_revokes_active_consents(engine, intake, keyring):
    beneficiary = register(intake, keyring)["id"]
    consent(intake, beneficiary, recipient_association="wafae-marrakech")
    share(intake, keyring, beneficiary)
    intake(domain.erase_beneficiary, beneficiary, SAFI_ADMIN, NOW)
    [(_, envelope)] = outbox_messages(engine, "ma.tansiq.consent.revoked.v1")
    assert envelope.data["recipients"] == ["wafae-marrakech"]


# --- possible duplicates ---------------------------------------------------------------------------


def test_duplicates_across_scripts_flagged_not_merged(engine, intake, keyring):
    first = register(intake, keyring)["id"]
    arabic = dict(first_name_ar="خديجة", last_name_ar="بنعلي", birth_year=1990, city="Safi", needs=["shelter"])
    second = register(intake, keyring, arabic, now=NOW + timedelta(days=3))
    assert second["possible_duplicates"] == [{"id": first, "reasons": ["similar_name", "same_birth_year"]}]

    same_phone = dict(first_name="Hajar", phone="+212 6 12 34 56 78")
    third = register(intake, keyring, same_phone)
    assert [d["id"] for d in third["possible_duplicates"]] == [first]
    assert third["possible_duplicates"][0]["reasons"] == ["same_phone"]

    with session_scope(engine) as session:
        assert len(session.scalars(select(Beneficiary)).all()) == 3  # never merged
        assert {(f.beneficiary_id, f.other_id, f.status) for f in session.scalars(select(DuplicateFlag))} == {
            (second["id"], first, "open"), (third["id"], first, "open")}
    [_, (_, event), _] = outbox_messages(engine, "ma.tansiq.beneficiary.registered.v1")
    assert event.data["possible_duplicate_of"] == [first]
    record = intake(domain.get_beneficiary, keyring, first, SAFI_WORKER, NOW)
    assert {f["beneficiary_id"] for f in record["possible_duplicates"]} == {second["id"], third["id"]}

    flag_id = record["possible_duplicates"][0]["id"]
    assert intake(domain.resolve_duplicate_flag, flag_id, "distinct", SAFI_WORKER, NOW)["status"] == "distinct"


def test_not_flagged_when_different(intake, keyring):
    register(intake, keyring)
    other_person = dict(first_name="Karima", last_name="Tazi", phone="0698765432", birth_year=1990)
    assert register(intake, keyring, other_person)["possible_duplicates"] == []
    older_namesake = dict(first_name="Khadija", last_name="Benali", birth_year=1962)
    assert register(intake, keyring, older_namesake)["possible_duplicates"] == []
    # The same woman at another association is that association's record, not visible here.
    assert register(intake, keyring, KHADIJA, staff=OTHER_WORKER)["possible_duplicates"] == []


def test_registration_refuses_a_record_without_any_name():
    from marshmallow import ValidationError

    with pytest.raises(ValidationError):
        BeneficiarySchema().load({"phone": "0612345678"})
    with pytest.raises(ValidationError):
        BeneficiarySchema().load({"first_name": "A", "nmae": "typo"})


def test_service_results_are_json(intake, keyring):
    """RPC results cross the broker as JSON."""
    beneficiary = register(intake, keyring)["id"]
    consent(intake, beneficiary, recipient_association="wafae-marrakech")
    json.dumps(intake(domain.get_beneficiary, keyring, beneficiary, SAFI_WORKER, NOW))
    json.dumps(share(intake, keyring, beneficiary))
    assert date.fromisoformat(intake(domain.get_beneficiary, keyring, beneficiary, SAFI_WORKER, NOW)["birth_date"])


# --- duplicate lookup stays bounded (issue 12, item 4) -------------------------------------------


def _distinct_name(n):
    """A name whose exact form and consonant skeleton differ for every n (digits have no skeleton)."""
    return " ".join("bdfgklmnrt"[int(digit)] + "a" for digit in f"{n:03d}")


def test_a_number_shared_by_many_women_does_not_multiply_flags(engine, intake, keyring):
    """800 women registered with the association's own phone: flags stop after SHARED_VALUE_LIMIT."""
    limit = domain.SHARED_VALUE_LIMIT
    answers = [register(intake, keyring, dict(first_name="Femme", last_name=_distinct_name(n), phone="0522000000",
                                              birth_year=1980 + n % 30))
               for n in range(800)]
    with session_scope(engine) as session:
        flags = session.scalars(select(DuplicateFlag)).all()
    assert len(flags) == limit * (limit + 1) // 2  # 0 + 1 + ... + limit, whatever the number of women
    assert all(a["shared_values"] == [] for a in answers[:limit + 1])
    assert all(a["shared_values"] == ["phone"] and a["possible_duplicates"] == [] for a in answers[limit + 1:])
    # A real duplicate is still found beside the shared number: her name and birth year match.
    again = register(intake, keyring, dict(first_name="Femme", last_name=_distinct_name(7), phone="0522000000",
                                           birth_year=1987))
    assert again["possible_duplicates"] == [{"id": answers[7]["id"], "reasons": ["same_name", "same_birth_year"]}]
    assert again["shared_values"] == ["phone"]


def _plans(engine, statements):
    """The database's plan for each recorded statement, as text lines."""
    plans = []
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("SET enable_seqscan = off")  # a plan with no usable index stays a Seq Scan
            prefix = "EXPLAIN "
        else:
            prefix = "EXPLAIN QUERY PLAN "
        for statement, parameters in statements:
            rows = connection.exec_driver_sql(prefix + statement, parameters).all()
            plans.append([" ".join(str(column) for column in row) for row in rows])
    return plans


def test_duplicate_lookup_reads_the_blind_index_not_every_row(engine, intake, keyring):
    from sqlalchemy import event

    for n in range(30):
        register(intake, keyring, dict(first_name="Femme", last_name=_distinct_name(n), phone=f"06120000{n:02d}",
                                       birth_year=1980 + n))
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "FROM blind_index" in statement:
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        register(intake, keyring, dict(first_name="Femme", last_name=_distinct_name(3), phone="0612000003",
                                       birth_year=1983))
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements
    for plan in _plans(engine, statements):
        text_plan = "\n".join(plan)
        if engine.dialect.name == "postgresql":
            assert "Index" in text_plan and "Seq Scan" not in text_plan, text_plan
        else:
            assert "SEARCH" in text_plan and not any(" SCAN blind_index" in f" {line}" for line in plan), text_plan


# --- her association's list, paged (issue 12, item 5) --------------------------------------------


def test_beneficiaries_page_by_cursor_without_personal_data_and_search_by_phone_or_name(engine, intake, keyring):
    ids = [register(intake, keyring, dict(first_name="Femme", last_name=_distinct_name(n), phone=f"06120000{n:02d}"),
                    now=NOW + timedelta(minutes=n // 2))["id"] for n in range(13)]  # pairs share a time
    register(intake, keyring, KHADIJA, staff=OTHER_WORKER)  # another association's: never listed here
    seen, cursor = [], None
    while True:
        page = intake(domain.list_beneficiaries, keyring, SAFI_WORKER, limit=5, cursor=cursor)
        seen += [b["id"] for b in page["items"]]
        register(intake, keyring, dict(first_name="Nouvelle"), now=NOW + timedelta(days=1))  # arrives meanwhile
        cursor = page["next"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 13 and set(seen) == set(ids)
    assert not any(secret in json.dumps(page) for secret in ("Femme", "0612"))  # no personal field in a list

    by_phone = intake(domain.list_beneficiaries, keyring, SAFI_WORKER, phone="+212 6 12 00 00 07")
    assert [b["id"] for b in by_phone["items"]] == [ids[7]] and by_phone["next"] is None
    by_name = intake(domain.list_beneficiaries, keyring, SAFI_WORKER, name=f"FEMME {_distinct_name(3)}")
    assert [b["id"] for b in by_name["items"]] == [ids[3]]
    assert intake(domain.list_beneficiaries, keyring, OTHER_WORKER, phone="0612000007")["items"] == []

    first = intake(domain.list_beneficiaries, keyring, SAFI_WORKER, limit=1)
    for other_list in ({"actor": OTHER_WORKER}, {"actor": SAFI_WORKER, "phone": "0612000007"}):
        with pytest.raises(DomainError, match="another list"):
            intake(domain.list_beneficiaries, keyring, other_list.pop("actor"), cursor=first["next"], **other_list)
    with pytest.raises(DomainError):
        intake(domain.list_beneficiaries, keyring, SAFI_WORKER, limit=201)
    with pytest.raises(Forbidden):
        intake(domain.list_beneficiaries, keyring, actor({"id": "s-7", "association": "amal-safi",
                                                          "roles": ["events_manager"]}))


def test_beneficiaries_filter_by_kind_and_registered_since_and_a_cursor_keeps_its_filters(intake, keyring):
    older = register(intake, keyring, dict(first_name="Ancienne", kind="survivor"), now=NOW - timedelta(days=10))
    survivor = register(intake, keyring, dict(first_name="Une", kind="survivor"), now=NOW)
    other = register(intake, keyring, dict(first_name="Autre", kind="woman_in_difficulty"), now=NOW)
    listed = intake(domain.list_beneficiaries, keyring, SAFI_WORKER, kind="survivor")
    assert {b["id"] for b in listed["items"]} == {older["id"], survivor["id"]}
    since = (NOW - timedelta(days=1)).date()
    recent = intake(domain.list_beneficiaries, keyring, SAFI_WORKER, registered_since=since)
    assert {b["id"] for b in recent["items"]} == {survivor["id"], other["id"]}
    both = intake(domain.list_beneficiaries, keyring, SAFI_WORKER, kind="survivor", registered_since=since)
    assert [b["id"] for b in both["items"]] == [survivor["id"]]
    first = intake(domain.list_beneficiaries, keyring, SAFI_WORKER, kind="survivor", limit=1)
    with pytest.raises(DomainError, match="another list"):  # a cursor is only good for the list it came from
        intake(domain.list_beneficiaries, keyring, SAFI_WORKER, cursor=first["next"])
