"""Calendar tables: venues, events, occurrence overrides, stored occurrences, registrations, reminders sent.

Instants are stored in UTC next to the IANA zone they were entered in; recurrence
is expanded in that zone (see domain.py), so a 10:00 training stays at 10:00 local
across Morocco's Ramadan offset change.
"""

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from tansiq.db import UTCDateTime
from tansiq.indexes import partial_index

DEFAULT_TZ = "Africa/Casablanca"


class Base(DeclarativeBase):
    pass


def ordered(length):
    """A string column sorted by code point, as Python sorts it: a listing's cursor compares in SQL
    what the page sorted in Python, whatever the database's own collation (PostgreSQL: "C")."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


class Venue(Base):
    __tablename__ = "venues"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(100), index=True)
    address: Mapped[str] = mapped_column(String(500), default="")
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)


class Event(Base):
    __tablename__ = "events"
    # A city's feed and its ETag find the city's events without reading the whole table; on PostgreSQL
    # the ETag's columns (ical.version) are in the index, so it is answered without the (wide) rows
    # (city too: PostgreSQL reads an expression index alone only if it holds the columns named in it).
    __table_args__ = (Index("ix_events_city_version", text("lower(city)"),
                            postgresql_include=["city", "status", "visibility", "updated_at", "sequence"]),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    uid: Mapped[str] = mapped_column(String(255), unique=True)  # iCalendar UID, stable forever
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(20), index=True)
    organiser: Mapped[str] = mapped_column(String(64), index=True)
    co_organisers: Mapped[list] = mapped_column(JSON, default=list)
    city: Mapped[str] = mapped_column(String(100), index=True)
    venue_id: Mapped[str | None] = mapped_column(ForeignKey("venues.id"), nullable=True, index=True)
    place: Mapped[str] = mapped_column(String(200), default="")  # free-text venue (e.g. from a partner system)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    tz: Mapped[str] = mapped_column(String(64), default=DEFAULT_TZ)
    all_day: Mapped[bool] = mapped_column(Boolean, default=False)
    rrule: Mapped[str | None] = mapped_column(String(500), nullable=True)  # normalised, UNTIL in UTC
    # Original starts (UTC ISO, or ISO dates for all-day events) of occurrences that do not happen.
    exdates: Mapped[list] = mapped_column(JSON, default=list)
    capacity: Mapped[int | None] = mapped_column(Integer, nullable=True)
    visibility: Mapped[str] = mapped_column(String(10), default="network")
    status: Mapped[str] = mapped_column(String(12), default="draft", index=True)
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Occurrences starting before this instant are in `event_occurrences` (see occurrences.py);
    # None: not stored yet (listings expand the event live until the timer stores it).
    occurrences_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    # The event's VEVENTs as feeds write them, rewritten with every change (occurrences.store): a
    # feed of 100,000 events is then read, not written. None: written on the fly until the next change.
    ics_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    # From the first start to the last end of its occurrences (moved ones included; end None: a
    # series without end): which events a feed's window holds, read from this table alone.
    span_starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    span_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    venue: Mapped[Venue | None] = relationship(lazy="joined")
    overrides: Mapped[list["Override"]] = relationship(
        back_populates="event", cascade="all, delete-orphan", order_by="Override.recurrence_id", lazy="selectin")
    registrations: Mapped[list["Registration"]] = relationship(
        back_populates="event", cascade="all, delete-orphan", order_by="Registration.created_at", lazy="selectin")


class Override(Base):
    """One occurrence of a recurring event moved elsewhere in time (iCalendar RECURRENCE-ID)."""

    __tablename__ = "event_overrides"
    __table_args__ = (UniqueConstraint("event_id", "recurrence_id", name="uq_override_occurrence"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    recurrence_id: Mapped[datetime] = mapped_column(UTCDateTime)  # the occurrence's original start
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)

    event: Mapped[Event] = relationship(back_populates="overrides")


# Lengths past which occurrences are indexed apart as well, in `minutes` as counted (whole minutes, plus one):
# past six hours (a day's training), past a day (fairs, festivals). A range of the other indexes then looks
# back only six hours for what started before it and still goes on (services.events.occurrences.TIERS).
TIER_MINUTES = (6 * 60 + 1, 24 * 60 + 1)


def longer_than(minutes):
    """A partial index's condition, and a query's: a literal, since SQLite reads a partial index only for a
    query whose own text implies its condition."""
    return f"minutes > {minutes}"


class StoredOccurrence(Base):
    """One occurrence of an event as listings, overlap and venue checks read it, by (city, start) or
    (venue, start). Rewritten with its event in the same unit of work; the filters of a listing are
    copied here so one index range answers it."""

    __tablename__ = "event_occurrences"
    __table_args__ = (
        UniqueConstraint("event_id", "recurrence_key", name="uq_occurrence"),
        # A listing's order (start, title, event, occurrence): a page is the next rows of one index.
        Index("ix_occurrences_order", "starts_at", "title", "event_id", "recurrence_key"),
        Index("ix_occurrences_city_order", "city_key", "starts_at", "title", "event_id", "recurrence_key"),
        Index("ix_occurrences_venue_start", "venue_id", "starts_at"),
        Index("ix_occurrences_organiser_start", "organiser", "starts_at"),
        # The longer occurrences of each tier apart (TIER_MINUTES), so that one long exhibition does not make
        # every range look back as far: the network's, a city's, a venue's, by start.
        *(partial_index(f"ix_occurrences_over{minutes // 60}h_{name}", *columns, "starts_at",
                        where=longer_than(minutes))
          for minutes in TIER_MINUTES for name, columns in (("start", ()), ("city", ("city_key",)),
                                                            ("venue", ("venue_id",)))),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # No index of its own: uq_occurrence starts with it and answers "the occurrences of this event" (and
    # the cascade); a second one cost every stored occurrence one more index insert at a random place.
    event_id: Mapped[str] = mapped_column(ordered(64), ForeignKey("events.id", ondelete="CASCADE"))
    recurrence_key: Mapped[str] = mapped_column(ordered(40))  # Timing.key of its original start; "" if single
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    minutes: Mapped[int] = mapped_column(Integer, index=True)  # length: how far back a window must look
    moved: Mapped[bool] = mapped_column(Boolean, default=False)
    title: Mapped[str] = mapped_column(ordered(200))  # the listing's tie-break after the start
    city_key: Mapped[str] = mapped_column(String(100))  # lower-cased city
    venue_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    organiser: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12))
    visibility: Mapped[str] = mapped_column(String(10))


class Registration(Base):
    """A participant (trainings, meetings…) or an artisan's stand (exhibitions, fairs, festivals)."""

    __tablename__ = "event_registrations"
    __table_args__ = (UniqueConstraint("event_id", "kind", "association", "name", name="uq_registration"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(12))  # participant | stand
    association: Mapped[str] = mapped_column(String(64))
    staff_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # reminders go to staff
    name: Mapped[str] = mapped_column(String(200))
    products: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    event: Mapped[Event] = relationship(back_populates="registrations")


class ReminderSent(Base):
    """Reminder already emitted for one occurrence, so the timer never sends it twice."""

    __tablename__ = "event_reminders_sent"
    __table_args__ = (UniqueConstraint("event_id", "occurrence_start", name="uq_reminder_occurrence"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    occurrence_start: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ImportJob(Base):
    """One import of an association's existing calendar (imports.py): its progress and its report."""

    __tablename__ = "event_imports"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    association: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(500))  # the file's name or the URL
    actor_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(12), index=True)  # queued | running | done | failed
    total: Mapped[int | None] = mapped_column(Integer, nullable=True)  # series found, once read
    processed: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)  # private, or cancelled before ever imported
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list] = mapped_column(JSON, default=list)  # [{"line", "uid", "message"}], the first ones
    message: Mapped[str] = mapped_column(Text, default="")  # why the whole import failed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Written after every batch: a running job whose heartbeat is old was interrupted (imports.fail_stale).
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
