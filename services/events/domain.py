"""Calendar rules in plain Python: events, recurrence, overlaps, registrations, reminders.

Every function takes a SQLAlchemy Session and `now` (aware UTC) and never reads the
clock. Times come in as local wall time in the event's IANA zone (naive datetimes),
or as aware datetimes; they are stored in UTC next to the zone. Recurrence is
expanded in the event's zone with python-dateutil, so a weekly 10:00 training stays
at 10:00 local when Morocco moves its clocks around Ramadan.

Each change writes its message into the outbox in the caller's transaction, and all
validation happens before anything is added to the session: a refused request
leaves nothing behind.
"""

import functools
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, func, or_, select

from services.events import occurrences as stored
from services.events import recurrence
from services.events.models import DEFAULT_TZ, Event, Override, Registration, ReminderSent, Venue
from tansiq import contracts
from tansiq.contracts.events import EVENT_KINDS
from tansiq.errors import Conflict, DomainError, Forbidden, NotFound
from tansiq.messaging import outbox

UTC = timezone.utc
SOURCE = "events"  # messages about the network as a whole (overlaps, reminders)
STATUSES = ("draft", "published", "postponed", "cancelled")
VISIBILITIES = ("network", "public")
TRANSITIONS = {
    "draft": {"draft", "published", "cancelled"},
    "published": {"published", "postponed", "cancelled"},
    "postponed": {"postponed", "published", "cancelled"},
    "cancelled": set(),
}
# RFC 5545 5.2.1-ish: what attendees must be told about (SEQUENCE goes up).
SIGNIFICANT = ("title", "kind", "city", "venue_id", "starts_at", "ends_at", "tz", "all_day", "rrule", "exdates",
               "status")
STAND_KINDS = {"exhibition", "fair", "festival"}
PARTICIPANT_KINDS = {"training", "meeting", "campaign", "festival"}
OVERLAP_HORIZON = timedelta(days=366)  # how far ahead recurring series are compared
MAX_OCCURRENCES = 2000  # per event and listing: a bound on what one request may expand
MAX_WINDOW = timedelta(days=400)  # longest listing window (a year view plus margins)


# --- zones and wall times ---------------------------------------------------------------------

def zone(name):
    """The IANA zone called `name`, or a clear refusal."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise DomainError(f"unknown time zone {name!r} (use an IANA name such as {DEFAULT_TZ})",
                          code="unknown_zone") from None


def local_to_utc(value, tz):
    """A wall time in `tz` (naive) or an aware datetime -> UTC; refuses wall times the zone skips."""
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    aware = value.replace(tzinfo=tz)
    if aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != value:
        raise DomainError(f"{value.isoformat()} does not exist in {tz.key}: the clocks jump over it",
                          code="invalid_time")
    return aware.astimezone(UTC)


def _as_datetime(value, what):
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise DomainError(f"{what} is not an ISO date/time: {value!r}", code="invalid_time") from None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    raise DomainError(f"{what} is missing or not a date/time", code="invalid_time")


@dataclass(frozen=True)
class Timing:
    """When an event happens: first start/end (UTC), zone, all-day flag and recurrence rule."""

    starts_at: datetime
    ends_at: datetime
    tz: ZoneInfo
    all_day: bool = False
    rrule: str | None = None

    @classmethod
    def of(cls, event):
        return cls(event.starts_at, event.ends_at, zone(event.tz), event.all_day, event.rrule)

    @property
    def local_start(self):
        """DTSTART as the rule sees it: naive midnight for all-day events, else aware in the zone."""
        local = self.starts_at.astimezone(self.tz)
        return local.replace(tzinfo=None) if self.all_day else local

    @property
    def duration(self):
        """Wall-clock length, so every occurrence keeps the same local start and end times."""
        return self.ends_at.astimezone(self.tz).replace(tzinfo=None) - self.starts_at.astimezone(
            self.tz).replace(tzinfo=None)

    def rule(self):
        """The dateutil rule, or None: not recurring, or a stored rule that fails today's checks."""
        # The zone is part of the cache key: aware datetimes are equal when their instants are, so
        # 15:30 in Paris and 14:30 in Casablanca would otherwise share one rule (and one wall time).
        return _stored_rule(self.rrule, self.local_start, self.tz.key) if self.rrule else None

    def to_utc(self, local):
        naive = local.replace(tzinfo=None)
        return naive.replace(tzinfo=self.tz).astimezone(UTC)

    def end_of(self, local):
        return (local.replace(tzinfo=None) + self.duration).replace(tzinfo=self.tz).astimezone(UTC)

    def key(self, local):
        """Stable id of an occurrence: its original start (a date for all-day events, else UTC)."""
        return local.date().isoformat() if self.all_day else self.to_utc(local).isoformat()

    def local_of_key(self, key):
        value = datetime.fromisoformat(key)
        if self.all_day:
            return datetime.combine(value.date() if isinstance(value, datetime) else value, time())
        return value.astimezone(self.tz)

    def starts_between(self, window_start, window_end):
        """Local starts of occurrences that may intersect [window_start, window_end) (UTC)."""
        rule = self.rule()
        if rule is None:
            return [self.local_start]
        lo = window_start.astimezone(self.tz) - self.duration - timedelta(days=1)
        hi = window_end.astimezone(self.tz)
        if self.all_day:
            lo, hi = lo.replace(tzinfo=None), hi.replace(tzinfo=None)
        return recurrence.between(rule, max(lo, self.local_start), hi, MAX_OCCURRENCES)

    def is_occurrence(self, local):
        rule = self.rule()
        if rule is None:
            return local == self.local_start
        return bool(recurrence.between(rule, local, local + timedelta(microseconds=1)))

    def occurrence_on(self, day):
        """The first occurrence starting on the local date `day`, if any."""
        lo = datetime.combine(day, time())
        hi = lo + timedelta(days=1)
        if not self.all_day:
            lo, hi = lo.replace(tzinfo=self.tz), hi.replace(tzinfo=self.tz)
        rule = self.rule()
        found = recurrence.between(rule, lo, hi) if rule else [
            self.local_start] if lo <= self.local_start < hi else []
        return found[0] if found else None


