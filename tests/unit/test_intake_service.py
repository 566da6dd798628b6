"""The intake RPC service and the gateway's intake routes, on a real SQLite database, without a broker.

The service runs through nameko's worker_factory with its real dependencies (database,
key ring); only the directory RPC and the signed-in staff lookup are stand-ins (the edge).
"""

import base64
import json
import os
from types import SimpleNamespace

import pytest
from actors import SIGNER, signed, verifier  # tests/actors.py
from nameko.testing.services import worker_factory
from sqlalchemy import select
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.gateway import web
from services.gateway.api_intake import IntakeApi
from services.intake.models import create_all
from services.intake.service import IntakeService
from tansiq.crypto import KeyRing
from tansiq.db import Sessions, make_engine, session_scope
from tansiq.errors import DomainError, Forbidden, InvalidActor
from tansiq.identity import ActorSigner
from tansiq.messaging.store import OutboxMessage

STAFF = {"id": "s-1", "association": "amal-safi", "roles": ["case_worker"], "name": "Salma", "language": "fr"}
ADMIN = {"id": "s-2", "association": "amal-safi", "roles": ["admin"]}
OTHER = {"id": "s-9", "association": "wafae-marrakech", "roles": ["admin"]}


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'intake.sqlite3'}")
    create_all(engine)
    yield engine
    engine.dispose()


class Directory:
    """Stand-in for the directory RPC proxy."""

    def find_services(self, category, city=None):
        return [{"association": "wafae-marrakech", "service_id": "svc-1", "name": "Aide juridique",
                 "category": category, "city": "Marrakech", "status": "active"}]

    def get_staff(self, staff_id):
        staff = {"s-1": STAFF, "s-9": OTHER}[staff_id]
        return {"id": staff_id, "association": staff["association"], "roles": staff["roles"]}


@pytest.fixture
def service(engine):
    return worker_factory(IntakeService, db=Sessions(engine),
                          keyring=KeyRing(os.urandom(32)), directory=Directory(), identity=verifier("intake"))


def test_register_rpc_round_trip(service, engine):
    result = service.register_beneficiary({"first_name_ar": "خديجة", "phone": "0612345678", "birth_date": "1990-04-12",
                                           "needs": ["shelter"], "urgency": "high", "city": "Safi"}, signed(STAFF))
    assert json.loads(json.dumps(result)) == result
    assert result["possible_duplicates"] == []
    assert service.health() == "ok"
    record = service.get_beneficiary(result["id"], signed(STAFF))
    assert record["first_name_ar"] == "خديجة" and record["birth_date"] == "1990-04-12"
    with session_scope(engine) as session:
        [message] = session.scalars(select(OutboxMessage)).all()
    assert message.type == "ma.tansiq.beneficiary.registered.v1" and "خديجة" not in message.body


def test_rpc_refuses_bad_input_and_other_association(service):
    with pytest.raises(DomainError) as refused:
        service.register_beneficiary({"first_name": "Khadija", "needs": ["astrology"]}, signed(STAFF))
    assert refused.value.code == "invalid_request" and "needs" in refused.value.details
    with pytest.raises(DomainError):
        service.register_beneficiary({"first_name": "Khadija"}, {"id": "s-1"})  # a dict, not a signed assertion
    beneficiary = service.register_beneficiary({"first_name": "Khadija"}, signed(STAFF))["id"]
    with pytest.raises(Forbidden):
        service.get_beneficiary(beneficiary, signed(OTHER))
    with pytest.raises(DomainError):  # "any partner offering shelter" under a legal purpose could never be used
        service.record_consent(beneficiary, {"purpose": "legal_orientation", "fields": ["first_name"],
                                             "recipient_category": "shelter"}, signed(STAFF))


