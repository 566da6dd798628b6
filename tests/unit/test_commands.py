"""Exactly-once commands (tansiq.commands): the key is recorded with the effect, a repeat gets the first result.

Real SQLite databases; the intake service runs through nameko's worker_factory with its real
dependencies (only the directory proxy is a stand-in); the gateway's timed proxy against a stand-in
method that never answers (the edge).
"""

import os
import uuid
from datetime import timedelta

import eventlet
import pytest
from actors import signed, verifier  # tests/actors.py
from harness import create_pg_database, drop_pg_database
from nameko.testing.services import worker_factory
from sqlalchemy import func, select
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.gateway import web
from services.gateway.calls import idempotency_key
from services.intake.models import Beneficiary, create_all
from services.intake.service import IntakeService
from tansiq import commands
from tansiq.calls import TimedServiceProxy
from tansiq.commands import KEY_REUSED, Command
from tansiq.contracts.actor import Actor
from tansiq.crypto import KeyRing
from tansiq.db import Sessions, make_engine, session_scope
from tansiq.envelope import utcnow
from tansiq.errors import Conflict, DomainError, ServiceUnavailable
from tansiq.messaging.store import CommandKey, OutboxMessage, messaging_metadata

SALMA = Actor(association="amal-safi", id="s-1")
NADIA = Actor(association="amal-safi", id="s-2")
STAFF = {"id": "s-1", "association": "amal-safi", "roles": ["case_worker"], "name": "Salma", "language": "fr"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url, database = f"sqlite:///{tmp_path / 'commands.sqlite3'}", None
    else:
        database = f"tansiq_commands_{uuid.uuid4().hex[:10]}"
        url = create_pg_database(database)
    engine = make_engine(url)
    messaging_metadata.create_all(engine)
    yield engine
    engine.dispose()
    if database:
        drop_pg_database(database)


class Effects:
    """What a command does: one outbox row per run (any table written in the same transaction)."""

    def __init__(self):
        self.runs = 0

    def __call__(self, session):
        self.runs += 1
        session.add(OutboxMessage(message_id=f"m-{self.runs}-{os.urandom(4).hex()}", type="t.v1", exchange="x",
                                  routing_key="t.v1", body="{}"))
        return {"id": f"created-{self.runs}", "when": utcnow()}


def attempt(engine, effects, key, request, actor=SALMA, name="test.create"):
    with session_scope(engine) as session:
        return Command(name, actor, key, request).run(session, lambda: effects(session))


def count(engine, model):
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(model))


def test_a_repeat_gets_the_first_result_and_runs_nothing(engine):
    effects = Effects()
    first = attempt(engine, effects, "k-1", {"name": "Khadija"})
    again = attempt(engine, effects, "k-1", {"name": "Khadija"})
    assert again == first and first["id"] == "created-1"  # what travels back over RPC, both times
    assert effects.runs == 1 and count(engine, OutboxMessage) == 1


def test_the_same_key_with_another_request_is_refused(engine):
    effects = Effects()
    attempt(engine, effects, "k-1", {"name": "Khadija"})
    with pytest.raises(Conflict) as refused:
        attempt(engine, effects, "k-1", {"name": "Fatima"})
    assert refused.value.code == KEY_REUSED
    with pytest.raises(Conflict):  # another command under the same key is its own key: allowed; same command: not
        attempt(engine, effects, "k-1", {"name": "Khadija", "extra": 1})
    assert attempt(engine, effects, "k-1", {"name": "Fatima"}, name="test.other")["id"] == "created-2"
    assert effects.runs == 2 and count(engine, OutboxMessage) == 2


def test_keys_belong_to_one_actor(engine):
    effects = Effects()
    attempt(engine, effects, "k-1", {"name": "Khadija"}, actor=SALMA)
    assert attempt(engine, effects, "k-1", {"name": "Khadija"}, actor=NADIA)["id"] == "created-2"
    assert effects.runs == 2


def test_what_a_command_creates_and_asks_of_others_is_named_the_same_on_every_attempt():
    """A retry must fit what another service did for the first attempt: the same new id, the same key for
    the call; nobody else's (another actor, command or key) and never the key itself."""
    first, again = Command("referrals.create", SALMA, "k-1", {}), Command("referrals.create", SALMA, "k-1", {"x": 1})
    assert first.created_id() == again.created_id() and uuid.UUID(first.created_id()).version == 4
    assert first.key_for("intake.share") == again.key_for("intake.share")
    others = [Command("referrals.create", NADIA, "k-1"), Command("referrals.reroute", SALMA, "k-1"),
              Command("referrals.create", SALMA, "k-2")]
    assert len({first.created_id(), *(other.created_id() for other in others)}) == 4
    assert len({first.key_for("intake.share"), *(other.key_for("intake.share") for other in others)}) == 4
    assert first.key_for("intake.share") != first.key_for("intake.other") and "k-1" not in first.key_for("intake.share")
    assert commands.check_key(first.key_for("intake.share"))  # a key the other service takes
    keyless = Command("referrals.create", SALMA, None)
    assert keyless.created_id() != keyless.created_id() and keyless.key_for("intake.share") is None


