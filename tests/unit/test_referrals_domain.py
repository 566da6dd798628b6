"""Referral lifecycle rules on SQLite: transitions, who may act, consent, partners, what leaves."""

import json
from datetime import datetime, timedelta, timezone

import pytest
from fixtures.referrals import keyring, sqlite_session, staff
from sqlalchemy import select

from services.referrals import domain
from services.referrals.models import Referral
from tansiq import contracts, sealing
from tansiq.crypto import DecryptionFailed
from tansiq.envelope import parse
from tansiq.errors import DomainError, Forbidden, NotFound
from tansiq.messaging.store import OutboxMessage

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)  # a Tuesday
SAFI, MARRAKECH, AGADIR = "amal-safi", "wafae-marrakech", "nour-agadir"
PII = {"first_name": "Khadija", "phone": "+212600000042"}
CONSENTED = {"consent_id": "c-19", "shared": PII, "override": False}
SENDER = staff(SAFI)
RECIPIENT = staff(MARRAKECH)
KEYS = keyring()
PARTNER_KEY = sealing.generate_private_key()  # a queue partner's own encryption key

# The lifecycle as the issue states it, written out independently of domain.STEPS.
VALID = {
    ("sent", "acknowledge"), ("received", "accept"), ("received", "decline"), ("sent", "decline"),
    ("accepted", "start"),
    ("in_progress", "complete"), ("accepted", "close"), ("in_progress", "close"),
    ("sent", "withdraw"), ("received", "withdraw"), ("accepted", "withdraw"), ("in_progress", "withdraw"),
}
PATHS = {  # how to bring a referral to each state
    "sent": [], "received": ["acknowledge"], "accepted": ["acknowledge", "accept"],
    "declined": ["acknowledge", "decline"], "in_progress": ["acknowledge", "accept", "start"],
    "completed": ["acknowledge", "accept", "start", "complete"], "closed": ["acknowledge", "accept", "close"],
    "withdrawn": ["withdraw"],
}
ARGS = {"decline": {"reason": "no_capacity"}, "complete": {"outcome": "Legal aid granted"},
        "close": {"reason": "could_not_contact"}}
SENDER_ACTIONS = {"withdraw"}


@pytest.fixture
def session(tmp_path):
    with sqlite_session(tmp_path / "referrals.db") as session:
        yield session


def create(session, to=MARRAKECH, share=CONSENTED, to_integration="tansiq", actor=SENDER, **kwargs):
    if to_integration == "queue":
        kwargs.setdefault("to_encryption_key", sealing.public_key_b64(PARTNER_KEY))
    return domain.create_referral(
        session, NOW, actor, KEYS, beneficiary_id="b-7c2e", to_association=to, service_category="legal_orientation",
        reason="Needs a lawyer", urgency=kwargs.pop("urgency", "normal"), share=share,
        to_integration=to_integration, **kwargs)


def act(session, referral, action, actor=None, at=NOW):
    actor = actor or (SENDER if action in SENDER_ACTIONS else RECIPIENT)
    return domain.transition(session, at, actor, referral.id, action, **ARGS.get(action, {}))


def bring_to(session, state):
    referral = create(session)
    for action in PATHS[state]:
        act(session, referral, action)
    assert referral.state == state
    return referral


def outbox(session):
    return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.seq)))


def test_full_lifecycle_writes_history_and_one_event_per_transition(session):
    referral = create(session)
    assert referral.state == "sent" and referral.shared_fields == ["first_name", "phone"]
    for action in ("acknowledge", "accept", "start", "complete"):
        act(session, referral, action)
    session.commit()

    stored = session.get(Referral, referral.id)
    assert stored.state == "completed" and stored.outcome is None  # the outcome is sealed
    assert domain.view(stored, SENDER, NOW, KEYS)["outcome"] == "Legal aid granted"
    assert [(h.action, h.from_state, h.to_state) for h in stored.history] == [
        ("send", None, "sent"), ("acknowledge", "sent", "received"), ("accept", "received", "accepted"),
        ("start", "accepted", "in_progress"), ("complete", "in_progress", "completed")]
    assert [h.by for h in stored.history] == ["s-amal-safi"] + ["s-wafae-marrakech"] * 4
    assert [m.type.split(".")[3] for m in outbox(session)] == [
        "sent", "acknowledged", "accepted", "started", "completed"]
    # Every message is valid against its own contract and points at the referral.
    for message in outbox(session):
        envelope = contracts.validate(parse(message.body))
        assert envelope.data["referral_id"] == referral.id
        assert message.exchange == "tansiq.events"


