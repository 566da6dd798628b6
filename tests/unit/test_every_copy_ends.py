"""Every copy has an end: withdraw and decline at once, close and complete after the retention,
erasure everywhere (override-shared referrals, free text, notification rows)."""

from datetime import datetime, timedelta, timezone

import pytest
from fixtures.notifications import directory  # noqa: F401 - fixtures
from fixtures.notifications import session as notifications_session  # noqa: F401 - fixtures
from fixtures.referrals import keyring, sqlite_session, staff
from sqlalchemy import select

from services.notifications import domain as notifications
from services.notifications.models import Delivery, InboxItem
from services.referrals import domain
from tansiq import contracts, sealing
from tansiq.envelope import parse
from tansiq.messaging.store import OutboxMessage

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
SAFI, MARRAKECH = "amal-safi", "wafae-marrakech"
SENDER, RECIPIENT = staff(SAFI), staff(MARRAKECH)
# Overrides are made by a case worker who is also a coordinator (only case workers act on referrals).
COORDINATOR = staff(SAFI, "case_worker", "coordinator")
PII = {"first_name": "Khadija", "phone": "+212600000042"}
KEYS = keyring()


@pytest.fixture
def session(tmp_path):
    with sqlite_session(tmp_path / "referrals.db") as session:
        yield session


def create(session, share=None, actor=SENDER, beneficiary_id="b-1"):
    return domain.create_referral(
        session, NOW, actor, KEYS, beneficiary_id=beneficiary_id, to_association=MARRAKECH,
        service_category="legal_orientation", reason="Needs a lawyer", urgency="normal",
        share=share or {"consent_id": "c-19", "shared": PII, "override": False}, note="She prefers mornings")


def step(session, referral, *actions, at=NOW, **kwargs):
    for action in actions:
        actor = SENDER if action == "withdraw" else RECIPIENT
        domain.transition(session, at, actor, referral.id, action, **kwargs.get(action, {}))


def recipient_reads(referral):
    seen = domain.view(referral, RECIPIENT, NOW, KEYS)
    # What people wrote (Tansiq's own notes, like "retention period ended", are not hers to lose).
    written = [shown["note"] for shown, entry in zip(seen["history"], referral.history, strict=True)
               if shown["note"] != entry.note]
    return {"shared": seen["shared"], "reason": seen["reason"], "notes": written,
            "decline_reason": seen["decline_reason"], "outcome": seen["outcome"]}


NOTHING = {"shared": {}, "reason": "", "notes": [], "decline_reason": None, "outcome": None}


def test_the_recipient_reads_while_the_referral_is_open(session):
    referral = create(session)
    step(session, referral, "acknowledge", "accept")
    assert recipient_reads(referral) == {**NOTHING, "shared": PII, "reason": "Needs a lawyer",
                                         "notes": ["She prefers mornings"]}


@pytest.mark.parametrize("path", [("withdraw",), ("acknowledge", "withdraw"), ("acknowledge", "decline")])
def test_withdraw_and_decline_end_the_recipients_copy_at_once(session, path):
    referral = create(session)
    step(session, referral, *path, decline={"reason": "Pas de place"}, withdraw={"note": "Elle a déménagé"})
    # Nothing of what it was sent; its own answer (a decline reason) it still reads.
    own_words = {"decline_reason": "Pas de place"} if "decline" in path else {}
    assert recipient_reads(referral) == {**NOTHING, **own_words}
    assert "shared" not in referral.sealed and referral.shared_erased_at == NOW
    # The sender keeps her own words (and the recipient's answer).
    seen = domain.view(referral, SENDER, NOW, KEYS)
    assert seen["reason"] == "Needs a lawyer" and "She prefers mornings" in seen["history"][0]["note"]