def test_without_a_key_every_attempt_runs(engine):
    effects = Effects()
    attempt(engine, effects, None, {"name": "Khadija"})
    attempt(engine, effects, None, {"name": "Khadija"})
    assert effects.runs == 2 and count(engine, CommandKey) == 0


def test_a_command_that_fails_keeps_no_key_and_runs_again(engine):
    effects = Effects()

    def failing(session):
        effects(session)
        raise RuntimeError("the worker died before the commit")

    with pytest.raises(RuntimeError), session_scope(engine) as session:
        Command("test.create", SALMA, "k-1", {"name": "Khadija"}).run(session, lambda: failing(session))
    assert count(engine, CommandKey) == 0 and count(engine, OutboxMessage) == 0  # both or neither
    assert attempt(engine, effects, "k-1", {"name": "Khadija"})["id"] == "created-2"


def test_a_racing_second_attempt_cannot_commit_a_second_effect(engine):
    """Both attempts looked before either committed: the unique key fails the second commit, effect included."""
    effects = Effects()
    with session_scope(engine) as first:
        command = Command("test.create", SALMA, "k-1", {"name": "Khadija"})
        assert command.first_result(first) == (False, None)
        command.record(first, effects(first))
    with pytest.raises(Conflict) as refused, session_scope(engine) as second:
        Command("test.create", SALMA, "k-1", {"name": "Khadija"}).record(second, effects(second))
    assert refused.value.code == commands.IN_PROGRESS
    assert count(engine, OutboxMessage) == 1 and count(engine, CommandKey) == 1
    assert attempt(engine, effects, "k-1", {"name": "Khadija"})["id"] == "created-1"  # its retry: the first result


@pytest.mark.parametrize("key", ["", "x" * 201, "spaces are not allowed", "é", 42])
def test_malformed_keys_are_refused(key):
    with pytest.raises(DomainError) as refused:
        Command("test.create", SALMA, key, {})
    assert refused.value.code == "invalid_request"


def test_expired_keys_are_forgotten(engine):
    effects = Effects()
    attempt(engine, effects, "old", {"name": "Khadija"})
    attempt(engine, effects, "new", {"name": "Khadija"})
    with session_scope(engine) as session:
        session.get(CommandKey, 1).created_at = utcnow() - timedelta(hours=25)
    with session_scope(engine) as session:
        assert commands.forget_expired(session, utcnow()) == 1
    with session_scope(engine) as session:
        assert session.scalars(select(CommandKey.key)).all() == [Command("test.create", SALMA, "new", {}).key]


def test_the_table_keeps_no_copy_in_clear_and_only_the_key_opens_the_result(engine):
    first = attempt(engine, Effects(), "a-random-key", {"first_name": "Khadija", "phone": "0612345678"})
    with session_scope(engine) as session:
        row = session.scalar(select(CommandKey))
        stored = " ".join(str(value) for value in (row.scope, row.command, row.key, row.fingerprint, row.result))
    assert "a-random-key" not in stored and "Khadija" not in stored and "0612345678" not in stored
    assert first["id"] not in stored  # the result itself is sealed
    with session_scope(engine) as session:  # another actor's same key finds nothing of hers
        assert Command("test.create", NADIA, "a-random-key", {}).first_result(session) == (False, None)


def test_the_janitor_sweeps_its_database(engine):
    attempt(engine, Effects(), "old", {"name": "Khadija"})
    with session_scope(engine) as session:
        session.scalar(select(CommandKey)).created_at = utcnow() - timedelta(hours=2)
    janitor = commands.CommandKeyJanitor()
    janitor.engine, janitor.ttl_hours = engine, 1
    assert janitor.sweep() == 1 and count(engine, CommandKey) == 0


# --- an owning service's entrypoint ---

class Directory:
    def find_services(self, category, city=None):
        return []


@pytest.fixture
def intake(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'intake.sqlite3'}")
    create_all(engine)
    yield worker_factory(IntakeService, db=Sessions(engine), keyring=KeyRing(os.urandom(32)),
                         directory=Directory(), identity=verifier("intake")), engine
    engine.dispose()


