"""Idempotent consumer: remember processed message ids in the effect's transaction."""

from sqlalchemy import select

from tansiq.messaging.store import InboxMessage


def first_time(session, consumer, envelope):
    """True the first time `consumer` sees this message id; records it in `session`.

    Call inside the transaction that holds the effect. If two deliveries race,
    the unique constraint fails the second commit; its message is retried and
    then seen as already processed.
    """
    seen = session.scalar(
        select(InboxMessage.id).where(InboxMessage.consumer == consumer, InboxMessage.message_id == envelope.id)
    )
    if seen is not None:
        return False
    session.add(InboxMessage(consumer=consumer, message_id=envelope.id, type=envelope.type))
    session.flush()
    return True
