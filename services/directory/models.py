"""Directory tables: associations, the services they offer (HSDS 3.0 shape), staff and roles."""

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from tansiq.db import UTCDateTime
from tansiq.envelope import utcnow


class Base(DeclarativeBase):
    pass


class Association(Base):
    __tablename__ = "associations"

    slug: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_ar: Mapped[str] = mapped_column(String(200))
    name_fr: Mapped[str] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(100), index=True)
    address: Mapped[str] = mapped_column(String(300), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    # "app": staff use Tansiq's web app; "queue": the association's own software integrates by message queue.
    integration: Mapped[str] = mapped_column(String(16), default="app")
    public_key: Mapped[str | None] = mapped_column(Text, nullable=True)  # Ed25519, base64 raw
    # X25519, base64 raw: what others seal a partner's referral data to (tansiq.sealing). The associations
    # hosted here have theirs in the referrals service.
    encryption_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Raised by each transaction that changes the association or its services (services/directory/changes.py).
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    services: Mapped[list["OfferedService"]] = relationship(back_populates="association", cascade="all, delete-orphan")
    staff: Mapped[list["Staff"]] = relationship(back_populates="association", cascade="all, delete-orphan")


class OfferedService(Base):
    """A service an association offers, in the Open Referral HSDS 3.0 `service` shape."""

    __tablename__ = "offered_services"
    __table_args__ = (UniqueConstraint("association_slug", "category", "name", name="uq_service_per_association"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    association_slug: Mapped[str] = mapped_column(ForeignKey("associations.slug"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(64), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    eligibility: Mapped[str] = mapped_column(Text, default="")
    languages: Mapped[list] = mapped_column(JSON, default=list)
    schedule: Mapped[str] = mapped_column(String(200), default="")  # RRULE parts, HSDS-style
    status: Mapped[str] = mapped_column(String(32), default="active")

    association: Mapped[Association] = relationship(back_populates="services")


class Staff(Base):
    __tablename__ = "staff"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    association_slug: Mapped[str] = mapped_column(ForeignKey("associations.slug"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(200), unique=True)
    phone: Mapped[str] = mapped_column(String(40), default="")
    language: Mapped[str] = mapped_column(String(2), default="fr")
    roles: Mapped[list] = mapped_column(JSON, default=list)
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # as Association.version

    association: Mapped[Association] = relationship(back_populates="staff")


class StaffSession(Base):
    """A signed-in browser: only the token's SHA-256 is kept; revoking the row ends the session at once."""

    __tablename__ = "staff_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SignInThrottle(Base):
    """Consecutive failed sign-ins per account (`account:<sha256 of the email>`) or per address (`address:<ip>`)."""

    __tablename__ = "sign_in_throttle"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