@pytest.mark.parametrize("state", list(PATHS))
@pytest.mark.parametrize("action", ["acknowledge", "accept", "decline", "start", "complete", "close", "withdraw"])
def test_every_transition_outside_the_lifecycle_is_refused_clearly(session, state, action):
    referral = bring_to(session, state)
    history_before = len(referral.history)
    if (state, action) in VALID:
        act(session, referral, action)
        assert referral.state != state
        return
    with pytest.raises(DomainError) as refused:
        act(session, referral, action)
    assert refused.value.code == "invalid_transition"
    assert str(refused.value).startswith(f"cannot {action} a referral that is '{state}'; ")
    assert referral.state == state and len(referral.history) == history_before


def test_refusal_says_what_to_do_first(session):
    referral = create(session)
    with pytest.raises(DomainError, match=r"cannot complete a referral that is 'sent'; accept it"):
        act(session, referral, "complete")
    with pytest.raises(DomainError, match=r"cannot accept a referral that is 'sent'; acknowledge it first"):
        act(session, referral, "accept")
    act(session, referral, "withdraw")
    with pytest.raises(DomainError, match=r"'withdrawn' is final"):
        act(session, referral, "acknowledge")


def test_only_the_right_side_and_roles_may_act(session):
    referral = create(session)
    with pytest.raises(Forbidden, match="only the recipient association"):
        act(session, referral, "acknowledge", actor=SENDER)
    with pytest.raises(Forbidden, match="only the sender association"):
        act(session, referral, "withdraw", actor=RECIPIENT)
    with pytest.raises(Forbidden):
        act(session, referral, "acknowledge", actor=staff(AGADIR))
    for roles in (("events_manager",), ("coordinator",), ("admin",)):  # only case workers act on referrals
        with pytest.raises(Forbidden, match="role of case worker"):
            act(session, referral, "acknowledge", actor=staff(MARRAKECH, *roles))
        with pytest.raises(Forbidden, match="role of case worker"):  # nor read what was shared
            domain.get_for(session, referral.id, staff(MARRAKECH, *roles))
    with pytest.raises(NotFound):
        domain.get_for(session, referral.id, staff(AGADIR))
    assert referral.state == "sent"


def test_decline_needs_a_reason_then_reroute_in_one_step(session):
    referral = bring_to(session, "received")
    with pytest.raises(DomainError, match="reason is required") as refused:
        domain.transition(session, NOW, RECIPIENT, referral.id, "decline", reason="  ")
    assert refused.value.code == "reason_required"
    domain.transition(session, NOW, RECIPIENT, referral.id, "decline", reason="no_capacity", note="Full until January")
    seen_by_sender = domain.view(referral, SENDER, NOW, KEYS)
    assert seen_by_sender["decline_reason"] == "no_capacity"
    assert seen_by_sender["history"][-1]["note"] == "Full until January"
    # Declining ended the recipient's copy of what it was sent; its own words it still reads.
    seen_by_recipient = domain.view(referral, RECIPIENT, NOW, KEYS)
    assert (seen_by_recipient["shared"], seen_by_recipient["reason"], seen_by_recipient["decline_reason"]) == (
        {}, "", "no_capacity")
    assert seen_by_recipient["history"][-1]["note"] == "Full until January"

    with pytest.raises(DomainError) as same:
        domain.reroute(session, NOW, SENDER, KEYS, referral.id, to_association=MARRAKECH, share=CONSENTED)
    assert same.value.code == "same_recipient"
    with pytest.raises(Forbidden):
        domain.reroute(session, NOW, RECIPIENT, KEYS, referral.id, to_association=AGADIR, share=CONSENTED)

    new = domain.reroute(session, NOW, SENDER, KEYS, referral.id, to_association=AGADIR, share=CONSENTED)
    session.commit()
    assert (new.state, new.to_association, new.rerouted_from) == ("sent", AGADIR, referral.id)
    assert (new.beneficiary_id, new.service_category, new.urgency) == ("b-7c2e", "legal_orientation", "normal")
    assert referral.state == "rerouted" and referral.rerouted_to == new.id
    assert referral.history[-1].note == f"re-routed to {AGADIR} as {new.id}"
    rerouted = [json.loads(m.body) for m in outbox(session) if m.type.endswith(".rerouted.v1")]
    assert rerouted[0]["data"]["new_referral_id"] == new.id
    assert json.loads(outbox(session)[-2].body)["correlationid"] == referral.id  # the new sent joins the chain

    with pytest.raises(DomainError, match="cannot reroute a referral that is 'rerouted'"):
        domain.reroute(session, NOW, SENDER, KEYS, referral.id, to_association="hayat-rabat", share=CONSENTED)


