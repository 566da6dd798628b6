"""Zones, wall times and a series' timing: the calendar's clock arithmetic in plain Python.

Times come in as local wall time in the event's IANA zone (naive datetimes), or as aware
datetimes; they are stored in UTC next to the zone. Recurrence is expanded in the event's zone
with python-dateutil, so a weekly 10:00 training stays at 10:00 local when Morocco moves its
clocks around Ramadan.
"""

import functools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.events import recurrence
from services.events.models import DEFAULT_TZ
from tansiq.errors import DomainError

UTC = timezone.utc
MAX_OCCURRENCES = 2000  # per event and listing: a bound on what one request may expand


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


def as_datetime(value, what):
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
            raise bad_rrule(text, f"cannot read {part!r}")
        parts[key.strip()] = value.strip()
    if "FREQ" not in parts:
        raise bad_rrule(text, "FREQ is required")
    if "UNTIL" in parts and "COUNT" in parts:
        raise bad_rrule(text, "UNTIL and COUNT cannot both be given")
    try:
        recurrence.check_parts(parts)
    except recurrence.RuleError as exc:
        raise bad_rrule(text, str(exc)) from None
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
        raise bad_rrule(text, f"UNTIL {value!r} is not a date or date-time") from None
    if all_day:
        return moment.strftime("%Y%m%d")
    utc = moment.replace(tzinfo=UTC) if value.endswith("Z") else local_to_utc(moment, tz)
    return _utc_stamp(utc)


def _utc_stamp(moment):
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def bad_rrule(text, why):
    return DomainError(f"invalid RRULE {text!r}: {why}", code="invalid_rrule")


def local_input(value, timing, what):
    """An occurrence start given by a caller (local wall time, aware time, or date) -> rule-local."""
    moment = as_datetime(value, what)
    if timing.all_day:
        return datetime.combine((moment.astimezone(timing.tz) if moment.tzinfo else moment).date(), time())
    return local_to_utc(moment, timing.tz).astimezone(timing.tz)


def remap(key, old, new):
    """The key of the occurrence of `new` on the local date of `old`'s occurrence `key`, or None."""
    if old == new:
        return key
    found = new.occurrence_on(old.local_of_key(key).date())
    return new.key(found) if found is not None else None



def override_key(override, timing):
    if timing.all_day:
        return override.recurrence_id.astimezone(timing.tz).date().isoformat()
    return override.recurrence_id.astimezone(UTC).isoformat()

