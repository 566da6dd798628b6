"""Idempotent consumer: remember processed message ids in the effect's transaction.

A partner's message ids live in its own namespace: the key is scoped by the broker-validated
sender, so two partners (or a partner and the network) can use the same id without one
message hiding the other. The same id from the same partner with other content is refused
(`duplicate_id`), never taken for a redelivery and silently ignored.
"""

import hashlib
import json

from sqlalchemy import insert, select

from tansiq.db import insert_many
from tansiq.errors import Conflict
from tansiq.messaging.store import InboxMessage

INBOX = InboxMessage.__table__
CONTENT_SUFFIX = ":content"  # the consumer name under which a partner message's fingerprint is kept


def first_time(session, consumer, envelope):
    """True the first time `consumer` sees this message id; records it in `session`.

    Call inside the transaction that holds the effect. If two deliveries race,
    the unique constraint fails the second commit; its message is retried and
    then seen as already processed.
    """
    if envelope.sender:
        return _first_time_from_partner(session, consumer, envelope)
    if _seen(session, consumer, envelope.id):
        return False
    _record(session, consumer, envelope.id, envelope.type)
    return True


def first_times(session, consumer, envelopes):
    """The envelopes `consumer` sees for the first time, in order, each recorded in `session`: what
    `first_time` does for each, with one query for the batch's network messages (a batched handler's
    unit of work). A message id twice in `envelopes` counts once."""
    network_ids = [envelope.id for envelope in envelopes if not envelope.sender]
    seen = set()
    for chunk in _chunks(network_ids, 500):  # bound the IN list (SQLite's parameter limit)
        seen.update(session.scalars(select(InboxMessage.message_id).where(
            InboxMessage.consumer == consumer, InboxMessage.message_id.in_(chunk))))
    fresh, rows = [], []
    for envelope in envelopes:
        if envelope.sender:
            if _first_time_from_partner(session, consumer, envelope):
                fresh.append(envelope)
        elif envelope.id not in seen:
            seen.add(envelope.id)
            rows.append({"consumer": consumer, "message_id": envelope.id, "type": envelope.type})
            fresh.append(envelope)
    insert_many(session, INBOX, rows)  # one INSERT for the batch
    return fresh


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def partner_key(sender, message_id):
    """The inbox key of a partner's message id: its sender's namespace (64 hex characters)."""
    return hashlib.sha256(f"{sender}\n{message_id}".encode()).hexdigest()


def fingerprint(envelope):
    """What makes two messages with one id the same message: sender, id, type and data."""
    data = envelope.raw["data"] if envelope.raw is not None else envelope.data
    content = json.dumps([envelope.sender, envelope.id, envelope.type, data], sort_keys=True, ensure_ascii=False,
                         separators=(",", ":"), default=str)
    return hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()


def _first_time_from_partner(session, consumer, envelope):
    key, content = partner_key(envelope.sender, envelope.id), fingerprint(envelope)
    if _seen(session, consumer, key):
        if _seen(session, consumer + CONTENT_SUFFIX, content):
            return False  # a redelivery or a re-send of the same message
        raise Conflict(f"message id {envelope.id!r} was already used for another message", code="duplicate_id")
    _record(session, consumer, key, envelope.type)
    _record(session, consumer + CONTENT_SUFFIX, content, envelope.type)
    return True


def _seen(session, consumer, message_id):
    return session.scalar(select(InboxMessage.id).where(InboxMessage.consumer == consumer,
                                                        InboxMessage.message_id == message_id)) is not None


def _record(session, consumer, message_id, type_):
    # A Core insert, run at once: a racing delivery of the same message fails here, on the unique key.
    session.execute(insert(INBOX).values(consumer=consumer, message_id=message_id, type=type_))
