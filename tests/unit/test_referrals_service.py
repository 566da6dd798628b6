"""The referrals nameko entrypoints with a real SQLite database and fakes for intake and directory."""

import json

import pytest
from actors import signed, verifier  # tests/actors.py
from fixtures.referrals import keyring, sqlite_session
from nameko.testing.services import worker_factory
from sqlalchemy import select

from services.referrals.service import ReferralsService
from tansiq import commands, contracts, sealing
from tansiq.db import Sessions, session_scope
from tansiq.errors import Conflict, DomainError, Forbidden, InvalidActor
from tansiq.messaging.store import OutboxMessage

SAFI, MARRAKECH, AGADIR, RABAT = "amal-safi", "wafae-marrakech", "nour-agadir", "hayat-rabat"
CASE_WORKER = signed({"id": "s-1", "association": SAFI, "roles": ["case_worker"]}, "referrals", "intake")
RECIPIENT = signed({"id": "s-9", "association": MARRAKECH, "roles": ["case_worker"]}, "referrals", "intake")
PII = {"first_name": "Khadija", "phone": "+212600000042"}


RABAT_KEY = sealing.generate_private_key()  # the partner's own; it publishes the public half


class FakeDirectory:
    integration = {SAFI: "tansiq", MARRAKECH: "tansiq", AGADIR: "tansiq", RABAT: "queue"}
    published = {RABAT: sealing.public_key_b64(RABAT_KEY)}

    def get_association(self, slug):
        return {"slug": slug, "integration": self.integration[slug], "encryption_key": self.published.get(slug)}

    def find_services(self, category, city=None):
        return [{"association": slug, "category": category, "status": "active"} for slug in self.integration]


class FakeIntake:
    """Consent c-19 covers Marrakech and Agadir for b-1; anything else is refused as intake would."""

    def __init__(self):
        self.calls, self.keys, self.seals = [], [], []

    def prepare_referral_share(self, beneficiary_id, recipient, category, fields, actor, override_reason=None,
                               seal_for=None, idempotency_key=None):
        verifier("intake").actor(actor)  # referrals forwards the case worker's own assertion
        self.calls.append((beneficiary_id, recipient, tuple(fields)))
        self.keys.append(idempotency_key)
        self.seals.append((seal_for or {}).get("reader") and (seal_for["reader"], seal_for["context"]))
        if beneficiary_id != "b-1" or recipient not in (MARRAKECH, AGADIR, RABAT):
            raise Forbidden("no consent covers this recipient and purpose", code="no_consent")
        # As intake does: the values leave sealed to the recipient's key, for this referral only.
        assert seal_for["reader"] == recipient
        sealed = sealing.seal({f: PII[f] for f in fields}, {recipient: seal_for["key"]}, seal_for["context"])
        return {"consent_id": "c-19", "fields": list(fields), "sealed_shared": sealed, "override": False}


@pytest.fixture
def service(tmp_path):
    with sqlite_session(tmp_path / "referrals.db") as session:
        worker = worker_factory(ReferralsService, db=Sessions(session.get_bind()), intake=FakeIntake(),
                                directory=FakeDirectory(), keyring=keyring(), identity=verifier("referrals"))
        worker.session = session
        yield worker


def create(service, to=MARRAKECH, beneficiary="b-1"):
    return service.create_referral({"beneficiary_id": beneficiary, "to_association": to,
                                    "service_category": "legal_orientation", "reason": "Needs a lawyer",
                                    "urgency": "urgent", "fields": ["first_name", "phone"]}, CASE_WORKER)


def outbox(service):
    service.session.expire_all()
    return list(service.session.scalars(select(OutboxMessage).order_by(OutboxMessage.seq)))