@functools.lru_cache(maxsize=1024)
def _stored_rule(text, local_start, zone_name):
    return recurrence.stored_rule(text, local_start)


def normalise_rrule(text, tz, all_day):
    """An RRULE as stored and published: upper case, no 'RRULE:' prefix, UNTIL in UTC (or a date
    for all-day events) as RFC 5545 requires when DTSTART has a TZID."""
    if text is None or not str(text).strip():
        return None
    body = str(text).strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    parts = {}
    for part in body.upper().split(";"):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip() or key in parts:
            raise _bad_rrule(text, f"cannot read {part!r}")
        parts[key.strip()] = value.strip()
    if "FREQ" not in parts:
        raise _bad_rrule(text, "FREQ is required")
    if "UNTIL" in parts and "COUNT" in parts:
        raise _bad_rrule(text, "UNTIL and COUNT cannot both be given")
    try:
        recurrence.check_parts(parts)
    except recurrence.RuleError as exc:
        raise _bad_rrule(text, str(exc)) from None
    if "UNTIL" in parts:
        parts["UNTIL"] = _normalise_until(parts["UNTIL"], tz, all_day, text)
    ordered = ";".join(f"{key}={value}" for key, value in sorted(parts.items(), key=lambda kv: kv[0] != "FREQ"))
    return ordered


def _normalise_until(value, tz, all_day, text):
    try:
        if len(value) == 8:
            day = datetime.strptime(value, "%Y%m%d")
            if all_day:
                return value
            # A date bound on a timed series means "through that local day".
            return _utc_stamp(local_to_utc(day + timedelta(days=1, seconds=-1), tz))
        moment = datetime.strptime(value.rstrip("Z"), "%Y%m%dT%H%M%S")
    except ValueError:
        raise _bad_rrule(text, f"UNTIL {value!r} is not a date or date-time") from None
    if all_day:
        return moment.strftime("%Y%m%d")
    utc = moment.replace(tzinfo=UTC) if value.endswith("Z") else local_to_utc(moment, tz)
    return _utc_stamp(utc)


def _utc_stamp(moment):
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _bad_rrule(text, why):
    return DomainError(f"invalid RRULE {text!r}: {why}", code="invalid_rrule")


# --- validation -------------------------------------------------------------------------------

def _exists_check(known_associations):
    """The domain is told which slugs exist: a callable slug -> bool, or a collection of slugs."""
    if callable(known_associations):
        return known_associations
    return lambda slug: slug in known_associations


