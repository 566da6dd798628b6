"""The kernel's shared writes under contention and partial failure, on real databases.

- The audit chain (services.intake.audit) with several writers at once, each in its own connection
  and transaction, as intake's workers are: the head row serialises them, so the chain still verifies
  and holds every entry, even when they all start on an empty chain.
- The first key pair of a hosted association (services.referrals.domain.hosted_public_key), made by
  several referrals at once: one pair stands, every writer gets its public key, none fails on the
  unique key (a partner's referral that failed so was retried, and could be dead-lettered).
- The outbox relay (tansiq.messaging.relay.relay_once) when the broker confirms only part of a batch:
  what was confirmed is marked sent and its body dropped, the rest stays pending with its error and
  goes out, in order, on the next pass; nothing confirmed is sent again. The publisher is the edge
  (a stand-in that confirms what it is told to); the outbox is a real table.
"""

import re
import threading
import uuid
from datetime import datetime, timezone

import pytest
from fixtures.referrals import keyring
from harness import create_pg_database, drop_pg_database
from sqlalchemy import func, select

from services.intake import audit
from services.intake.models import AuditEntry, create_all
from services.referrals import domain as referrals
from services.referrals.models import AssociationKey
from services.referrals.models import Base as ReferralsBase
from tansiq import contracts
from tansiq.db import make_engine, session_scope
from tansiq.messaging import outbox
from tansiq.messaging.relay import relay_once
from tansiq.messaging.store import PENDING, SENT, OutboxMessage, messaging_metadata

WRITERS, APPENDS = 6, 25


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    database = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'kernel.sqlite3'}"
    else:
        database = f"tansiq_kernel_{uuid.uuid4().hex[:10]}"
        url = create_pg_database(database)
    engine = make_engine(url)
    yield engine
    engine.dispose()
    if database:
        drop_pg_database(database)


def at_once(write, writers=WRITERS, timeout=120):
    """`write(number)` in `writers` threads released together, each in its own connections; their failures."""
    start, failures = threading.Barrier(writers), []

    def writer(number):
        try:
            start.wait()
            write(number)
        except Exception as exc:  # noqa: BLE001 - reported with the writer's number
            failures.append((number, repr(exc)))

    threads = [threading.Thread(target=writer, args=(number,)) for number in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return failures


def test_concurrent_writers_keep_one_verifiable_chain_from_an_empty_one(engine):
    create_all(engine)

    def write(number):  # all at once, on a chain that has no head yet
        for append in range(APPENDS):
            with session_scope(engine) as session:
                audit.append(session, beneficiary_id=f"b-{number}", staff_id=f"s-{number}",
                             association="amal-safi", action="read", fields=["phone"],
                             detail=f"writer {number}, entry {append}", at=datetime.now(timezone.utc))

    assert at_once(write) == []
    with session_scope(engine) as session:
        assert audit.verify(session) == []
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == WRITERS * APPENDS
        assert audit.anchor(session)["entries"] == WRITERS * APPENDS


def test_writers_making_an_associations_first_key_pair_at_once_all_get_the_one_that_stands(engine):
    ReferralsBase.metadata.create_all(engine)
    keys, public_keys = keyring(), []

    def write(_number):  # all at once, before the association has a key pair
        with session_scope(engine) as session:
            now = datetime.now(timezone.utc)
            public_keys.append(referrals.hosted_public_key(session, keys, "wafae-marrakech", now))

    assert at_once(write) == []
    with session_scope(engine) as session:
        stored = session.scalars(select(AssociationKey)).all()
    assert [row.association for row in stored] == ["wafae-marrakech"]
    assert public_keys == [stored[0].public_key] * WRITERS


class Broker:
    """Confirms the messages of each batch whose position `confirms`; records every attempt."""

    def __init__(self, confirms=lambda position: True):
        self.confirms, self.attempts, self.confirmed = confirms, [], []

    def publish_many(self, messages):
        ids = [message_id for _, _, _, message_id in messages]
        self.attempts += ids
        confirmed = [message_id for position, message_id in enumerate(ids) if self.confirms(position)]
        self.confirmed += confirmed
        return confirmed


def test_a_batch_confirmed_in_part_keeps_the_rest_pending_and_sends_it_next_in_order(engine):
    messaging_metadata.create_all(engine)
    with session_scope(engine) as session:
        sent = outbox.add_many(session, [contracts.make("ma.tansiq.event.overlap_detected.v1", "events", {
            "event_id": f"e-{n}", "other_event_id": f"o-{n}", "city": "Safi", "organisers": ["amal-safi"]})
            for n in range(7)])
    ids = [envelope.id for envelope in sent]

    half = Broker(confirms=lambda position: position % 2 == 0)
    with pytest.raises(RuntimeError, match="3 of 7"):
        relay_once(engine, half)
    with session_scope(engine) as session:
        rows = {row.message_id: row for row in session.scalars(select(OutboxMessage))}
    assert {i for i in ids if rows[i].state == SENT} == set(ids[0::2]) == set(half.confirmed)
    for message_id in ids[0::2]:  # confirmed: sent, and no copy of the body kept
        assert rows[message_id].body == "" and rows[message_id].last_error is None
    for message_id in ids[1::2]:  # not confirmed: still pending, whole, with why
        assert rows[message_id].state == PENDING and rows[message_id].body
        assert "not confirmed" in rows[message_id].last_error

    rest = Broker()
    assert relay_once(engine, rest) == 3
    assert rest.attempts == ids[1::2]  # only what was not confirmed, in the order it was written
    assert relay_once(engine, rest) == 0
    with session_scope(engine) as session:
        assert set(session.scalars(select(OutboxMessage.state))) == {SENT}
        assert set(session.scalars(select(OutboxMessage.body))) == {""}


def test_a_relay_pass_reads_the_rows_to_send_not_every_row_ever_sent(engine):
    """Sent rows are kept (bodies blanked), and the database's statistics may date from when they were
    pending (a new service's first burst): the relay's query must still read only the rows to send, by the
    partial index of pending rows (ix_outbox_pending). It used to walk the primary key over every row
    ever sent, on every pass (PostgreSQL: 10,060 buffers for 5,000 sent rows)."""
    from sqlalchemy import event as sqlalchemy_event
    from sqlalchemy import update

    messaging_metadata.create_all(engine)
    envelope = {"event_id": "e", "other_event_id": "o", "city": "Safi", "organisers": ["amal-safi"]}
    with session_scope(engine) as session:
        outbox.add_many(session, [contracts.make("ma.tansiq.event.overlap_detected.v1", "events", envelope)
                                  for _ in range(5000)])
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")  # while all of them are pending
    with session_scope(engine) as session:
        session.execute(update(OutboxMessage).values(state=SENT, body=""))
        outbox.add_many(session, [contracts.make("ma.tansiq.event.overlap_detected.v1", "events", envelope)
                                  for _ in range(3)])
    selects = []

    def remember(connection, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "FROM outbox" in statement:
            selects.append((statement, parameters))

    sqlalchemy_event.listen(engine, "before_cursor_execute", remember)
    try:
        assert relay_once(engine, Broker()) == 3
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", remember)
    [(statement, parameters)] = selects
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            plan = "\n".join(row[0] for row in connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters))
            assert "Rows Removed by Filter" not in plan, plan
            assert max(int(hits) for hits in re.findall(r"shared hit=(\d+)", plan)) < 500, plan
        else:
            plan = " / ".join(row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}",
                                                                             parameters))
            assert "USING INDEX ix_outbox_" in plan, plan  # not a SCAN of the whole table