def test_refused_attempts_are_audited(service):
    beneficiary = service.register_beneficiary({"first_name": "Khadija"}, signed(STAFF))["id"]
    with pytest.raises(Forbidden):
        service.get_beneficiary(beneficiary, signed(OTHER))
    with pytest.raises(Forbidden):  # staff of another association, as the directory knows her
        service.prepare_referral_share(beneficiary, "amal-safi", "shelter", ["first_name"], signed(OTHER),
                                       override_reason="urgence")
    with pytest.raises(Forbidden):
        service.erase_beneficiary(beneficiary, signed(STAFF))
    trail = service.audit_trail(beneficiary, signed(STAFF))
    assert [(e["action"], e["staff_id"], e["detail"]) for e in trail] == [
        ("register", "s-1", ""), ("read", "s-9", "refused: other_association"),
        ("share", "s-9", "refused: other_association"), ("erase", "s-1", "refused: role_required")]


def test_export_rpc_takes_an_admin_assertion_only(service):
    """intake.export_beneficiary: her right of access, for her association's admin (cases.export), audited;
    a case worker is refused (and the refusal audited), an unsigned dict is not believed."""
    beneficiary = service.register_beneficiary({"first_name": "Khadija"}, signed(STAFF))["id"]
    with pytest.raises(InvalidActor):
        service.export_beneficiary(beneficiary, ADMIN)
    with pytest.raises(Forbidden):
        service.export_beneficiary(beneficiary, signed(STAFF))
    exported = service.export_beneficiary(beneficiary, signed(ADMIN))
    assert json.loads(json.dumps(exported))["first_name"] == "Khadija"
    trail = [(e["action"], e["staff_id"], e["detail"]) for e in exported["audit_trail"]]
    assert ("export", "s-1", "refused: role_required") in trail
    assert trail[-1] == ("export", "s-2", "")


def test_share_under_category_consent_asks_the_directory(service):
    beneficiary = service.register_beneficiary({"first_name": "Khadija", "phone": "0612345678"}, signed(STAFF))["id"]
    service.record_consent(beneficiary, {"purpose": "legal_orientation", "fields": ["first_name"],
                                         "recipient_category": "legal_orientation"}, signed(STAFF))
    shared = service.prepare_referral_share(beneficiary, "wafae-marrakech", "legal_orientation", ["first_name"],
                                            signed(STAFF))
    assert shared["shared"] == {"first_name": "Khadija"} and not shared["override"]
    with pytest.raises(Forbidden) as refused:  # the directory says this one does not offer it
        service.prepare_referral_share(beneficiary, "ennakhil-casa", "legal_orientation", ["first_name"],
                                       signed(STAFF))
    assert refused.value.code == "no_consent"


class Gateway(IntakeApi):
    """The intake routes mixed into a minimal gateway whose RPC proxy is the real intake worker."""

    identity = SIGNER

    def __init__(self, intake):
        self.intake_rpc = intake


@pytest.fixture(autouse=True)
def signed_in(monkeypatch):
    """Stand-in for the gateway's session tokens: the staff member rides in a test header."""
    monkeypatch.setattr(web, "_active", [SimpleNamespace(staff=lambda req: json.loads(req.headers["X-Test-Staff"]))])


def request(method, path="/", body=None, staff=STAFF):
    return Request(EnvironBuilder(method=method, path=path, json=body,
                                  headers={"X-Test-Staff": json.dumps(staff)}).get_environ())