def test_intake_registers_once_per_key(intake):
    service, engine = intake
    woman = {"first_name": "Khadija", "phone": "0612345678", "needs": ["shelter"]}
    first = service.register_beneficiary(woman, signed(STAFF), idempotency_key="form-1")
    assert service.register_beneficiary(woman, signed(STAFF), idempotency_key="form-1") == first
    assert count(engine, Beneficiary) == 1
    with pytest.raises(Conflict) as refused:
        service.register_beneficiary({**woman, "first_name": "Fatima"}, signed(STAFF), idempotency_key="form-1")
    assert refused.value.code == KEY_REUSED and count(engine, Beneficiary) == 1
    second = service.register_beneficiary(woman, signed(STAFF))  # no key: a second registration, as before
    assert second["id"] != first["id"] and count(engine, Beneficiary) == 2


def test_intake_consent_and_session_once_per_key(intake):
    service, engine = intake
    woman = service.register_beneficiary({"first_name": "Khadija"}, signed(STAFF))["id"]
    consent = {"purpose": "shelter", "fields": ["first_name"], "recipient_category": "shelter"}
    first = service.record_consent(woman, consent, signed(STAFF), idempotency_key="c-1")
    assert service.record_consent(woman, consent, signed(STAFF), idempotency_key="c-1") == first
    revoked = service.revoke_consent(first["id"], signed(STAFF), idempotency_key="r-1")
    assert service.revoke_consent(first["id"], signed(STAFF), idempotency_key="r-1") == revoked


# --- the gateway ---

def test_the_gateway_reads_the_header_and_refuses_a_malformed_one():
    def request(headers):
        return Request(EnvironBuilder(method="POST", path="/api/beneficiaries", headers=headers).get_environ())

    assert idempotency_key(request({"Idempotency-Key": "3f2a-01"})) == "3f2a-01"
    assert idempotency_key(request({})) is None
    with pytest.raises(DomainError) as refused:
        idempotency_key(request({"Idempotency-Key": "x" * 300}))
    assert web.response_for(refused.value).status_code == 400


class Silent:
    """A service proxy whose service never answers (its container is gone)."""

    service_name = "intake"

    def __getattr__(self, name):
        return lambda *args, **kwargs: eventlet.Event().wait()


def test_a_call_without_an_answer_becomes_503_with_retry_after():
    with pytest.raises(ServiceUnavailable) as unavailable:
        TimedServiceProxy(Silent(), timeout=0.05).register_beneficiary({}, "actor", idempotency_key="k")
    response = web.response_for(unavailable.value)
    assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
    assert "Idempotency-Key" in unavailable.value.message


# --- referrals: intake is not asked twice, a transition repeated is not refused as invalid ---

@pytest.fixture
def referrals(tmp_path):
    from fixtures.referrals import keyring, sqlite_session
    from test_referrals_service import FakeDirectory, FakeIntake

    from services.referrals.service import ReferralsService

    with sqlite_session(tmp_path / "referrals.db") as session:
        worker = worker_factory(ReferralsService, db=Sessions(session.get_bind()), intake=FakeIntake(),
                                directory=FakeDirectory(), keyring=keyring(), identity=verifier("referrals"))
        worker.session = session
        yield worker


def test_a_referral_repeated_with_its_key_is_made_once_and_intake_asked_once(referrals):
    from test_referrals_service import CASE_WORKER, RECIPIENT

    from services.referrals.models import Referral

    request = {"beneficiary_id": "b-1", "to_association": "wafae-marrakech",
               "service_category": "legal_orientation", "reason": "Needs a lawyer", "urgency": "urgent",
               "fields": ["first_name", "phone"]}
    first = referrals.create_referral(request, CASE_WORKER, idempotency_key="ref-1")
    assert referrals.create_referral(request, CASE_WORKER, idempotency_key="ref-1") == first
    assert len(referrals.intake.calls) == 1  # the personal data was not handed out a second time
    assert referrals.session.scalar(select(func.count()).select_from(Referral)) == 1
    with pytest.raises(Conflict) as refused:
        referrals.create_referral({**request, "reason": "Other"}, CASE_WORKER, idempotency_key="ref-1")
    assert refused.value.code == KEY_REUSED

    acknowledged = referrals.transition(first["id"], "acknowledge", {}, RECIPIENT, idempotency_key="ack-1")
    assert referrals.transition(first["id"], "acknowledge", {}, RECIPIENT, idempotency_key="ack-1") == acknowledged
    with pytest.raises(DomainError):  # without its key, acknowledging twice is refused, as before
        referrals.transition(first["id"], "acknowledge", {}, RECIPIENT)