def _validate(session, spec, known_associations, carried=None):
    """Checks every field of an event description and returns normalised column values.

    `carried`: (old Timing, exdate keys, overrides) of an existing event, re-attached to
    the occurrences on the same local dates when the series changes.
    Raises DomainError before anything is written.
    """
    out = {}
    title = (spec.get("title") or "").strip()
    if not title:
        raise DomainError("a title is required", code="invalid_event")
    out["title"] = title[:200]
    out["description"] = spec.get("description") or ""
    if spec.get("kind") not in EVENT_KINDS:
        raise DomainError(f"kind must be one of {', '.join(EVENT_KINDS)}", code="invalid_event")
    out["kind"] = spec["kind"]
    if spec.get("visibility", "network") not in VISIBILITIES:
        raise DomainError("visibility must be network or public", code="invalid_event")
    out["visibility"] = spec.get("visibility", "network")
    if spec.get("status", "draft") not in STATUSES:
        raise DomainError(f"status must be one of {', '.join(STATUSES)}", code="invalid_event")
    out["status"] = spec.get("status", "draft")
    capacity = spec.get("capacity")
    if capacity is not None and (not isinstance(capacity, int) or capacity < 1):
        raise DomainError("capacity must be a positive whole number", code="invalid_event")
    out["capacity"] = capacity

    exists = _exists_check(known_associations)
    organiser = spec.get("organiser")
    co_organisers = list(dict.fromkeys(spec.get("co_organisers") or []))
    unknown = [slug for slug in [organiser, *co_organisers] if not slug or not exists(slug)]
    if unknown:
        raise NotFound(f"unknown association {', '.join(map(repr, unknown))}", code="unknown_association")
    out["organiser"] = organiser
    out["co_organisers"] = [slug for slug in co_organisers if slug != organiser]

    venue = None
    if spec.get("venue_id"):
        venue = session.get(Venue, spec["venue_id"])
        if venue is None:
            raise NotFound(f"unknown venue {spec['venue_id']!r}", code="unknown_venue")
    city = (spec.get("city") or (venue.city if venue else "")).strip()
    if not city:
        raise DomainError("a city (or a venue) is required", code="invalid_event")
    if venue and venue.city.casefold() != city.casefold():
        raise DomainError(f"venue {venue.name!r} is in {venue.city}, not {city}", code="invalid_event")
    out["city"] = venue.city if venue else city
    out["venue_id"] = venue.id if venue else None
    out["place"] = "" if venue else (spec.get("place") or "").strip()[:200]

    tz = zone(spec.get("tz") or DEFAULT_TZ)
    all_day = bool(spec.get("all_day"))
    start = _as_datetime(spec.get("start"), "start")
    end = _as_datetime(spec.get("end") if spec.get("end") is not None else spec.get("start"), "end")
    if all_day:
        # All-day: whole local days; `end` is the last day, inclusive (stored exclusive).
        start = datetime.combine((start.astimezone(tz) if start.tzinfo else start).date(), time())
        end = datetime.combine((end.astimezone(tz) if end.tzinfo else end).date(), time()) + timedelta(days=1)
    starts_at, ends_at = local_to_utc(start, tz), local_to_utc(end, tz)
    if ends_at <= starts_at:
        raise DomainError(f"the end ({end.isoformat()}) must be after the start ({start.isoformat()})",
                          code="end_before_start")
    rrule = normalise_rrule(spec.get("rrule"), tz, all_day)
    timing = Timing(starts_at, ends_at, tz, all_day, rrule)
    if rrule:
        try:
            first = recurrence.first_occurrence(recurrence.build(rrule, timing.local_start))
        except recurrence.RuleError as exc:
            raise _bad_rrule(spec.get("rrule"), str(exc)) from None
        if first != timing.local_start:
            # RFC 5545 counts DTSTART as the first instance, dateutil does not: insist they agree.
            raise _bad_rrule(spec.get("rrule"), "the start must itself be an occurrence of the rule")
    out.update(starts_at=starts_at, ends_at=ends_at, tz=tz.key, all_day=all_day, rrule=rrule)

    warnings = []
    exdates = []
    for value in spec.get("exdates") or []:
        local = _local_input(value, timing, "exdate")
        if not timing.is_occurrence(local):
            raise DomainError(f"exdate {value} is not an occurrence of the event", code="invalid_exdate")
        exdates.append(timing.key(local))
    overrides = []
    if carried:
        old, old_exdates, old_overrides = carried
        for key in old_exdates:
            moved = _remap(key, old, timing)
            if moved is None:
                warnings.append({"code": "exdate_dropped", "message": f"no occurrence left on {key[:10]}"})
            else:
                exdates.append(moved)
        for recurrence_id, o_start, o_end in old_overrides:
            moved = _remap(recurrence_id, old, timing)
            if moved is None:
                warnings.append({"code": "override_dropped", "message": f"no occurrence left on {recurrence_id[:10]}"})
            else:
                overrides.append((moved, o_start, o_end))
    out["exdates"] = sorted(set(exdates))
    if len(out["exdates"]) and not rrule:
        raise DomainError("exdates only apply to a recurring event", code="invalid_exdate")
    return out, timing, overrides, warnings