@pytest.mark.parametrize("end", ["close", "complete"])
def test_closed_and_completed_keep_the_copy_for_the_retention_then_it_ends(session, end):
    referral = create(session)
    step(session, referral, "acknowledge", "accept", "start", close={"reason": "no_longer_needed"},
         complete={"outcome": "Aide juridique obtenue"})
    domain.transition(session, NOW, RECIPIENT, referral.id, end, retention_days=30,
                      reason="no_longer_needed", outcome="Aide juridique obtenue")
    assert referral.copy_expires_at == NOW + timedelta(days=30)
    assert domain.expire_copies(session, NOW + timedelta(days=29)) == []
    assert recipient_reads(referral)["shared"] == PII
    assert domain.expire_copies(session, NOW + timedelta(days=30)) == [referral]
    own_words = {"outcome": "Aide juridique obtenue"} if end == "complete" else {}
    assert recipient_reads(referral) == {**NOTHING, **own_words}
    assert referral.copy_expires_at is None and domain.expire_copies(session, NOW + timedelta(days=90)) == []
    assert domain.view(referral, SENDER, NOW, KEYS)["reason"] == "Needs a lawyer"


def test_erasure_reaches_override_referrals_and_every_word_on_both_sides(session):
    override = create(session, share={"consent_id": None, "shared": PII, "override": True}, actor=COORDINATOR)
    consented = create(session)
    other = create(session, beneficiary_id="b-2")
    step(session, consented, "acknowledge", "accept", "start", "complete", complete={"outcome": "Aide obtenue"})
    erased = domain.erase_for_beneficiary(session, NOW, "b-1")
    session.commit()
    assert {r.id for r in erased} == {override.id, consented.id}
    for referral in (override, consented):
        assert recipient_reads(referral) == NOTHING
        seen_by_sender = domain.view(referral, SENDER, NOW, KEYS)
        assert (seen_by_sender["reason"], seen_by_sender["outcome"]) == ("", None)
        assert all(h.sealed_note is None for h in referral.history) and referral.sealed == {}
    assert recipient_reads(other)["shared"] == PII  # another woman's referral is untouched
    told = session.scalars(select(OutboxMessage).where(OutboxMessage.type == "ma.tansiq.referral.data_erased.v1"))
    assert {contracts.validate(parse(m.body)).data["referral_id"] for m in told} == {override.id, consented.id}
    before = len(session.scalars(select(OutboxMessage)).all())
    assert domain.erase_for_beneficiary(session, NOW, "b-1") == erased  # a redelivery changes nothing
    assert len(session.scalars(select(OutboxMessage)).all()) == before


def test_a_partner_recipients_copy_is_sealed_to_it_and_ends_on_its_side(session):
    partner_key = sealing.generate_private_key()
    referral = domain.create_referral(
        session, NOW, SENDER, KEYS, beneficiary_id="b-1", to_association=MARRAKECH, to_integration="queue",
        to_encryption_key=sealing.public_key_b64(partner_key), service_category="legal_orientation",
        reason="Needs a lawyer", urgency="normal", share={"consent_id": "c-1", "shared": PII, "override": False})
    # We never held the partner's copy of the values: only the reason, which the sender reads.
    assert set(referral.sealed) == {"reason"}
    assert domain.view(referral, RECIPIENT, NOW, KEYS)["shared"] == {}


def test_erasure_removes_the_notification_rows_about_her(notifications_session, directory):  # noqa: F811
    registered = contracts.validate(contracts.make("ma.tansiq.beneficiary.registered.v1", "intake", {
        "beneficiary_id": "b-1", "association": SAFI, "registered_by": "s-amal-cw-fr", "urgency": "urgent"}))
    other = contracts.validate(contracts.make("ma.tansiq.beneficiary.registered.v1", "intake", {
        "beneficiary_id": "b-2", "association": SAFI, "registered_by": "s-amal-cw-fr", "urgency": "urgent"}))
    for event in (registered, other):
        notifications.notify(notifications_session, directory, event, NOW, enabled_channels=("email",))
    notifications_session.commit()
    links = {item.link for item in notifications_session.scalars(select(InboxItem))}
    assert links == {"/beneficiaries/b-1", "/beneficiaries/b-2"}
    assert notifications.forget_beneficiary(notifications_session, "b-1") > 0
    notifications_session.commit()
    assert {item.link for item in notifications_session.scalars(select(InboxItem))} == {"/beneficiaries/b-2"}
    remaining = notifications_session.scalars(select(Delivery)).all()
    assert remaining and {d.inbox_item_id for d in remaining} <= {
        item.id for item in notifications_session.scalars(select(InboxItem))}
