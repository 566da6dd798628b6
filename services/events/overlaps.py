"""Overlap and venue checks: a published event against the others in its city or at its venue.

The others are read from stored occurrences by (city, start) and (venue, start) (see
occurrences.clashing): nothing else is expanded.
"""

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select

from services.events import occurrences as stored
from services.events.timing import Timing, override_key
from tansiq import contracts
from tansiq.errors import Conflict
from tansiq.messaging import outbox

SOURCE = "events"  # messages about the network as a whole (overlaps, reminders)
OVERLAP_HORIZON = timedelta(days=366)  # how far ahead recurring series are compared


def spans(timing, exdates, overrides, window_start, window_end):
    """(start, end) UTC of each occurrence intersecting the window, after exdates and moves."""
    moved = {key: (start, end) for key, start, end in overrides}
    spans = []
    for local in timing.starts_between(window_start, window_end):
        key = timing.key(local)
        if key in exdates or key in moved:
            continue
        spans.append((timing.to_utc(local), timing.end_of(local)))
    spans += [span for key, span in moved.items() if key not in exdates]
    return sorted(s for s in spans if s[1] > window_start and s[0] < window_end)


def event_spans(event, window_start, window_end):
    timing = Timing.of(event)
    overrides = [(override_key(o, timing), o.starts_at, o.ends_at) for o in event.overrides]
    return spans(timing, set(event.exdates or []), overrides, window_start, window_end)


def _first_clash(mine, theirs):
    for start, end in mine:
        for other_start, other_end in theirs:
            if start < other_end and other_start < end:
                return max(start, other_start)
    return None


@dataclass(frozen=True)
class Who:
    """The event being checked, as it will be once the change is applied."""

    id: str
    organiser: str
    city: str
    venue_id: str | None


def hold_venue(session, venue_id):
    """Make a second booking of `venue_id` wait here until this unit of work ends.

    Two bookings checked at once would each find the venue free, neither seeing the other's uncommitted
    occurrences. On PostgreSQL a transaction-scoped advisory lock per venue orders them: the second
    check reads once the first has committed. SQLite needs none: one writer at a time, and a process
    runs its units of work one at a time (tansiq.db)."""
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.blake2b(f"tansiq.events.venue\n{venue_id}".encode(), digest_size=8).digest()
        session.execute(select(func.pg_advisory_xact_lock(int.from_bytes(digest, "big", signed=True))))


def check_overlaps(session, event, timing, exdates, overrides, force):
    """Warn about published events in the same city at the same time; refuse a double-booked venue.

    For a recurring series, the comparison covers OVERLAP_HORIZON from its first start. The
    others are read from stored occurrences by (city, start) and (venue, start): nothing else is
    expanded.
    """
    window_start = timing.starts_at
    window_end = timing.ends_at if not timing.rrule else timing.starts_at + OVERLAP_HORIZON
    window_end = max([window_end, *(end for _, _, end in overrides)])
    mine = spans(timing, exdates, overrides, window_start, window_end)
    if not mine:
        return []
    if event.venue_id:
        hold_venue(session, event.venue_id)
    warnings, overlaps = [], []
    for other, theirs in stored.clashing(session, event, mine, window_end).items():
        clash = _first_clash(mine, theirs)
        if clash is None:
            continue
        if event.venue_id and other.venue_id == event.venue_id:
            local = clash.astimezone(timing.tz).strftime("%Y-%m-%d %H:%M")
            if not force:
                raise Conflict(f"venue {other.venue_name!r} is already booked for {other.title!r} "
                               f"({other.organiser}) on {local} {timing.tz.key}; force to book it anyway",
                               code="venue_conflict", details={"other_event_id": other.id})
            warnings.append({"code": "venue_double_booked", "event_id": other.id, "title": other.title,
                             "organiser": other.organiser, "at": clash.isoformat()})
        if other.city.lower() == event.city.lower():
            warnings.append({"code": "overlap", "event_id": other.id, "title": other.title,
                             "organiser": other.organiser, "city": other.city, "at": clash.isoformat()})
            overlaps.append(other)
    # One message for all the overlaps of this change (in groups of OTHERS_PER_OVERLAP_MESSAGE), not one per
    # pair: each organiser is told once, and a create costs the same however many events it meets.
    step = contracts.events.OTHERS_PER_OVERLAP_MESSAGE
    groups = [overlaps[first:first + step] for first in range(0, len(overlaps), step)]
    outbox.add_many(session, [contracts.make("ma.tansiq.event.overlap_detected.v2", SOURCE, {
        "event_id": event.id, "other_event_ids": [other.id for other in group], "city": event.city,
        "organisers": sorted({event.organiser, *(other.organiser for other in group)})}) for group in groups])
    return warnings