def test_reroute_is_refused_unless_declined_or_expired(session):
    referral = bring_to(session, "accepted")
    with pytest.raises(DomainError) as refused:
        domain.reroute(session, NOW, SENDER, KEYS, referral.id, to_association=AGADIR, share=CONSENTED)
    assert refused.value.code == "invalid_transition"


def test_sender_withdraws_and_the_recipient_is_told(session):
    referral = bring_to(session, "accepted")
    act(session, referral, "withdraw")
    assert referral.state == "withdrawn"
    message = json.loads(outbox(session)[-1].body)
    assert message["type"] == "ma.tansiq.referral.withdrawn.v1" and message["source"] == SAFI


def test_close_needs_a_known_closure_reason(session):
    referral = bring_to(session, "in_progress")
    with pytest.raises(DomainError, match="closure reason must be one of"):
        domain.transition(session, NOW, RECIPIENT, referral.id, "close", reason="bored")
    domain.transition(session, NOW, RECIPIENT, referral.id, "close", reason="no_longer_needed")
    assert (referral.state, referral.closure_reason) == ("closed", "no_longer_needed")


def test_refused_without_consent_and_override_is_recorded(session):
    with pytest.raises(Forbidden) as refused:
        create(session, share={"consent_id": None, "shared": PII, "override": False})
    assert refused.value.code == "no_consent"
    assert session.scalars(select(Referral)).all() == []

    referral = create(session, share={"consent_id": None, "shared": {"first_name": "Khadija"}, "override": True},
                      actor=staff(SAFI, "case_worker", "coordinator"))
    assert referral.consent_override is True
    assert "override" in referral.history[0].note


def test_refuses_unshareable_fields_self_referral_and_missing_service(session):
    with pytest.raises(DomainError, match="cannot be shared: national_id"):
        create(session, share={"consent_id": "c-1", "shared": {"national_id": "X"}, "override": False})
    with pytest.raises(DomainError, match="another association"):
        create(session, to=SAFI)
    with pytest.raises(DomainError, match="does not offer") as unavailable:
        create(session, recipient_offers=False)
    assert unavailable.value.code == "service_not_offered"


def test_no_personal_field_leaves_in_events_for_a_tansiq_recipient(session):
    referral = bring_to(session, "completed")
    bodies = [m.body for m in outbox(session)]
    assert bodies and not any(value in body for body in bodies for value in PII.values())
    assert not any("Needs a lawyer" in body for body in bodies)  # the reason is her story too
    # The recipient reads the values from its own side; the sender sees field names only.
    assert domain.view(referral, RECIPIENT, NOW, KEYS)["shared"] == PII
    sender_view = domain.view(referral, SENDER, NOW, KEYS)
    assert "shared" not in sender_view and sender_view["shared_fields"] == ["first_name", "phone"]
    assert not any(value in repr(sender_view) for value in PII.values())


def test_in_one_unit_of_work_each_association_opens_only_its_own_copies_with_its_own_key(session):
    """A unit of work keeps the key rows it read (domain.read_association_keys): three associations' rows
    in one session must still each open what was sealed to that association and nothing else."""
    to_marrakech = create(session)
    other_share = {"consent_id": "c-20", "shared": {"first_name": "Salma"}, "override": False}
    to_agadir = create(session, to=AGADIR, share=other_share)
    agadir = staff(AGADIR)
    assert domain.view(to_marrakech, RECIPIENT, NOW, KEYS)["shared"] == PII
    assert domain.view(to_agadir, agadir, NOW, KEYS)["shared"] == {"first_name": "Salma"}
    assert domain.view(to_marrakech, SENDER, NOW, KEYS)["reason"] == "Needs a lawyer"
    # Agadir holds a key row in this session, but nothing of the referral to Marrakech is sealed to it.
    assert domain.open_field(KEYS, to_marrakech, "shared", AGADIR) is None
    assert domain.open_field(KEYS, to_marrakech, "reason", AGADIR) is None
    assert domain.open_field(KEYS, to_agadir, "shared", MARRAKECH) is None
    assert domain.open_field(KEYS, to_marrakech, "shared", SAFI) is None  # the sender sees field names only


