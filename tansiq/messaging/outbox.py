"""Transactional outbox: record messages in the caller's DB transaction.

The relay (tansiq.messaging.relay) publishes them after commit, with confirms
and `mandatory`, and marks them sent; a crash in between means a re-send,
which consumers absorb through their inbox.
"""

from tansiq.messaging.store import OutboxMessage
from tansiq.messaging.topology import EVENTS_EXCHANGE

# Sessions that added outbox rows, so the relay can be woken right after commit.
SESSION_FLAG = "tansiq_outbox_dirty"
OUTBOX = OutboxMessage.__table__


def add(session, envelope, exchange=EVENTS_EXCHANGE, routing_key=None):
    """Queue `envelope` for publishing when (and only if) `session` commits."""
    return add_many(session, [envelope], exchange, routing_key)[0]


def add_many(session, envelopes, exchange=EVENTS_EXCHANGE, routing_key=None):
    """Queue several envelopes in one INSERT (in this order), as `add` queues one."""
    # A Core insert, not ORM objects: no flush of its own, in every service's commands and handlers.
    if envelopes:
        # Not tansiq.db.insert_many: tansiq.db brings the relay, which imports this module.
        session.execute(OUTBOX.insert(), [
            {"message_id": envelope.id, "type": envelope.type, "exchange": exchange,
             "routing_key": routing_key or envelope.type, "body": envelope.to_json()} for envelope in envelopes])
        session.info[SESSION_FLAG] = True
    return envelopes
