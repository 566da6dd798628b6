"""Tables of the notifications service: inbox items, deliveries per channel, preferences, webhooks.

Personal data of beneficiaries never lands here: an item holds a kind, a message key
and whitelisted parameters (association names, deadlines, event titles), never a name.
"""

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tansiq.db import UTCDateTime
from tansiq.envelope import utcnow
from tansiq.indexes import partial_index

# Delivery states.
QUEUED, SENT, FAILED, READ = "queued", "sent", "failed", "read"
# What may still go out, as the partial index ix_deliveries_due and the query of what is due both say it (a
# literal: SQLite uses a partial index only when the query's own text implies its condition).
STILL_TO_SEND = f"state IN ('{QUEUED}', '{FAILED}')"
CHANNELS = ("inbox", "email", "sms", "webhook")


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime}


class InboxItem(Base):
    """One in-app notification for one staff member (the inbox channel itself)."""

    __tablename__ = "inbox_items"
    # Same event, same person, same kind: one item, however many times the event is delivered.
    __table_args__ = (UniqueConstraint("source_message_id", "staff_id", "kind", name="uq_inbox_item_source_staff"),
                      # Her inbox, newest first, one page at a time (tansiq.paging): an index range, not a sort.
                      Index("ix_inbox_items_staff_page", "staff_id", "created_at", "id"),
                      # Her unread items only (a partial index): the unread count and the unread page read
                      # what is unread, not every item she ever had.
                      partial_index("ix_inbox_items_staff_unread", "staff_id", "created_at", "id",
                                    where="read_at IS NULL"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    staff_id: Mapped[str] = mapped_column(String(64), index=True)
    association: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    urgency: Mapped[str] = mapped_column(String(16))
    subject_key: Mapped[str] = mapped_column(String(64))
    subject_params: Mapped[dict] = mapped_column(JSON, default=dict)
    link: Mapped[str] = mapped_column(String(255), default="")
    source_message_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Delivery(Base):
    """One message on one outside channel (email, sms, webhook) to one recipient, with its retry state.

    `recipient` is a staff id, or `webhook:<subscription id>` for partner systems.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("source_message_id", "recipient", "channel", name="uq_delivery_source_recipient_channel"),
        # Sent deliveries are kept: what is due is read from this index alone, not from every one ever sent.
        partial_index("ix_deliveries_due", "next_attempt_at", "id", where=STILL_TO_SEND),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_message_id: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(80), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(500))  # email, phone number or webhook URL
    language: Mapped[str] = mapped_column(String(2), default="fr")
    kind: Mapped[str] = mapped_column(String(64))
    urgency: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    inbox_item_id: Mapped[int | None] = mapped_column(ForeignKey("inbox_items.id"), nullable=True)
    digest: Mapped[bool] = mapped_column(default=False)  # grouped with others into the daily digest
    state: Mapped[str] = mapped_column(String(16), default=QUEUED, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()  # indexed for what is still to send: ix_deliveries_due
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)


class UnreadCount(Base):
    """How many of her inbox items are unread, kept with the items in their own units of work
    (domain.record_many, mark_read, forget_beneficiary): the badge reads one row, however long her inbox."""

    __tablename__ = "unread_counts"

    staff_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    unread: Mapped[int] = mapped_column(Integer, default=0)


class ErasedBeneficiary(Base):
    """A woman intake erased. An event about her heard after her erasure (a retry, or one held while the
    directory's read model loaded) tells nobody; one told just before it is taken back
    (domain.erased_among, NotificationsService._forget_erased_meanwhile)."""

    __tablename__ = "erased_beneficiaries"

    beneficiary_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Preference(Base):
    """How one staff member wants to be told. No row = the defaults (see domain.DEFAULT_PREFERENCES)."""

    __tablename__ = "preferences"

    staff_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    channels: Mapped[list] = mapped_column(JSON)
    language: Mapped[str | None] = mapped_column(String(2), nullable=True)  # None = the directory's
    quiet_start: Mapped[str | None] = mapped_column(String(5), nullable=True)  # "HH:MM", Africa/Casablanca
    quiet_end: Mapped[str | None] = mapped_column(String(5), nullable=True)
    digest: Mapped[bool] = mapped_column(default=True)
    digest_time: Mapped[str] = mapped_column(String(5), default="08:00")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookSubscription(Base):
    """A partner system of an association that asked to receive its notifications as JSON POSTs."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    association: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(String(128))  # HMAC-SHA256 key for the X-Tansiq-Signature header
    kinds: Mapped[list] = mapped_column(JSON, default=list)  # empty = every kind
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