def _local_input(value, timing, what):
    """An occurrence start given by a caller (local wall time, aware time, or date) -> rule-local."""
    moment = _as_datetime(value, what)
    if timing.all_day:
        return datetime.combine((moment.astimezone(timing.tz) if moment.tzinfo else moment).date(), time())
    return local_to_utc(moment, timing.tz).astimezone(timing.tz)


def _remap(key, old, new):
    if old == new:
        return key
    found = new.occurrence_on(old.local_of_key(key).date())
    return new.key(found) if found is not None else None


# --- events -----------------------------------------------------------------------------------

def create_venue(session, *, name, city, address="", latitude=None, longitude=None, venue_id=None):
    if not (name or "").strip() or not (city or "").strip():
        raise DomainError("a venue needs a name and a city", code="invalid_venue")
    if latitude is not None and not -90 <= latitude <= 90 or longitude is not None and not -180 <= longitude <= 180:
        raise DomainError("coordinates out of range", code="invalid_venue")
    venue = Venue(id=venue_id or f"v-{uuid.uuid4().hex[:12]}", name=name.strip(), city=city.strip(),
                  address=address or "", latitude=latitude, longitude=longitude)
    session.add(venue)
    session.flush()
    return venue


def create_event(session, now, spec, known_associations, force=False):
    """A new event from `spec` (see schemas.CreateEvent). Returns (event, warnings)."""
    values, timing, _, warnings = _validate(session, spec, known_associations)
    if values["status"] not in ("draft", "published"):
        raise DomainError("a new event is a draft or published", code="invalid_transition")
    event_id = str(uuid.uuid4())
    event = Event(id=event_id, uid=f"{event_id}@tansiq.ma", sequence=0, created_at=now, updated_at=now, **values)
    if event.status == "published":
        warnings += _check_overlaps(session, _Who(event.id, event.organiser, event.city, event.venue_id), timing,
                                    set(event.exdates), [], force)
    session.add(event)
    session.flush()
    stored.store(session, event, now, new=True)
    if event.status == "published":
        _emit(session, "ma.tansiq.event.published.v1", event)
    return event, warnings


def get_event(session, event_id):
    event = session.get(Event, event_id)
    if event is None:
        raise NotFound(f"no event {event_id!r}", code="unknown_event")
    return event


def update_event(session, now, event_id, changes, known_associations, force=False):
    """Change an event (any CreateEvent field but the organiser). Returns (event, warnings)."""
    event = get_event(session, event_id)
    if event.status == "cancelled":
        raise Conflict("a cancelled event cannot be changed", code="invalid_transition")
    if "organiser" in changes and changes["organiser"] != event.organiser:
        raise DomainError("the organiser of an event cannot change", code="invalid_event")
    old = Timing.of(event)
    spec = {**_spec_of(event), **changes}
    carried = (old, [] if "exdates" in changes else list(event.exdates or []),
               [(override_key(o, old), o.starts_at, o.ends_at) for o in event.overrides])
    values, timing, overrides, warnings = _validate(session, spec, known_associations, carried)
    if values["status"] not in TRANSITIONS[event.status]:
        raise Conflict(f"an event cannot go from {event.status} to {values['status']}", code="invalid_transition")
    if values["status"] == "cancelled":
        raise DomainError("use cancel_event to cancel", code="invalid_transition")
    before = {name: getattr(event, name) for name in values}
    old_overrides = sorted(carried[2])
    significant = (any(values[name] != before[name] for name in SIGNIFICANT)
                   or sorted(overrides) != old_overrides)
    changed = significant or any(values[name] != before[name] for name in values)
    if values["status"] == "published" and (significant or event.status != "published"):
        warnings += _check_overlaps(session, _Who(event.id, values["organiser"], values["city"], values["venue_id"]),
                                    timing, set(values["exdates"]), overrides, force)
    was_draft = event.status == "draft"
    for name, value in values.items():
        setattr(event, name, value)
    if sorted(overrides) != old_overrides:
        _replace_overrides(session, event, overrides, timing)
    if significant and not was_draft:
        event.sequence += 1
    event.updated_at = now
    session.flush()
    stored.store(session, event, now)
    if was_draft and event.status == "published":
        _emit(session, "ma.tansiq.event.published.v1", event)
    elif not was_draft and changed:
        _emit(session, "ma.tansiq.event.updated.v1", event)
    return event, warnings


def cancel_event(session, now, event_id):
    event = get_event(session, event_id)
    if event.status == "cancelled":
        return event  # cancelling twice changes nothing
    was_draft = event.status == "draft"
    event.status = "cancelled"
    if not was_draft:
        event.sequence += 1
    event.updated_at = now
    session.flush()
    stored.store(session, event, now)
    if not was_draft:
        _emit(session, "ma.tansiq.event.cancelled.v1", event)
    return event