def test_create_act_and_read_over_rpc(service):
    sent = create(service)
    json.dumps(sent)  # crosses RPC as JSON
    assert sent["state"] == "sent" and sent["direction"] == "sent" and "shared" not in sent
    received = service.transition(sent["id"], "acknowledge", {}, RECIPIENT)
    assert received["state"] == "received" and received["shared"] == PII and received["beneficiary_id"] is None
    assert [r["id"] for r in service.list_referrals(RECIPIENT, "received")] == [sent["id"]]
    assert service.list_referrals(RECIPIENT, "received", status="completed") == []
    for untrusted in (None, SAFI, {"id": "s-1", "association": SAFI, "roles": ["case_worker"]}):
        with pytest.raises(InvalidActor):  # nothing is listed on trust
            service.list_referrals(untrusted, "sent")
    with pytest.raises(Forbidden):
        service.list_referrals(signed({"id": "s-3", "association": MARRAKECH, "roles": ["events_manager"]}), "received")
    with pytest.raises(DomainError) as refused:
        service.transition(sent["id"], "complete", {"outcome": "done"}, RECIPIENT)
    assert refused.value.code == "invalid_transition"
    assert [h["action"] for h in service.get_referral(sent["id"], CASE_WORKER)["history"]] == ["send", "acknowledge"]


def test_a_retried_referral_asks_intake_with_the_same_key_for_the_same_referral_id(service, monkeypatch):
    """Intake's share is keyed by the referral's own key, and sealed to an id the retry gets again: a first
    attempt that died after intake shared (or gave up on intake) is finished by the retry with that share."""
    from services.referrals import domain

    request = {"beneficiary_id": "b-1", "to_association": MARRAKECH, "service_category": "legal_orientation",
               "reason": "Needs a lawyer", "urgency": "urgent", "fields": ["first_name"]}
    with monkeypatch.context() as patch:  # dies after the share, before the referral commits
        patch.setattr(domain, "create_referral", lambda *args, **kwargs: (_ for _ in ()).throw(RuntimeError("died")))
        with pytest.raises(RuntimeError):
            service.create_referral(request, CASE_WORKER, idempotency_key="ref-k")
    sent = service.create_referral(request, CASE_WORKER, idempotency_key="ref-k")
    first_key, retry_key = service.intake.keys
    assert first_key == retry_key and first_key not in (None, "ref-k")
    # FakeIntake seals afresh each time; intake answers the retry with the first share, sealed to this same id.
    assert service.intake.seals[0][1] == service.intake.seals[1][1] == domain.sealing_context(sent["id"], "shared")
    create(service)  # without a key: nothing to repeat, so none is given to intake
    assert service.intake.keys[-1] is None


def test_a_key_used_again_after_it_was_forgotten_is_refused_before_intake_is_asked(service):
    """The referral's id comes from its key: a key sent again after its 24 h names a referral that exists."""
    from datetime import timedelta

    from tansiq.envelope import utcnow

    request = {"beneficiary_id": "b-1", "to_association": MARRAKECH, "service_category": "legal_orientation",
               "reason": "Needs a lawyer", "urgency": "urgent", "fields": ["first_name"]}
    service.create_referral(request, CASE_WORKER, idempotency_key="form-1")
    with session_scope(service.session.get_bind()) as session:
        assert commands.forget_expired(session, utcnow() + timedelta(hours=25)) == 1
    with pytest.raises(Conflict) as refused:
        service.create_referral({**request, "to_association": AGADIR}, CASE_WORKER, idempotency_key="form-1")
    assert refused.value.code == commands.KEY_REUSED
    assert [recipient for _, recipient, _ in service.intake.calls] == [MARRAKECH]  # nothing shared with Agadir


def test_two_first_attempts_with_one_key_racing_the_loser_hears_409_in_progress(service, monkeypatch):
    """A double-submitted form: both attempts pass the first-result check; the referral's id comes from the
    key, so the loser fails on the id before its key's row could: it hears 409 in progress, not a failure,
    and its retry gets the winner's referral."""
    from services.referrals import domain

    request = {"beneficiary_id": "b-1", "to_association": MARRAKECH, "service_category": "legal_orientation",
               "reason": "Needs a lawyer", "urgency": "urgent", "fields": ["first_name"]}
    real, winner = domain.create_referral, []

    def create_referral(*args, **kwargs):
        if not winner:  # the other attempt commits while this one is inside its unit of work
            winner.append(None)
            winner[0] = service.create_referral(request, CASE_WORKER, idempotency_key="twice")
        return real(*args, **kwargs)

    monkeypatch.setattr(domain, "create_referral", create_referral)
    with pytest.raises(Conflict) as lost:
        service.create_referral(request, CASE_WORKER, idempotency_key="twice")
    assert lost.value.code == commands.IN_PROGRESS
    assert service.create_referral(request, CASE_WORKER, idempotency_key="twice") == winner[0]


