"""The outbox and inbox tables every service keeps in its own database.

They live in their own metadata so each service's migrations include them
(alembic target_metadata = [service Base.metadata, messaging_metadata]); their
migrations are the shared `messaging` branch in tansiq/messaging/migrations.
"""

from datetime import datetime

from sqlalchemy import DateTime, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tansiq.envelope import utcnow
from tansiq.indexes import partial_index

messaging_metadata = MetaData()

PENDING, SENT = "pending", "sent"
# The rows still to publish, in publishing order: the relay reads this index alone. Without it, it walked every
# row ever sent (they are kept) on each pass. A literal in SQL, as the relay's query has it: SQLite uses a
# partial index only when the query's own text implies its condition.
PENDING_ONLY = f"state = '{PENDING}'"


class MessagingBase(DeclarativeBase):
    metadata = messaging_metadata


class OutboxMessage(MessagingBase):
    """A message to publish, written in the same transaction as the change that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (partial_index("ix_outbox_pending", "seq", where=PENDING_ONLY),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # publish order
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(120))
    exchange: Mapped[str] = mapped_column(String(120))
    routing_key: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class InboxMessage(MessagingBase):
    """A message id a consumer has already acted on (written with the effect)."""

    __tablename__ = "inbox"
    __table_args__ = (UniqueConstraint("consumer", "message_id", name="uq_inbox_consumer_message"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    consumer: Mapped[str] = mapped_column(String(120))
    message_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(120))
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CommandKey(MessagingBase):
    """A command already carried out under an idempotency key, with its first result (tansiq.commands).

    Written in the same transaction as the command's effect: either both exist or neither."""

    __tablename__ = "command_keys"
    __table_args__ = (UniqueConstraint("scope", "command", "key", name="uq_command_keys_scope_command_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(200))  # who may reuse the key: the actor inside her association
    command: Mapped[str] = mapped_column(String(120))
    key: Mapped[str] = mapped_column(String(200))  # a hash of the key (hex), never the key itself
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of the request: same key, other request -> refused
    result: Mapped[str] = mapped_column(Text)  # encrypted under another hash of the key: no copy in clear
    # Whose data the result may hold (a beneficiary's or a referral's id): erasure blanks its result.
    subject: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