def move_occurrence(session, now, event_id, recurrence_id, start, end=None, force=False):
    """Move one occurrence of a recurring event (iCalendar RECURRENCE-ID). Returns (event, warnings)."""
    event = _changeable_series(session, event_id)
    timing = Timing.of(event)
    original = _local_input(recurrence_id, timing, "recurrence_id")
    key = timing.key(original)
    if not timing.is_occurrence(original) or key in event.exdates:
        raise NotFound(f"{recurrence_id} is not an occurrence of the event", code="unknown_occurrence")
    if timing.all_day:
        new_start = timing.to_utc(_local_input(start, timing, "start"))
        new_end = timing.to_utc(_local_input(end, timing, "end") + timedelta(days=1)) if end else (
            new_start + (timing.ends_at - timing.starts_at))
    else:
        new_start = local_to_utc(_as_datetime(start, "start"), timing.tz)
        new_end = local_to_utc(_as_datetime(end, "end"), timing.tz) if end else timing.end_of(
            new_start.astimezone(timing.tz))
    if new_end <= new_start:
        raise DomainError("the end must be after the start", code="end_before_start")
    warnings = []
    if event.status == "published":
        moved = Timing(new_start, new_end, timing.tz, timing.all_day)
        warnings = _check_overlaps(session, _Who(event.id, event.organiser, event.city, event.venue_id), moved,
                                   set(), [], force)
    existing = {override_key(o, timing): o for o in event.overrides}
    if key in existing:
        existing[key].starts_at, existing[key].ends_at = new_start, new_end
    else:
        event.overrides.append(Override(recurrence_id=timing.to_utc(original), starts_at=new_start, ends_at=new_end))
    _touch(session, now, event)
    return event, warnings


def cancel_occurrence(session, now, event_id, recurrence_id):
    """Cancel one occurrence of a recurring event: it becomes an EXDATE (and loses any move)."""
    event = _changeable_series(session, event_id)
    timing = Timing.of(event)
    original = _local_input(recurrence_id, timing, "recurrence_id")
    if not timing.is_occurrence(original):
        raise NotFound(f"{recurrence_id} is not an occurrence of the event", code="unknown_occurrence")
    key = timing.key(original)
    if key in event.exdates:
        return event
    event.exdates = sorted({*event.exdates, key})
    for override in list(event.overrides):
        if override_key(override, timing) == key:
            event.overrides.remove(override)
    _touch(session, now, event)
    return event


def override_key(override, timing):
    if timing.all_day:
        return override.recurrence_id.astimezone(timing.tz).date().isoformat()
    return override.recurrence_id.astimezone(UTC).isoformat()


def _changeable_series(session, event_id):
    event = get_event(session, event_id)
    if event.status == "cancelled":
        raise Conflict("a cancelled event cannot be changed", code="invalid_transition")
    if not event.rrule:
        raise DomainError("only a recurring event has occurrences to move or cancel; change the event itself",
                          code="not_recurring")
    return event


def _touch(session, now, event):
    if event.status != "draft":
        event.sequence += 1
    event.updated_at = now
    session.flush()
    stored.store(session, event, now)
    if event.status != "draft":
        _emit(session, "ma.tansiq.event.updated.v1", event)


def _replace_overrides(session, event, overrides, timing):
    wanted = {key: (start, end) for key, start, end in overrides}
    for override in list(event.overrides):
        event.overrides.remove(override)
    session.flush()
    for key, (start, end) in sorted(wanted.items()):
        event.overrides.append(Override(recurrence_id=timing.to_utc(timing.local_of_key(key)),
                                        starts_at=start, ends_at=end))


def _spec_of(event):
    """An existing event as a CreateEvent spec in its own local wall time."""
    tz = zone(event.tz)
    start = event.starts_at.astimezone(tz).replace(tzinfo=None)
    end = event.ends_at.astimezone(tz).replace(tzinfo=None)
    if event.all_day:
        start, end = start.date(), (end - timedelta(days=1)).date()
    return {"title": event.title, "description": event.description, "kind": event.kind,
            "organiser": event.organiser, "co_organisers": list(event.co_organisers or []), "city": event.city,
            "venue_id": event.venue_id, "place": event.place, "start": start, "end": end, "tz": event.tz,
            "all_day": event.all_day,
            "rrule": event.rrule, "capacity": event.capacity, "visibility": event.visibility,
            "status": event.status}


# --- overlaps ---------------------------------------------------------------------------------

def _spans(timing, exdates, overrides, window_start, window_end):
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
    return _spans(timing, set(event.exdates or []), overrides, window_start, window_end)


def _first_clash(mine, theirs):
    for start, end in mine:
        for other_start, other_end in theirs:
            if start < other_end and other_start < end:
                return max(start, other_start)
    return None