def referrals_made(service):
    from services.referrals.models import Referral

    service.session.expire_all()
    return service.session.scalars(select(Referral.id)).all()


def test_a_consent_revoked_while_its_share_was_on_the_way_refuses_the_referral(service):
    """Intake shared under consent c-19, then she revoked it: the revocation reaches referrals before the
    referral's unit of work begins. The referral is refused: nothing kept, nothing published (no copy to end)."""
    share = service.intake.prepare_referral_share

    def shared_then_revoked(*args, **kwargs):
        answer = share(*args, **kwargs)
        service.on_consent_revoked(contracts.validate(contracts.make("ma.tansiq.consent.revoked.v1", "intake", {
            "consent_id": "c-19", "beneficiary_id": "b-1", "association": SAFI, "recipients": [MARRAKECH],
            "revoked_at": "2026-12-01T10:00:00+00:00"})))
        return answer

    service.intake.prepare_referral_share = shared_then_revoked
    with pytest.raises(Forbidden) as refused:
        service.create_referral({"beneficiary_id": "b-1", "to_association": MARRAKECH,
                                 "service_category": "legal_orientation", "reason": "Needs a lawyer",
                                 "urgency": "urgent", "fields": ["first_name"]}, CASE_WORKER, idempotency_key="k")
    service.intake.prepare_referral_share = share
    assert refused.value.code == "no_consent"
    assert referrals_made(service) == [] and outbox(service) == []


def test_refused_without_consent_nothing_recorded(service):
    with pytest.raises(Forbidden) as refused:
        create(service, beneficiary="b-2")
    assert refused.value.code == "no_consent"
    assert outbox(service) == []


def test_decline_then_reroute_shares_the_same_fields_under_a_new_consent_check(service):
    sent = create(service)
    service.transition(sent["id"], "acknowledge", {}, RECIPIENT)
    service.transition(sent["id"], "decline", {"reason": "no_capacity"}, RECIPIENT)
    new = service.transition(sent["id"], "reroute", {"to_association": AGADIR}, CASE_WORKER)
    assert new["rerouted_from"] == sent["id"] and new["to_association"] == AGADIR
    assert service.intake.calls[-1] == ("b-1", AGADIR, ("first_name", "phone"))
    assert service.get_referral(sent["id"], CASE_WORKER)["state"] == "rerouted"


def test_decline_straight_from_sent_then_reroute_and_her_record_lists_both_with_their_history(service):
    sent = create(service)
    declined = service.transition(sent["id"], "decline", {"reason": "no_capacity"}, RECIPIENT)  # no acknowledge first
    assert declined["state"] == "declined"
    new = service.transition(sent["id"], "reroute", {"to_association": AGADIR}, CASE_WORKER)
    about = service.referrals_about("b-1", CASE_WORKER)
    assert [r["id"] for r in about] == [new["id"], sent["id"]]
    assert [h["action"] for h in about[1]["history"]] == ["send", "decline", "reroute"]
    assert all(h["by"] for h in about[1]["history"])  # who did it, and when
    assert service.referrals_about("b-2", CASE_WORKER) == []  # another woman's record lists none of hers
    assert service.referrals_about("b-1", RECIPIENT) == []  # the recipient's side never finds her by the sender's id
    with pytest.raises(DomainError):  # after a decline, only re-route or nothing: no second decline
        service.transition(sent["id"], "decline", {"reason": "no_capacity"}, RECIPIENT)


def test_a_partner_update_applies_and_a_bad_one_is_refused_with_its_reason(service):
    sent = create(service, to=RABAT)
    ref = {"referral_id": sent["id"], "from_association": SAFI, "to_association": RABAT, "by": "p-1"}
    accepted = contracts.validate(contracts.make("ma.tansiq.referral.accepted.v1", RABAT, ref))
    # Not acknowledged yet: refused. The kernel (handles_partner) dead-letters and answers it.
    with pytest.raises(DomainError) as refused:
        service.on_referral_update(accepted)
    assert refused.value.code == "invalid_transition"

    acknowledged = contracts.validate(contracts.make("ma.tansiq.referral.acknowledged.v1", RABAT, ref))
    service.on_referral_update(acknowledged)
    service.on_referral_update(acknowledged)  # redelivered: no second effect
    history = service.get_referral(sent["id"], CASE_WORKER)["history"]
    assert [h["action"] for h in history] == ["send", "acknowledge"] and history[-1]["by"] == "p-1"