def test_a_queue_partner_recipient_gets_the_chosen_fields_sealed_on_its_own_queue_only(session):
    referral = create(session, to_integration="queue")
    act(session, referral, "withdraw")
    messages = outbox(session)
    assert not [m for m in messages if any(value in m.body for value in (*PII.values(), "Needs a lawyer"))]
    partner_copy = contracts.validate(parse(next(m.body for m in messages if m.exchange == "partners.outbound"))).data
    assert (partner_copy["shared"], partner_copy["reason"]) == ({}, "")
    context = f"referral:{referral.id}:"
    opened = {field: sealing.open_sealed(value, MARRAKECH, PARTNER_KEY, context + field)
              for field, value in partner_copy["sealed"].items()}
    assert opened == {"shared": PII, "reason": "Needs a lawyer"}
    assert [m.routing_key for m in messages if m.exchange == "partners.outbound"] == [
        f"{MARRAKECH}.ma.tansiq.referral.sent.v1", f"{MARRAKECH}.ma.tansiq.referral.withdrawn.v1"]
    # The partner keeps its copy; we keep only the names.
    assert "shared" not in referral.sealed and domain.shared_values(KEYS, referral) == {}


def test_a_queue_partner_without_an_encryption_key_gets_nothing(session):
    with pytest.raises(DomainError) as refused:
        create(session, to_integration="queue", to_encryption_key=None)
    assert refused.value.code == "no_encryption_key"
    assert session.scalars(select(Referral)).all() == [] and outbox(session) == []


def test_partner_updates_apply_once_and_our_own_echo_is_ignored(session):
    referral = create(session, to_integration="queue")
    data = {"referral_id": referral.id, "from_association": SAFI, "to_association": MARRAKECH, "by": "p-3"}
    ack = "ma.tansiq.referral.acknowledged.v1"
    assert domain.apply_partner_update(session, NOW, MARRAKECH, ack, data) is referral
    assert referral.state == "received" and referral.history[-1].by == "p-3"
    assert domain.apply_partner_update(session, NOW, MARRAKECH, ack, data) is None  # a re-send
    with pytest.raises(Forbidden):  # another association cannot speak for the recipient
        domain.apply_partner_update(session, NOW, AGADIR, "ma.tansiq.referral.accepted.v1", data)
    with pytest.raises(DomainError) as refused:
        domain.apply_partner_update(session, NOW, MARRAKECH, "ma.tansiq.referral.completed.v1",
                                    {**data, "outcome": "done"})
    assert refused.value.code == "invalid_transition"
    # The partner is not sent back what it did itself.
    assert not any(m.routing_key.endswith("acknowledged.v1") for m in outbox(session)
                   if m.exchange == "partners.outbound")

    local = create(session)  # a Tansiq recipient: the event on the bus is our own echo
    echo = {**data, "referral_id": local.id}
    assert domain.apply_partner_update(session, NOW, MARRAKECH, ack, echo) is None
    assert local.state == "sent"


def test_a_referral_from_a_partner_system_is_received_once(session):
    data = contracts.validate(contracts.make("ma.tansiq.referral.sent.v1", "hayat-rabat", {
        "referral_id": "p-77", "from_association": "hayat-rabat", "to_association": MARRAKECH,
        "service_category": "shelter", "urgency": "urgent", "reason": "Unsafe at home", "shared": PII,
        "consent_id": "pc-1"})).data
    referral = domain.receive_partner_referral(session, NOW, KEYS, "hayat-rabat", data)
    assert (referral.state, referral.origin, referral.from_integration) == ("sent", "partner", "queue")
    assert domain.view(referral, RECIPIENT, NOW, KEYS)["shared"] == PII
    assert domain.receive_partner_referral(session, NOW, KEYS, "hayat-rabat", data) is None
    with pytest.raises(Forbidden):
        domain.receive_partner_referral(session, NOW, KEYS, "other-org", {**data, "referral_id": "p-78"})
    assert not any(value in m.body for m in outbox(session) for value in PII.values())
    # The recipient acts in Tansiq; the partner sender hears back on its own queue.
    act(session, referral, "acknowledge")
    assert outbox(session)[-1].routing_key == "hayat-rabat.ma.tansiq.referral.acknowledged.v1"


