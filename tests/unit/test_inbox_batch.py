"""inbox.first_times: a batch's messages recorded with one query, each id once, redeliveries recognised."""

from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from tansiq import contracts
from tansiq.db import make_engine
from tansiq.messaging import inbox
from tansiq.messaging.store import InboxMessage, messaging_metadata

REGISTERED = "ma.tansiq.beneficiary.registered.v1"


def envelopes(n):
    return [contracts.make(REGISTERED, "amal-safi", contracts.get(REGISTERED).example) for _ in range(n)]


def session():
    engine = make_engine("sqlite://")
    messaging_metadata.create_all(engine)
    return Session(engine)


def test_each_id_is_new_once_within_a_batch_and_across_batches():
    db = session()
    first, second, third = envelopes(3)
    assert inbox.first_times(db, "notifications", [first, second, first]) == [first, second]
    db.commit()
    assert inbox.first_times(db, "notifications", [second, third, first]) == [third]  # a redelivered batch
    assert inbox.first_time(db, "notifications", first) is False  # one table for both ways in
    assert inbox.first_times(db, "referrals", [first]) == [first]  # another consumer's inbox
    assert sorted(db.scalars(select(InboxMessage.message_id).where(InboxMessage.consumer == "notifications"))) \
        == sorted(e.id for e in (first, second, third))


def test_a_partner_message_in_a_batch_keeps_its_own_namespace():
    db = session()
    network, = envelopes(1)
    partner = replace(network, sender="nour-partner")  # the same id, from a partner: another message
    assert inbox.first_times(db, "referrals", [network, partner]) == [network, partner]
    assert inbox.first_times(db, "referrals", [partner]) == []