@dataclass(frozen=True)
class _Who:
    """The event being checked, as it will be once the change is applied."""

    id: str
    organiser: str
    city: str
    venue_id: str | None


def _check_overlaps(session, event, timing, exdates, overrides, force):
    """Warn about published events in the same city at the same time; refuse a double-booked venue.

    For a recurring series, the comparison covers OVERLAP_HORIZON from its first start. The
    others are read from stored occurrences by (city, start) and (venue, start): nothing else is
    expanded.
    """
    window_start = timing.starts_at
    window_end = timing.ends_at if not timing.rrule else timing.starts_at + OVERLAP_HORIZON
    window_end = max([window_end, *(end for _, _, end in overrides)])
    mine = _spans(timing, exdates, overrides, window_start, window_end)
    if not mine:
        return []
    warnings, overlaps = [], []
    for other, theirs in stored.clashing(session, event, mine, window_end).items():
        clash = _first_clash(mine, theirs)
        if clash is None:
            continue
        if event.venue_id and other.venue_id == event.venue_id:
            local = clash.astimezone(timing.tz).strftime("%Y-%m-%d %H:%M")
            if not force:
                raise Conflict(f"venue {other.venue.name!r} is already booked for {other.title!r} "
                               f"({other.organiser}) on {local} {timing.tz.key}; force to book it anyway",
                               code="venue_conflict", details={"other_event_id": other.id})
            warnings.append({"code": "venue_double_booked", "event_id": other.id, "title": other.title,
                             "organiser": other.organiser, "at": clash.isoformat()})
        if other.city.lower() == event.city.lower():
            warnings.append({"code": "overlap", "event_id": other.id, "title": other.title,
                             "organiser": other.organiser, "city": other.city, "at": clash.isoformat()})
            overlaps.append(other)
    # Messages once the event row exists in this transaction (the caller flushes before commit).
    for other in overlaps:
        outbox.add(session, contracts.make("ma.tansiq.event.overlap_detected.v1", SOURCE, {
            "event_id": event.id, "other_event_id": other.id, "city": other.city,
            "organisers": sorted({event.organiser, other.organiser})}))
    return warnings


# --- occurrences ------------------------------------------------------------------------------

@dataclass
class Occurrence:
    event_id: str
    occurrence_id: str
    recurrence_id: str | None
    title: str
    kind: str
    city: str
    organiser: str
    co_organisers: list
    venue: dict | None
    start: datetime
    end: datetime
    start_local: str
    end_local: str
    tz: str
    all_day: bool
    status: str
    visibility: str
    sequence: int
    moved: bool = False
    recurring: bool = False
    description: str = ""
    capacity: int | None = None
    registered: int = 0


def venue_dict(venue, place=""):
    if venue is None:
        return {"id": None, "name": place, "city": None, "address": "", "latitude": None,
                "longitude": None} if place else None
    return {"id": venue.id, "name": venue.name, "city": venue.city, "address": venue.address,
            "latitude": venue.latitude, "longitude": venue.longitude}


def occurrences_of(event, window_start, window_end):
    """Every occurrence of `event` intersecting [window_start, window_end), expanded in its zone."""
    recurrence.cooperate()  # listings walk many events: let heartbeats and other requests through
    timing = Timing.of(event)
    moved = {override_key(o, timing): o for o in event.overrides}
    exdates = set(event.exdates or [])
    found = []

    def add(key, start, end, is_moved):
        if end <= window_start or start >= window_end:
            return
        found.append(make_occurrence(event, timing, key, start, end, is_moved))

    for local in timing.starts_between(window_start, window_end):
        key = timing.key(local)
        if key not in exdates and key not in moved:
            add(key, timing.to_utc(local), timing.end_of(local), False)
    for key, override in moved.items():
        if key not in exdates:
            add(key, override.starts_at, override.ends_at, True)
    return sorted(found, key=lambda o: o.start)


def make_occurrence(event, timing, key, start, end, is_moved):
    """One occurrence of `event` (original start `key`, see Timing.key) as listings show it."""
    local_start, local_end = start.astimezone(timing.tz), end.astimezone(timing.tz)
    if timing.all_day:
        start_local, end_local = local_start.date().isoformat(), local_end.date().isoformat()
    else:
        start_local, end_local = local_start.isoformat(), local_end.isoformat()
    return Occurrence(
        event_id=event.id, occurrence_id=f"{event.id}/{key}" if event.rrule else event.id,
        recurrence_id=key if event.rrule else None, title=event.title, kind=event.kind, city=event.city,
        organiser=event.organiser, co_organisers=list(event.co_organisers or []),
        venue=venue_dict(event.venue, event.place), start=start, end=end, start_local=start_local, end_local=end_local,
        tz=event.tz, all_day=event.all_day, status=event.status, visibility=event.visibility,
        sequence=event.sequence, moved=is_moved, recurring=bool(event.rrule), description=event.description,
        capacity=event.capacity, registered=len(event.registrations))