def test_a_partner_may_seal_what_it_sends_and_we_store_it_as_it_came(session):
    from tansiq.partner import PartnerClient

    recipient_key = domain.hosted_public_key(session, KEYS, MARRAKECH, NOW)  # `tansiq keys public` prints it
    sealed = {"shared": PartnerClient.seal("p-90", "shared", PII, {MARRAKECH: recipient_key}),
              "reason": PartnerClient.seal("p-90", "reason", "Unsafe at home", {MARRAKECH: recipient_key})}
    data = contracts.validate(contracts.make("ma.tansiq.referral.sent.v1", "hayat-rabat", {
        "referral_id": "p-90", "from_association": "hayat-rabat", "to_association": MARRAKECH,
        "service_category": "shelter", "urgency": "urgent", "shared_fields": sorted(PII), "sealed": sealed})).data
    referral = domain.receive_partner_referral(session, NOW, KEYS, "hayat-rabat", data)
    seen = domain.view(referral, RECIPIENT, NOW, KEYS)
    assert (seen["shared"], seen["reason"], seen["shared_fields"]) == (PII, "Unsafe at home", sorted(PII))
    assert referral.sealed == sealed


def test_consent_revocation_erases_shared_values_and_tells_the_recipient(session):
    first, second = create(session), create(session, to=AGADIR, to_integration="queue")
    other = create(session, share={"consent_id": "c-20", "shared": PII, "override": False})
    erased = domain.erase_shared_for_consent(session, NOW + timedelta(hours=1), "c-19")
    session.commit()
    assert {r.id for r in erased} == {first.id, second.id}
    assert "shared" not in first.sealed and MARRAKECH not in sealing.readers_of(first.sealed["reason"])
    assert first.shared_erased_at == NOW + timedelta(hours=1)
    assert first.history[-1].action == "erase_shared" and first.state == "sent"
    assert domain.view(first, RECIPIENT, NOW, KEYS)["shared"] == {}
    assert domain.shared_values(KEYS, other) == PII
    told = [(m.exchange, m.routing_key) for m in outbox(session) if m.type.endswith("data_erased.v1")]
    assert ("partners.outbound", f"{AGADIR}.ma.tansiq.referral.data_erased.v1") in told
    assert len([t for t in told if t[0] == "tansiq.events"]) == 2
    assert domain.erase_shared_for_consent(session, NOW, "c-19") == []  # a redelivery changes nothing


def test_lists_overdue_first(session):
    old = create(session)
    fresh = domain.create_referral(
        session, NOW + timedelta(days=6), SENDER, KEYS, beneficiary_id="b-2", to_association=MARRAKECH,
        service_category="shelter", reason="r", urgency="normal", share=CONSENTED)
    done = bring_to(session, "completed")
    later = NOW + timedelta(days=7)
    listed = domain.list_referrals(session, later, SAFI, "sent")
    assert [r.id for r in listed][:2] == [old.id, fresh.id] and domain.is_overdue(old, later)
    assert {r.id for r in domain.list_referrals(session, later, MARRAKECH, "received", status="completed")} == {
        done.id}
    assert domain.list_referrals(session, later, SAFI, "received") == []


def test_received_values_and_words_are_sealed_at_rest(session):
    referral = create(session, note="She asked for a woman lawyer")
    session.commit()
    raw = repr([session.connection().exec_driver_sql(f"SELECT * FROM {table}").fetchall()
                for table in ("referrals", "referral_history")]).encode()
    assert not any(value.encode() in raw for value in (*PII.values(), "Needs a lawyer", "woman lawyer"))
    assert domain.shared_values(KEYS, referral) == PII
    with pytest.raises(DecryptionFailed):  # another master key reads nothing
        domain.shared_values(keyring(), referral)


def expired(session, **kwargs):
    referral = create(session, **kwargs)
    domain.scan_deadlines(session, NOW + timedelta(days=60))  # long past every deadline: it expires
    assert referral.state == "expired" and referral.shared_erased_at is None  # the recipient still holds it
    return referral


