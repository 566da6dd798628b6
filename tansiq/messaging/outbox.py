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
    # A Core insert, not an ORM object: no flush of its own, in every service's commands and handlers.
    session.execute(OUTBOX.insert().values(message_id=envelope.id, type=envelope.type, exchange=exchange,
                                           routing_key=routing_key or envelope.type, body=envelope.to_json()))
    session.info[SESSION_FLAG] = True
    return envelope