def list_occurrences(session, window_start, window_end, city=None, kind=None, association=None,
                     visibilities=VISIBILITIES, include_drafts=False):
    """Every occurrence of events in a window (see occurrences.page), sorted by start and title;
    refused rather than cut when there are more than MAX_OCCURRENCES: ask page by page."""
    page = stored.page(session, window_start, window_end, city=city, kind=kind, association=association,
                       visibilities=visibilities, include_drafts=include_drafts, limit=MAX_OCCURRENCES)
    if page.next is not None:
        raise DomainError(f"more than {MAX_OCCURRENCES} occurrences in this window: ask page by page (cursor)",
                          code="too_many_occurrences")
    return page.items


# --- registrations and reminders --------------------------------------------------------------

def register(session, now, event_id, *, association, name, kind=None, staff_id=None, products=(),
             known_associations=()):
    """Register a participant or an artisan's stand; refused past capacity or when not open."""
    # Lock the event row so two registrations cannot both take the last place (PostgreSQL;
    # SQLite has a single writer anyway). Only the row: FOR UPDATE refuses the venue outer join.
    locked = session.scalar(select(Event.id).where(Event.id == event_id).with_for_update())
    event = session.get(Event, event_id) if locked else None
    if event is None:
        raise NotFound(f"no event {event_id!r}", code="unknown_event")
    if event.status not in ("published", "postponed"):
        raise Conflict(f"registrations are closed: the event is {event.status}", code="registration_closed")
    kind = kind or ("stand" if event.kind in ("exhibition", "fair") else "participant")
    allowed = STAND_KINDS if kind == "stand" else PARTICIPANT_KINDS if kind == "participant" else set()
    if event.kind not in allowed:
        raise DomainError(f"a {event.kind} does not take {kind} registrations", code="invalid_registration")
    products = [p.strip() for p in products or () if p and p.strip()]
    if kind == "stand" and not products:
        raise DomainError("a stand lists at least one product", code="invalid_registration")
    if not (name or "").strip():
        raise DomainError("a registration needs a name", code="invalid_registration")
    if not _exists_check(known_associations)(association):
        raise NotFound(f"unknown association {association!r}", code="unknown_association")
    for existing in event.registrations:
        if (staff_id and existing.staff_id == staff_id) or (
                existing.kind == kind and existing.association == association and existing.name == name.strip()):
            raise Conflict("already registered", code="already_registered", details={"registration_id": existing.id})
    if event.capacity is not None and len(event.registrations) >= event.capacity:
        raise Conflict(f"the event is full ({event.capacity} places)", code="event_full")
    registration = Registration(id=str(uuid.uuid4()), kind=kind, association=association, staff_id=staff_id,
                                name=name.strip(), products=products, created_at=now)
    event.registrations.append(registration)
    session.flush()
    return registration


def due_reminders(session, now, horizon):
    """Emit `reminder_due` once per occurrence starting within `horizon` that has registered staff."""
    window_end = now + horizon
    events = session.scalars(select(Event).where(
        Event.status == "published",
        Event.registrations.any(Registration.staff_id.is_not(None)),
        or_(Event.rrule.is_not(None), and_(Event.starts_at < window_end, Event.starts_at >= now))))
    sent = []
    for event in events:
        staff_ids = sorted({r.staff_id for r in event.registrations if r.staff_id})
        for occurrence in occurrences_of(event, now, window_end):
            if occurrence.start < now:
                continue  # already under way: too late to remind
            done = session.scalar(select(ReminderSent.id).where(ReminderSent.event_id == event.id,
                                                                ReminderSent.occurrence_start == occurrence.start))
            if done is not None:
                continue
            session.add(ReminderSent(event_id=event.id, occurrence_start=occurrence.start, sent_at=now))
            sent.append(outbox.add(session, contracts.make("ma.tansiq.event.reminder_due.v1", SOURCE, {
                "event_id": event.id, "title": event.title, "starts_at": occurrence.start.isoformat(),
                "staff_ids": staff_ids})))
    session.flush()
    return sent


# --- messages ---------------------------------------------------------------------------------

