"""Intake tables. Personal fields are stored only as AES-GCM ciphertext (column prefix `enc_`)."""

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from tansiq.messaging.store import messaging_metadata

DEFAULT_TZ = "Africa/Casablanca"


class Base(DeclarativeBase):
    pass


class Beneficiary(Base):
    __tablename__ = "beneficiary"
    # Her association's records, newest first, one page at a time (tansiq.paging).
    __table_args__ = (Index("ix_beneficiary_page", "association", "registered_at", "id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    association: Mapped[str] = mapped_column(String(64), index=True)  # the owner; others cannot read her
    kind: Mapped[str] = mapped_column(String(32))
    schooled: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    city: Mapped[str] = mapped_column(String(100), default="")  # coarse, used for routing and statistics
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    # Wrapped per-beneficiary data key; NULL after erasure, which makes every enc_* unreadable.
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    enc_first_name: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    enc_last_name: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    enc_first_name_ar: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    enc_last_name_ar: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    enc_phone: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    enc_birth_date: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    enc_birth_year: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    registered_by: Mapped[str] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    tz: Mapped[str] = mapped_column(String(64), default=DEFAULT_TZ)
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    erased_by: Mapped[str | None] = mapped_column(String(64), nullable=True)

    sessions: Mapped[list["ListeningSession"]] = relationship(order_by="ListeningSession.held_at")
    consents: Mapped[list["Consent"]] = relationship(order_by="Consent.given_at")


class BlindIndex(Base):
    """HMAC of a normalised personal value, to find possible duplicates without plaintext."""

    __tablename__ = "blind_index"
    __table_args__ = (Index("ix_blind_index_lookup", "association", "kind", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    beneficiary_id: Mapped[str] = mapped_column(ForeignKey("beneficiary.id"), index=True)
    association: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))  # phone | name | skeleton | birth_date | birth_year
    value: Mapped[str] = mapped_column(String(64))


class DuplicateFlag(Base):
    """'These two records may be the same woman': shown to the case worker, never merged silently."""

    __tablename__ = "duplicate_flag"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    beneficiary_id: Mapped[str] = mapped_column(ForeignKey("beneficiary.id"), index=True)
    other_id: Mapped[str] = mapped_column(ForeignKey("beneficiary.id"), index=True)
    reasons: Mapped[list] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | distinct | same
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ListeningSession(Base):
    __tablename__ = "listening_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    beneficiary_id: Mapped[str] = mapped_column(ForeignKey("beneficiary.id"), index=True)
    staff_id: Mapped[str] = mapped_column(String(64))
    held_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    tz: Mapped[str] = mapped_column(String(64), default=DEFAULT_TZ)
    needs: Mapped[list] = mapped_column(JSON, default=list)  # categories only: not personal text
    urgency: Mapped[str] = mapped_column(String(16))
    enc_orientation: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    enc_notes: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class Consent(Base):
    __tablename__ = "consent"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    beneficiary_id: Mapped[str] = mapped_column(ForeignKey("beneficiary.id"), index=True)
    association: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(64))  # a service category
    fields: Mapped[list] = mapped_column(JSON)
    # Exactly one of: a named association, or any partner offering this category.
    recipient_association: Mapped[str | None] = mapped_column(String(64), nullable=True)
    recipient_category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    given_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    recorded_by: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Disclosure(Base):
    """Personal data that left this association: so a revocation reaches every recipient."""

    __tablename__ = "disclosure"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    beneficiary_id: Mapped[str] = mapped_column(ForeignKey("beneficiary.id"), index=True)
    consent_id: Mapped[str | None] = mapped_column(ForeignKey("consent.id"), nullable=True, index=True)
    recipient_association: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(64))
    fields: Mapped[list] = mapped_column(JSON)
    staff_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    override: Mapped[bool] = mapped_column(Boolean, default=False)
    enc_override_reason: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class AuditEntry(Base):
    """Who touched which personal data of whom, and when (ids and field names only)."""

    __tablename__ = "audit_entry"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    beneficiary_id: Mapped[str] = mapped_column(String(64), index=True)
    staff_id: Mapped[str] = mapped_column(String(64))
    association: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    fields: Mapped[list] = mapped_column(JSON, default=list)
    detail: Mapped[str] = mapped_column(Text, default="")  # blanked when she is erased (see audit.py)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Hash chain (services/intake/audit.py): the previous entry's hash, this entry's, the detail's digest.
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AuditHead(Base):
    """The end of the audit chain: its last hash and length (one row, locked by each append)."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hash: Mapped[str] = mapped_column(String(64))
    entries: Mapped[int] = mapped_column(Integer)


METADATA = (Base.metadata, messaging_metadata)


def create_all(engine):
    """Create the intake tables and the outbox/inbox (tests and first start; migrations come later)."""
    for metadata in METADATA:
        metadata.create_all(engine)