def test_a_partner_referral_arrives_and_revocation_erases_it(service):
    sent = contracts.validate(contracts.make("ma.tansiq.referral.sent.v1", RABAT, {
        "referral_id": "p-77", "from_association": RABAT, "to_association": MARRAKECH,
        "service_category": "shelter", "urgency": "urgent", "reason": "Unsafe at home", "shared": PII,
        "consent_id": "pc-1"}))
    service.on_referral_sent(sent)
    assert service.get_referral("p-77", RECIPIENT)["shared"] == PII
    revoked = contracts.validate(contracts.make("ma.tansiq.consent.revoked.v1", RABAT, {
        "consent_id": "pc-1", "beneficiary_id": "x", "association": RABAT, "recipients": [MARRAKECH],
        "revoked_at": "2026-11-29T10:00:00+00:00"}))
    service.on_consent_revoked(revoked)
    service.on_consent_revoked(revoked)
    view = service.get_referral("p-77", RECIPIENT)
    assert view["shared"] == {} and [h["action"] for h in view["history"]].count("erase_shared") == 1

    forged = contracts.validate(
        contracts.make("ma.tansiq.referral.sent.v1", AGADIR, {**sent.data, "referral_id": "p-78"}))
    with pytest.raises(Forbidden):  # answered `not_allowed` by the kernel
        service.on_referral_sent(forged)


def test_the_shared_values_arrive_sealed_by_intake_and_only_the_recipient_opens_them(service):
    sent = create(service)
    assert service.transition(sent["id"], "acknowledge", {}, RECIPIENT)["shared"] == PII
    raw = repr(service.session.connection().exec_driver_sql("SELECT * FROM referrals").fetchall())
    assert not [value for value in (*PII.values(), "Needs a lawyer") if value in raw]
    # To a partner: sealed to the key it published ...
    create(service, to=RABAT)
    envelope = json.loads(next(m.body for m in outbox(service) if m.exchange == "partners.outbound"))
    context = f"referral:{envelope['data']['referral_id']}:shared"
    assert sealing.open_sealed(envelope["data"]["sealed"]["shared"], RABAT, RABAT_KEY, context) == PII
    # ... and without one, refused before intake is even asked.
    asked = len(service.intake.calls)
    published, FakeDirectory.published = FakeDirectory.published, {}
    try:
        with pytest.raises(DomainError) as refused:
            create(service, to=RABAT)
    finally:
        FakeDirectory.published = published
    assert refused.value.code == "no_encryption_key" and len(service.intake.calls) == asked


def test_an_erased_beneficiary_leaves_nothing_in_any_referral_override_included(service):
    sent = create(service)
    erased = contracts.validate(contracts.make("ma.tansiq.beneficiary.erased.v1", "intake", {
        "beneficiary_id": "b-1", "association": SAFI, "erased_at": "2026-11-29T10:00:00+00:00"}))
    service.on_beneficiary_erased(erased)
    service.on_beneficiary_erased(erased)  # redelivered: nothing more
    seen = service.get_referral(sent["id"], RECIPIENT)
    assert (seen["shared"], seen["reason"]) == ({}, "")
    assert [h["action"] for h in seen["history"]].count("erase_shared") == 1


def erased_event(beneficiary_id="b-1"):
    return contracts.validate(contracts.make("ma.tansiq.beneficiary.erased.v1", "intake", {
        "beneficiary_id": beneficiary_id, "association": SAFI, "erased_at": "2026-12-01T10:00:00+00:00"}))


def test_a_referral_about_her_made_after_her_erasure_was_heard_is_refused_and_nothing_leaves(service):
    """Intake shared her values, then erased her: the erasure reaches referrals before the referral's unit of work
    begins. The referral is refused: nothing kept, nothing published, to a partner (Rabat) or anyone."""
    share = service.intake.prepare_referral_share

    def shared_then_erased(*args, **kwargs):
        answer = share(*args, **kwargs)
        service.on_beneficiary_erased(erased_event())
        return answer

    service.intake.prepare_referral_share = shared_then_erased
    for to in (MARRAKECH, RABAT):
        with pytest.raises(Forbidden) as refused:
            service.create_referral({"beneficiary_id": "b-1", "to_association": to,
                                     "service_category": "legal_orientation", "reason": "Needs a lawyer",
                                     "urgency": "urgent", "fields": ["first_name", "phone"],
                                     "note": "She prefers mornings"}, CASE_WORKER, idempotency_key=f"k-{to}")
        assert refused.value.details == {"reason": "erased"}
    service.intake.prepare_referral_share = share
    assert referrals_made(service) == [] and outbox(service) == []