def test_the_sender_dismisses_a_declined_referral_and_nobody_reads_her_note_but_her_side(session):
    referral = bring_to(session, "declined")
    messages_before = len(outbox(session))
    domain.transition(session, NOW, SENDER, referral.id, "dismiss", note="She found a shelter in Rabat")
    session.commit()
    assert (referral.state, referral.rerouted_to) == ("closed", None)
    assert [(h.action, h.from_state, h.to_state, h.by) for h in referral.history[-1:]] == [
        ("dismiss", "declined", "closed", SENDER.id)]
    assert domain.view(referral, SENDER, NOW, KEYS)["history"][-1]["note"] == "She found a shelter in Rabat"
    assert domain.view(referral, RECIPIENT, NOW, KEYS)["history"][-1]["note"] == ""  # her copy ended at the decline
    # One internal event; the recipient's copy had ended already: no second erasure, nothing to a partner.
    added = outbox(session)[messages_before:]
    assert [(m.type, m.exchange) for m in added] == [("ma.tansiq.referral.dismissed.v1", "tansiq.events")]
    assert contracts.validate(parse(added[0].body)).data["by"] == SENDER.id


def test_dismissing_an_expired_referral_ends_the_partner_recipients_copy_and_tells_it(session):
    referral = expired(session, to_integration="queue")
    messages_before = len(outbox(session))
    domain.transition(session, NOW + timedelta(days=60), SENDER, referral.id, "dismiss")
    assert referral.state == "closed" and referral.shared_erased_at is not None
    assert domain.view(referral, RECIPIENT, NOW, KEYS)["reason"] == ""
    added = [(m.exchange, m.routing_key) for m in outbox(session)[messages_before:]]
    # The partner is not sent the dismissal (not its contract); it is told its copy ends (data_erased).
    assert (("partners.outbound", f"{MARRAKECH}.ma.tansiq.referral.data_erased.v1") in added
            and not any(key.endswith("dismissed.v1") for exchange, key in added if exchange == "partners.outbound"))
    assert referral.history[-1].note == domain.DISMISSED


@pytest.mark.parametrize("state", ["sent", "received", "accepted", "in_progress", "completed", "closed", "withdrawn"])
def test_dismiss_is_refused_from_every_other_state(session, state):
    referral = bring_to(session, state)
    with pytest.raises(DomainError) as refused:
        act(session, referral, "dismiss", actor=SENDER)
    assert refused.value.code == "invalid_transition" and referral.state == state


def test_dismiss_is_refused_once_rerouted_and_twice(session):
    referral = bring_to(session, "declined")
    domain.reroute(session, NOW, SENDER, KEYS, referral.id, to_association=AGADIR, share=CONSENTED)
    with pytest.raises(DomainError, match="'rerouted' is final"):
        act(session, referral, "dismiss", actor=SENDER)
    other = expired(session)
    act(session, other, "dismiss", actor=SENDER)
    with pytest.raises(DomainError, match="'closed' is final"):
        act(session, other, "dismiss", actor=SENDER)


def test_only_the_senders_case_workers_may_dismiss(session):
    referral = bring_to(session, "declined")
    with pytest.raises(Forbidden, match="only the sender association"):
        act(session, referral, "dismiss", actor=RECIPIENT)
    with pytest.raises(Forbidden):
        act(session, referral, "dismiss", actor=staff(AGADIR))
    for roles in (("events_manager",), ("coordinator",), ("admin",)):
        with pytest.raises(Forbidden, match="role of case worker"):
            act(session, referral, "dismiss", actor=staff(SAFI, *roles))
    assert referral.state == "declined"


def test_a_partner_cannot_send_a_dismissal(session):
    referral = bring_to(session, "declined")
    data = {"referral_id": referral.id, "from_association": SAFI, "to_association": MARRAKECH, "by": "p-3"}
    with pytest.raises(DomainError) as refused:
        domain.apply_partner_update(session, NOW, SAFI, "ma.tansiq.referral.dismissed.v1", data)
    assert refused.value.code == "not_allowed" and referral.state == "declined"


def test_re_routing_an_expired_referral_ends_what_its_silent_recipient_held(session):
    referral = expired(session, to_integration="queue")
    later = NOW + timedelta(days=60)
    domain.reroute(session, later, SENDER, KEYS, referral.id, to_association=AGADIR, share=CONSENTED)
    assert referral.state == "rerouted" and referral.shared_erased_at == later
    assert domain.view(referral, RECIPIENT, later, KEYS)["reason"] == ""
    assert f"{MARRAKECH}.ma.tansiq.referral.data_erased.v1" in [m.routing_key for m in outbox(session)
                                                              if m.exchange == "partners.outbound"]