# --- erasure reaches the stored first results (they may hold her data) ---

def test_forgotten_results_are_refused_not_replayed_and_not_run_again(engine):
    effects = Effects()
    with session_scope(engine) as session:
        Command("test.create", SALMA, "k-1", {"n": 1}).run(session, lambda: effects(session), subject="b-1")
        Command("test.create", SALMA, "k-2", {"n": 2}).run(session, lambda: effects(session), subject="b-2")
    with session_scope(engine) as session:
        assert commands.forget_results(session, ["b-1"]) == 1
    with pytest.raises(DomainError) as refused:
        attempt(engine, effects, "k-1", {"n": 1})
    assert refused.value.code == commands.RESULT_ERASED and effects.runs == 2  # nothing comes back, nothing re-run
    assert attempt(engine, effects, "k-2", {"n": 2})["id"] == "created-2"  # another woman's: untouched
    with session_scope(engine) as session:
        assert commands.forget_results(session, ["b-1"]) == 0  # already blank: counted once


def test_a_recipient_copy_ending_forgets_only_that_associations_results(engine):
    effects = Effects()
    recipient = Actor(association="wafae-marrakech", id="s-9")
    with session_scope(engine) as session:
        Command("test.ack", recipient, "k-r", {}).run(session, lambda: effects(session), subject="r-1")
        Command("test.create", SALMA, "k-s", {}).run(session, lambda: effects(session), subject="r-1")
    with session_scope(engine) as session:
        assert commands.forget_results(session, ["r-1"], association="wafae-marrakech") == 1
    with pytest.raises(DomainError):
        attempt(engine, effects, "k-r", {}, actor=recipient, name="test.ack")
    assert attempt(engine, effects, "k-s", {})["id"] == "created-2"  # the sender's own answer stays


def test_a_registration_replayed_after_her_erasure_brings_nothing_back_and_creates_nothing(intake):
    service, engine = intake
    admin = {"id": "s-3", "association": "amal-safi", "roles": ["admin"]}
    woman = {"first_name": "CanaryKhadija", "phone": "0612345678", "notes": "CanaryNotes", "needs": ["shelter"]}
    first = service.register_beneficiary(woman, signed(STAFF), idempotency_key="form-erased")
    consent = {"purpose": "shelter", "fields": ["first_name"], "recipient_category": "shelter"}
    service.record_consent(first["id"], consent, signed(STAFF), idempotency_key="consent-erased")
    service.erase_beneficiary(first["id"], signed(admin))
    for replay in (lambda: service.register_beneficiary(woman, signed(STAFF), idempotency_key="form-erased"),
                   lambda: service.record_consent(first["id"], consent, signed(STAFF),
                                                  idempotency_key="consent-erased")):
        with pytest.raises(DomainError) as refused:
            replay()
        assert refused.value.code == commands.RESULT_ERASED and "Canary" not in str(refused.value.args)
    assert count(engine, Beneficiary) == 1
    assert web.response_for(refused.value).status_code == 410


def test_referral_answers_end_with_the_recipients_copy_and_with_her_erasure(referrals):
    from test_referrals_service import CASE_WORKER, RECIPIENT

    from services.referrals import domain

    request = {"beneficiary_id": "b-1", "to_association": "wafae-marrakech",
               "service_category": "legal_orientation", "reason": "Needs a lawyer", "urgency": "urgent",
               "fields": ["first_name", "phone"]}
    sent = referrals.create_referral(request, CASE_WORKER, idempotency_key="ref-e")
    acknowledged = referrals.transition(sent["id"], "acknowledge", {}, RECIPIENT, idempotency_key="ack-e")
    assert acknowledged["shared"]  # the recipient's first answer held what was shared
    referrals.transition(sent["id"], "decline", {"reason": "No lawyer free"}, RECIPIENT, idempotency_key="dec-e")
    with pytest.raises(DomainError) as refused:  # her copy ended: so did its replayable answer
        referrals.transition(sent["id"], "acknowledge", {}, RECIPIENT, idempotency_key="ack-e")
    assert refused.value.code == commands.RESULT_ERASED
    assert referrals.create_referral(request, CASE_WORKER, idempotency_key="ref-e") == sent  # the sender's stays
    with session_scope(referrals.session.get_bind()) as session:
        domain.erase_for_beneficiary(session, utcnow(), "b-1")
    with pytest.raises(DomainError) as refused:
        referrals.create_referral(request, CASE_WORKER, idempotency_key="ref-e")
    assert refused.value.code == commands.RESULT_ERASED and len(referrals.intake.calls) == 1