def test_a_step_on_her_referral_after_her_erasure_is_taken_but_keeps_no_new_words(service):
    """Her record was erased; the recipient's staff, or a partner's system, still acts on the referral and writes
    about her. The step is taken (the referral moves on), the words are neither kept nor passed on."""
    sent, partners = create(service), create(service, to=RABAT)
    service.on_beneficiary_erased(erased_event())
    service.transition(sent["id"], "acknowledge", {"note": "Elle vit chez son frère, 12 rue X"}, RECIPIENT)
    service.transition(sent["id"], "decline", {"reason": "Pas de place pour elle et ses 3 enfants"}, RECIPIENT)
    ref = {"referral_id": partners["id"], "from_association": SAFI, "to_association": RABAT, "by": "p-1"}
    service.on_referral_update(contracts.validate(contracts.make("ma.tansiq.referral.acknowledged.v1", RABAT, {
        **ref, "note": "Elle vit chez son frère, 12 rue X"})))
    service.on_referral_update(contracts.validate(contracts.make("ma.tansiq.referral.declined.v1", RABAT, {
        **ref, "reason": "Pas de place pour elle et ses 3 enfants"})))
    for referral_id in (sent["id"], partners["id"]):
        for reader in (CASE_WORKER, RECIPIENT if referral_id == sent["id"] else CASE_WORKER):
            seen = service.get_referral(referral_id, reader)
            assert seen["state"] == "declined", seen
            assert "frère" not in str(seen) and "enfants" not in str(seen), seen
    steps = [json.loads(m.body)["data"] for m in outbox(service)
             if m.type.split(".")[3] in ("acknowledged", "declined")]
    assert len(steps) >= 3 and all(not step.get("sealed") for step in steps), steps  # nor passed on, even sealed


@pytest.fixture
def pg_service(tmp_path):
    from fixtures.databases import throwaway_engine

    from services.referrals.models import Base
    from tansiq.messaging.store import messaging_metadata

    def tables(engine):
        Base.metadata.create_all(engine)
        messaging_metadata.create_all(engine)

    with throwaway_engine("postgres", tmp_path, tables, "referrals") as engine:
        yield worker_factory(ReferralsService, db=Sessions(engine), intake=FakeIntake(), directory=FakeDirectory(),
                             keyring=keyring(), identity=verifier("referrals"))


@pytest.mark.postgres
def test_a_step_and_her_erasure_at_the_same_moment_take_turns_and_the_erasure_is_not_undone(pg_service, monkeypatch):
    """The recipient declines while her erasure is handled: the step read the referral before the erasure and
    commits after it. It must not write back what the erasure removed (the sender's reason, her values): the
    erasure waits for the step's row lock, then erases what the step wrote too."""
    import threading

    from services.referrals import domain

    service = pg_service
    sent = service.create_referral({"beneficiary_id": "b-1", "to_association": MARRAKECH,
                                    "service_category": "legal_orientation", "reason": "Needs a lawyer",
                                    "urgency": "urgent", "fields": ["first_name"]}, CASE_WORKER)
    service.transition(sent["id"], "acknowledge", {}, RECIPIENT)
    read, go, check = threading.Event(), threading.Event(), domain._check

    def paused_after_reading(referral, action, actor):
        step = check(referral, action, actor)
        read.set()
        go.wait(10)
        return step

    monkeypatch.setattr(domain, "_check", paused_after_reading)
    step = threading.Thread(target=service.transition, args=(sent["id"], "decline", {"reason": "No place"}, RECIPIENT))
    step.start()
    assert read.wait(10)
    erasure = threading.Thread(target=service.on_beneficiary_erased, args=(erased_event(),))
    erasure.start()
    erasure.join(1.5)
    assert erasure.is_alive()  # the step holds the referral's row: the erasure waits for it
    go.set()
    step.join(10)
    erasure.join(10)
    mine, theirs = service.get_referral(sent["id"], CASE_WORKER), service.get_referral(sent["id"], RECIPIENT)
    assert mine["state"] == "declined"
    assert (mine["reason"], theirs["reason"], theirs["shared"]) == ("", "", {})
    assert "No place" not in str(mine) and "No place" not in str(theirs)


