"""Tables of the referrals service: referrals, their history, fired deadlines, holiday overrides.

A referral row is shared by both sides. `shared_fields` (names only) is what the sender
chose. The values and every free text (reason, decline reason, outcome, notes) are held only
sealed (tansiq.sealing) to the public encryption keys of the parties allowed to read them: the
shared values to the recipient alone, the free text to both sides. A party's copy ends when its
slot is dropped (withdraw, decline, retention after the end, revocation, erasure).
The private keys of the associations hosted here live in `association_keys`, wrapped by the
master key; a partner keeps its own and publishes the public one in the directory.
"""

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from tansiq.db import UTCDateTime

DEFAULT_TZ = "Africa/Casablanca"


class Base(DeclarativeBase):
    pass


class Referral(Base):
    __tablename__ = "referrals"
    # Sent and received lists, newest first, one page at a time (tansiq.paging): an index range, not a sort.
    __table_args__ = (Index("ix_referrals_sent_page", "from_association", "created_at", "id"),
                      Index("ix_referrals_received_page", "to_association", "created_at", "id"))

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    beneficiary_id: Mapped[str] = mapped_column(String(64), index=True)  # opaque: the person lives in intake
    from_association: Mapped[str] = mapped_column(String(64), index=True)
    to_association: Mapped[str] = mapped_column(String(64), index=True)
    # "tansiq" (uses the app) or "queue" (a partner system reached through partners.outbound)
    from_integration: Mapped[str] = mapped_column(String(16), default="tansiq")
    to_integration: Mapped[str] = mapped_column(String(16), default="tansiq")
    origin: Mapped[str] = mapped_column(String(16), default="local")  # local | partner (sent by a partner system)
    service_category: Mapped[str] = mapped_column(String(80))
    service_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")  # always "": the reason is in `sealed`
    urgency: Mapped[str] = mapped_column(String(16))
    shared_fields: Mapped[list] = mapped_column(JSON, default=list)
    # {"shared" | "reason" | "decline_reason" | "outcome": sealed value}; a destroyed value is absent.
    sealed: Mapped[dict] = mapped_column(JSON, default=dict)
    # The parties' public encryption keys when the referral was made: {association: base64}.
    sealing_keys: Mapped[dict] = mapped_column(JSON, default=dict)
    copy_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    # Left from before sealing, always NULL: dropping them rebuilds the table on SQLite, which the
    # history rows' foreign keys refuse (migration sealing_0001 empties them).
    shared_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    shared_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    shared_erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    consent_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    consent_override: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), index=True)
    tz: Mapped[str] = mapped_column(String(64), default=DEFAULT_TZ)
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ack_remind_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ack_due: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    response_remind_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    response_due: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decline_reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # unused: sealed
    closure_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    outcome: Mapped[str | None] = mapped_column(Text, nullable=True)  # unused: sealed
    rerouted_from: Mapped[str | None] = mapped_column(ForeignKey("referrals.id"), nullable=True)
    rerouted_to: Mapped[str | None] = mapped_column(String(64), nullable=True)

    history: Mapped[list["ReferralHistory"]] = relationship(
        back_populates="referral", order_by="ReferralHistory.id", cascade="all, delete-orphan"
    )


class ReferralHistory(Base):
    """Every transition (and data erasure) of a referral, never updated."""

    __tablename__ = "referral_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_state: Mapped[str] = mapped_column(String(16))
    by: Mapped[str | None] = mapped_column(String(64), nullable=True)  # staff id; None for the deadline clock
    by_association: Mapped[str | None] = mapped_column(String(64), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text, default="")  # written by Tansiq itself, never a person's words
    sealed_note: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # what a person wrote, sealed

    referral: Mapped[Referral] = relationship(back_populates="history")


class AssociationKey(Base):
    """The encryption key pair of an association hosted by this network; the private half wrapped."""

    __tablename__ = "referral_association_keys"

    association: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[str] = mapped_column(Text)  # X25519, base64 raw
    wrapped_private_key: Mapped[bytes] = mapped_column(LargeBinary)  # under the master key
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RevokedConsent(Base):
    """A consent intake announced revoked. A referral under it whose share was taken just before the revocation
    finds it here before writing anything, and is refused (domain.check_still_shareable)."""

    __tablename__ = "referral_revoked_consents"

    consent_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ErasedBeneficiary(Base):
    """A woman intake erased. A referral about her whose share was taken just before her erasure finds her here
    before writing anything, and is refused (domain.check_still_shareable); a step taken on one of her referrals
    keeps no new words (domain.transition)."""

    __tablename__ = "referral_erased_beneficiaries"

    beneficiary_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FiredDeadline(Base):
    """A reminder, escalation or expiry that already fired: the unique key makes each fire once."""

    __tablename__ = "referral_fired_deadlines"
    __table_args__ = (UniqueConstraint("referral_id", "kind", name="uq_fired_deadline"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)  # a reminder overtaken by its deadline


class HolidayOverride(Base):
    """An admin's correction of the public-holiday calendar (e.g. the announced date of an Eid)."""

    __tablename__ = "referral_holiday_overrides"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    is_holiday: Mapped[bool] = mapped_column(Boolean)  # False: a working day despite the holidays package
    name: Mapped[str] = mapped_column(String(200), default="")
    set_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)