def event_data(event):
    """The event as the `ma.tansiq.event.*` contracts carry it."""
    timing = Timing.of(event)
    return {
        "event_id": event.id, "organiser": event.organiser, "co_organisers": list(event.co_organisers or []),
        "title": event.title, "kind": event.kind, "city": event.city,
        "venue": event.venue.name if event.venue else event.place,
        "starts_at": event.starts_at.isoformat(), "ends_at": event.ends_at.isoformat(), "tz": event.tz,
        "all_day": event.all_day, "rrule": event.rrule, "sequence": event.sequence, "status": event.status,
        "visibility": event.visibility, "exdates": list(event.exdates or []),
        "moved": [{"recurrence_id": override_key(o, timing), "starts_at": o.starts_at.isoformat(),
                   "ends_at": o.ends_at.isoformat()} for o in event.overrides],
    }


def _emit(session, type_, event):
    outbox.add(session, contracts.make(type_, event.organiser, event_data(event)))


# --- who may change what ----------------------------------------------------------------------

def check_editor(actor, organiser, co_organisers=()):
    """Staff may change an event of their own association (organiser or co-organiser) if their
    role allows it (tansiq.contracts.actor MATRIX). There is no trusted caller without an actor."""
    if actor is None:
        raise Forbidden("only signed-in staff change the calendar")
    actor.require("calendar.edit")
    if actor.association not in {organiser, *(co_organisers or ())}:
        raise Forbidden("only the organising associations may change this event")


def check_registrant(actor, association):
    """The staff id the registration is recorded under: the actor's own, never one the client names."""
    if actor is None or actor.association != association:
        raise Forbidden("staff register for their own association")
    return actor.id


def list_venues(session, city=None):
    query = select(Venue).order_by(Venue.city, Venue.name)
    if city:
        query = query.where(func.lower(Venue.city) == city.lower())
    return list(session.scalars(query))


# --- events published by partner systems ------------------------------------------------------

def partner_uid(source, event_id):
    return f"{event_id}@{source}.partner.tansiq.ma"


def apply_partner_event(session, now, envelope, known_associations):
    """Create, update or cancel the event a partner system describes in a validated
    `ma.tansiq.event.published|updated|cancelled.v1` envelope. Returns (event, warnings).

    A partner speaks only for its own events (source == organiser). A message older than
    what is stored (lower SEQUENCE) changes nothing, so out-of-order deliveries are harmless;
    the caller deduplicates redeliveries with its inbox.
    """
    data = envelope.data
    if data["organiser"] != envelope.source:
        raise Forbidden(f"{envelope.source} may only publish its own events", code="not_allowed")
    uid = partner_uid(envelope.source, data["event_id"])
    event = session.scalar(select(Event).where(Event.uid == uid))
    if event is not None and data["sequence"] < event.sequence:
        return event, [{"code": "stale", "message": f"sequence {data['sequence']} < {event.sequence}"}]
    if data["status"] == "cancelled" or envelope.type.endswith(".cancelled.v1"):
        if event is None:
            raise NotFound(f"no event {data['event_id']!r} from {envelope.source}", code="unknown_event")
        return cancel_event(session, now, event.id), []
    tz = zone(data["tz"])
    end = data["ends_at"]
    if data["all_day"]:
        end = end.astimezone(tz) - timedelta(days=1)  # the contract's end is exclusive, a spec's last day is not
    spec = {"title": data["title"], "kind": data["kind"], "organiser": data["organiser"],
            "co_organisers": data["co_organisers"], "city": data["city"], "place": data["venue"],
            "start": data["starts_at"], "end": end, "tz": data["tz"], "all_day": data["all_day"],
            "rrule": data["rrule"], "exdates": data["exdates"], "visibility": data["visibility"],
            "status": data["status"]}
    if event is None:
        if spec["status"] == "postponed":
            spec["status"] = "published"  # first heard of already postponed: create, then postpone below
        event, warnings = create_event(session, now, spec, known_associations)
        event.uid = uid
        if data["status"] == "postponed":
            event, more = update_event(session, now, event.id, {"status": "postponed"}, known_associations)
            warnings += more
    else:
        changes = {key: value for key, value in spec.items() if key != "organiser"}
        event, warnings = update_event(session, now, event.id, changes, known_associations)
    _set_partner_moves(session, event, data.get("moved") or [])
    event.sequence = max(event.sequence, data["sequence"])
    session.flush()
    stored.store(session, event, now)
    return event, warnings


def _set_partner_moves(session, event, moved):
    if not moved:
        return
    timing = Timing.of(event)
    overrides = []
    for move in moved:
        original = _local_input(move["recurrence_id"], timing, "recurrence_id")
        if not timing.is_occurrence(original):
            raise DomainError(f"moved occurrence {move['recurrence_id']} is not an occurrence", code="invalid_exdate")
        overrides.append((timing.key(original), move["starts_at"], move["ends_at"]))
    _replace_overrides(session, event, overrides, timing)