def paused(monkeypatch, module, name):
    """Replace module.name by itself, paused once called until `go` is set; returns (called, go)."""
    import threading

    called, go, original = threading.Event(), threading.Event(), getattr(module, name)

    def pausing(*args, **kwargs):
        result = original(*args, **kwargs)
        called.set()
        go.wait(10)
        return result

    monkeypatch.setattr(module, name, pausing)
    return called, go


def run_while_paused(called, go, work, other):
    """`work` in a thread until it pauses, then `other` in another: returns whether `other` waited for `work`."""
    import threading

    first, second = threading.Thread(target=work), threading.Thread(target=other)
    first.start()
    assert called.wait(10)
    second.start()
    second.join(1.5)
    waited = second.is_alive()
    go.set()
    first.join(10)
    second.join(10)
    return waited


@pytest.mark.postgres
def test_her_erasure_noted_while_a_referral_about_her_is_being_made_waits_for_it_then_erases_it(pg_service,
                                                                                                monkeypatch):
    """The referral's unit of work checked that she was not erased and holds her; her erasure arrives then. It
    waits for the referral's commit, then erases it with the rest: nothing about her is kept."""
    from services.referrals import domain

    service = pg_service
    called, go = paused(monkeypatch, domain, "check_still_shareable")
    made = []
    waited = run_while_paused(called, go, lambda: made.append(create(service)),
                              lambda: service.on_beneficiary_erased(erased_event()))
    assert waited and made
    seen = service.get_referral(made[0]["id"], RECIPIENT)
    assert (seen["shared"], seen["reason"]) == ({}, "")
    assert service.get_referral(made[0]["id"], CASE_WORKER)["reason"] == ""


@pytest.mark.postgres
def test_a_partners_decline_and_her_erasure_at_the_same_moment_take_turns(pg_service, monkeypatch):
    """A queue partner's decline read the referral, then her erasure arrives: the erasure waits for the decline's
    row lock, then erases what it wrote too; the sender's reason never comes back."""
    from services.referrals import domain

    service = pg_service
    sent = service.create_referral({"beneficiary_id": "b-1", "to_association": RABAT,
                                    "service_category": "legal_orientation", "reason": "Needs a lawyer",
                                    "urgency": "urgent", "fields": ["first_name"]}, CASE_WORKER)
    ref = {"referral_id": sent["id"], "from_association": SAFI, "to_association": RABAT, "by": "p-1"}
    service.on_referral_update(contracts.validate(contracts.make("ma.tansiq.referral.acknowledged.v1", RABAT, ref)))
    called, go = paused(monkeypatch, domain, "get_referral")
    declined = contracts.validate(contracts.make("ma.tansiq.referral.declined.v1", RABAT, {**ref, "reason": "Full"}))
    waited = run_while_paused(called, go, lambda: service.on_referral_update(declined),
                              lambda: service.on_beneficiary_erased(erased_event()))
    monkeypatch.undo()
    mine = service.get_referral(sent["id"], CASE_WORKER)
    assert waited and mine["state"] == "declined"
    assert mine["reason"] == "" and "Full" not in str(mine)


def test_what_the_sender_writes_once_the_partners_copy_ended_or_as_it_ends_never_reaches_the_partner(service):
    """Her consent was revoked (the partner's copy ended and it was told data_erased); then the sender withdraws
    with a note about her. The note is the sender's alone: nothing the partner can open goes out, and the same
    for a withdrawal under a valid consent, which ends the partner's copy as it is sent."""
    revoked, kept = create(service, to=RABAT), create(service, to=RABAT)
    service.on_consent_revoked(contracts.validate(contracts.make("ma.tansiq.consent.revoked.v1", "intake", {
        "consent_id": "c-19", "beneficiary_id": "b-1", "association": SAFI, "recipients": [RABAT],
        "revoked_at": "2026-12-01T10:00:00+00:00"})))
    for sent in (revoked, kept):
        service.transition(sent["id"], "withdraw", {"note": "She moved to 12 rue Y, Casablanca"}, CASE_WORKER)
        assert "12 rue Y" in str(service.get_referral(sent["id"], CASE_WORKER)["history"])  # the sender keeps it
    withdrawn = [json.loads(m.body) for m in outbox(service)
                 if m.exchange == "partners.outbound" and m.type.endswith(".withdrawn.v1")]
    assert len(withdrawn) == 2
    for envelope in withdrawn:
        note = envelope["data"].get("sealed", {}).get("note")
        assert note is None or RABAT not in sealing.readers_of(note), envelope