def test_gateway_routes(service):
    gateway = Gateway(service)
    created = gateway.intake_register(request("POST", body={"first_name": "Khadija", "birth_date": "1990-04-12",
                                                            "needs": ["legal_orientation"]}))
    assert created.status_code == 201
    beneficiary = json.loads(created.get_data())["id"]

    session = gateway.intake_add_session(request("POST", body={"needs": ["shelter"], "notes": "revenue"}), beneficiary)
    assert session.status_code == 201
    consent = gateway.intake_record_consent(request("POST", body={
        "purpose": "shelter", "fields": ["first_name", "needs"], "recipient_association": "wafae-marrakech",
        "expires_at": "2099-01-01T00:00:00+00:00"}), beneficiary)
    consent_id = json.loads(consent.get_data())["id"]

    shown = gateway.intake_get(request("GET"), beneficiary)
    record = json.loads(shown.get_data())
    assert shown.headers["Cache-Control"] == "no-store"
    assert record["first_name"] == "Khadija" and [s["needs"] for s in record["sessions"]] == [
        ["legal_orientation"], ["shelter"]]
    assert record["consents"][0]["valid"] is True

    revoked = json.loads(gateway.intake_revoke_consent(request("POST"), consent_id).get_data())
    assert revoked["valid"] is False
    assert json.loads(gateway.intake_disclosures(request("GET"), beneficiary).get_data()) == {"items": [],
                                                                                               "next": None}
    trail, path = [], "/?limit=4"
    while path:  # newest first, page after page
        page = json.loads(gateway.intake_audit(request("GET", path), beneficiary).get_data())
        trail += [entry["action"] for entry in page["items"]]
        path = page["next"] and f"/?limit=4&cursor={page['next']}"
    assert trail[::-1] == ["register", "add_session", "record_consent", "read", "revoke_consent",
                           "read_disclosures"]
    [beneficiaries] = json.loads(gateway.intake_list(request("GET", "/?limit=5")).get_data())["items"]
    assert beneficiaries["id"] == beneficiary and "first_name" not in beneficiaries

    with pytest.raises(Forbidden):  # a case worker may not erase; the gateway's error table answers 403
        gateway.intake_erase(request("DELETE"), beneficiary)
    erased = gateway.intake_erase(request("DELETE", staff=ADMIN), beneficiary)
    assert erased.status_code == 200
    assert json.loads(gateway.intake_get(request("GET"), beneficiary).get_data())["erased"] is True


def test_gateway_refuses_malformed_body_before_rpc(service):
    from marshmallow import ValidationError

    with pytest.raises(ValidationError):
        Gateway(service).intake_register(request("POST", body={"first_name": "K", "urgency": "whenever"}))


def test_rpc_believes_only_a_valid_assertion_meant_for_intake(service):
    """A dict, another key's signature, a changed claim, another audience or an expired one: all refused."""
    beneficiary = service.register_beneficiary({"first_name": "Khadija"}, signed(STAFF))["id"]
    good = signed(STAFF, "intake")
    version, body, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["association"], claims["roles"] = "amal-safi", ["case_worker", "admin"]
    tampered = ".".join((version, base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode(),
                         signature))
    expired = ActorSigner(SIGNER.private_key, clock=lambda: 0).sign(STAFF, "intake")
    forged = [STAFF, None, "", "v1.e30.", good + "x", tampered, ActorSigner.generate().sign(STAFF, "intake"),
              signed(STAFF, "referrals"), expired, {"association": "amal-safi", "roles": []}]
    for attempt in forged:
        with pytest.raises(InvalidActor):
            service.get_beneficiary(beneficiary, attempt)
    assert service.get_beneficiary(beneficiary, good)["first_name"] == "Khadija"


def test_a_repeated_share_is_the_first_one_until_its_consent_is_revoked_then_refused(service, engine):
    """Referrals retries a share with the same key (it gave up on intake, or died before committing): the first
    share comes back, one disclosure. But a consent revoked in between must stop the referral: the stored answer
    is not handed out again, as a fresh share would not be."""
    from services.intake.models import Disclosure

    beneficiary = service.register_beneficiary({"first_name": "Khadija"}, signed(STAFF))["id"]
    consent = service.record_consent(beneficiary, {"purpose": "legal_orientation", "fields": ["first_name"],
                                                   "recipient_association": "wafae-marrakech"}, signed(STAFF))
    share = (beneficiary, "wafae-marrakech", "legal_orientation", ["first_name"])
    first = service.prepare_referral_share(*share, signed(STAFF), idempotency_key="share-of-ref-1")
    assert service.prepare_referral_share(*share, signed(STAFF), idempotency_key="share-of-ref-1") == first
    with session_scope(engine) as session:
        assert len(session.scalars(select(Disclosure.id)).all()) == 1
    with pytest.raises(Forbidden):  # the same staff member (her key's scope) since without the right to refer
        service.prepare_referral_share(*share, signed({**STAFF, "roles": ["events_manager"]}),
                                       idempotency_key="share-of-ref-1")
    service.revoke_consent(consent["id"], signed(STAFF))
    with pytest.raises(Forbidden) as refused:
        service.prepare_referral_share(*share, signed(STAFF), idempotency_key="share-of-ref-1")
    assert refused.value.code == "no_consent"