def test_a_referral_id_already_used_is_refused_as_duplicate_not_dropped(service):
    data = {"referral_id": "p-90", "from_association": RABAT, "to_association": MARRAKECH,
            "service_category": "shelter", "urgency": "urgent", "reason": "Unsafe at home"}
    service.on_referral_sent(contracts.validate(contracts.make("ma.tansiq.referral.sent.v1", RABAT, data)))
    resent = contracts.validate(contracts.make("ma.tansiq.referral.sent.v1", RABAT, data))
    service.on_referral_sent(resent)  # the same referral sent again under a new message id: no second effect
    other = contracts.validate(contracts.make("ma.tansiq.referral.sent.v1", AGADIR, {
        **data, "from_association": AGADIR, "reason": "Another woman"}))
    with pytest.raises(DomainError) as refused:
        service.on_referral_sent(other)
    assert refused.value.code == "duplicate_id"
    assert service.get_referral("p-90", RECIPIENT)["reason"] == "Unsafe at home"


def test_received_referrals_page_by_cursor_while_new_ones_arrive(service):
    """Every referral once, none skipped, while more are sent between pages; a cursor is for one list."""
    existing = {create(service)["id"] for _ in range(23)}
    seen, cursor = [], None
    while True:
        page = service.list_referrals(RECIPIENT, "received", limit=7, cursor=cursor, paged=True)
        json.dumps(page)  # crosses RPC as JSON
        seen += [referral["id"] for referral in page["items"]]
        create(service)  # sent meanwhile: newer than everything listed, so on no page of this walk
        cursor = page["next"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 23 and set(seen) == existing
    assert all(r["direction"] == "received" for r in page["items"])

    first = service.list_referrals(RECIPIENT, "received", limit=2, paged=True)
    for actor, direction, status in ((CASE_WORKER, "sent", None), (RECIPIENT, "sent", None),
                                     (RECIPIENT, "received", "sent")):
        with pytest.raises(DomainError, match="another list"):
            service.list_referrals(actor, direction, status, limit=2, cursor=first["next"])
    for limit in (0, 201):
        with pytest.raises(DomainError) as refused:
            service.list_referrals(RECIPIENT, "received", limit=limit, paged=True)
        assert refused.value.code == "invalid_request"


def test_a_hosted_recipients_key_is_made_once_per_database_and_kept(service, tmp_path):
    """The second referral to Marrakech seals to the key kept from the first (no unit of work for it); another
    database (a restored or a test one) never gets this one's key; a partner's published key is never kept."""
    from services.referrals.models import AssociationKey
    from services.referrals.service import HOSTED_PUBLIC_KEYS

    first = create(service)
    [row] = service.session.scalars(select(AssociationKey).where(AssociationKey.association == MARRAKECH)).all()
    assert HOSTED_PUBLIC_KEYS[service.db.engine][MARRAKECH] == row.public_key
    units = []
    service.db.on_commit(units.append)
    second = create(service)
    assert len(units) == 1  # the referral's own unit of work (its checks inside it); the key from memory
    for sent in (first, second):
        assert service.transition(sent["id"], "acknowledge", {}, RECIPIENT)["shared"] == PII  # opens with her key
    assert RABAT not in HOSTED_PUBLIC_KEYS[service.db.engine]
    create(service, to=RABAT)
    assert RABAT not in HOSTED_PUBLIC_KEYS[service.db.engine]

    with sqlite_session(tmp_path / "other.db") as other:
        elsewhere = worker_factory(ReferralsService, db=Sessions(other.get_bind()), intake=FakeIntake(),
                                   directory=FakeDirectory(), keyring=keyring(), identity=verifier("referrals"))
        sent = create(elsewhere)
        assert elsewhere.transition(sent["id"], "acknowledge", {}, RECIPIENT)["shared"] == PII
        [own] = other.scalars(select(AssociationKey).where(AssociationKey.association == MARRAKECH)).all()
        assert own.public_key != row.public_key
