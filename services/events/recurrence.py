"""Recurrence rules the calendar accepts, and expansion whose cost does not grow with time.

dateutil accepts any RFC 5545 rule and walks it from DTSTART: `INTERVAL=0` never ends,
`FREQ=SECONDLY` with no end is a few million occurrences a month, and a rule that matches
nothing walks to the year 9999. Events of people's lives need far less, so:

- FREQ is DAILY, WEEKLY, MONTHLY or YEARLY; INTERVAL 1..MAX_INTERVAL; COUNT 1..MAX_COUNT;
  UNTIL at most MAX_SPAN after DTSTART; occurrences keep DTSTART's time of day (no BYHOUR,
  BYMINUTE, BYSECOND), so there is at most one occurrence a day;
- DAILY and WEEKLY filter on plain weekdays and months only, so they can never match nothing;
  MONTHLY and YEARLY may also name month days, n-th weekdays and set positions;
- expansion starts one period before the asked window, not at DTSTART (a series without an end
  costs the same in its tenth year as in its first), and walks at most EXPANSION_BUDGET
  occurrences per call;
- whether DTSTART matches its own rule is asked 400·k years later (the Gregorian calendar
  repeats every 400 years), where dateutil gives up on a rule that never matches after at most
  400 years instead of 8,000.

A rule stored before these checks existed and failing them is not expanded (the event keeps
its first occurrence only) rather than hanging every listing: see `stored_rule`.
"""

import logging
import re
import time
from datetime import datetime, timedelta

from dateutil.relativedelta import relativedelta
from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrulestr

log = logging.getLogger(__name__)

FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
MAX_INTERVAL = 99
MAX_COUNT = 500
MAX_SPAN = relativedelta(years=5)
EXPANSION_BUDGET = 2000  # occurrences one expansion may walk through, wherever it starts
YIELD_EVERY = 200  # occurrences between cooperative yields (AMQP heartbeats run meanwhile)
GREGORIAN_CYCLE_YEARS = 400
_LATE_YEAR = 9600  # far enough that dateutil's walk to 9999 is short, a whole cycle before it

_WEEKDAY = r"(MO|TU|WE|TH|FR|SA|SU)"
_PLAIN_DAY = re.compile(rf"^{_WEEKDAY}$")
_NTH_DAY = re.compile(rf"^([+-]?)(\d{{1,2}})?{_WEEKDAY}$")
_NUMBER = re.compile(r"^([+-]?)(\d{1,3})$")
# Which parts each frequency may use (besides FREQ, INTERVAL, COUNT, UNTIL, WKST).
_BY_PARTS = {
    "DAILY": {"BYDAY", "BYMONTH"},
    "WEEKLY": {"BYDAY", "BYMONTH"},
    "MONTHLY": {"BYDAY", "BYMONTH", "BYMONTHDAY", "BYSETPOS"},
    "YEARLY": {"BYDAY", "BYMONTH", "BYMONTHDAY", "BYSETPOS"},
}
_ALWAYS = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "WKST"}


class RuleError(ValueError):
    """A recurrence rule the calendar does not accept (the caller answers `invalid_rrule`)."""


def check_parts(parts):
    """Refuse any rule outside the closed set above; `parts` maps upper-case names to values."""
    freq = parts.get("FREQ")
    if freq not in FREQUENCIES:
        raise RuleError(f"FREQ must be one of {', '.join(FREQUENCIES)}")
    unknown = sorted(set(parts) - _ALWAYS - _BY_PARTS[freq])
    if unknown:
        raise RuleError(f"{', '.join(unknown)} not allowed with FREQ={freq} "
                        "(occurrences keep the start's time of day; at most one a day)")
    if "INTERVAL" in parts:
        _bounded_number(parts["INTERVAL"], "INTERVAL", 1, MAX_INTERVAL, signed=False)
    if "COUNT" in parts:
        _bounded_number(parts["COUNT"], "COUNT", 1, MAX_COUNT, signed=False)
    if "WKST" in parts and not _PLAIN_DAY.match(parts["WKST"]):
        raise RuleError(f"WKST {parts['WKST']!r} is not a weekday")
    for value in _values(parts, "BYMONTH"):
        _bounded_number(value, "BYMONTH", 1, 12, signed=False)
    for value in _values(parts, "BYMONTHDAY"):
        _bounded_number(value, "BYMONTHDAY", 1, 31)
    for value in _values(parts, "BYSETPOS"):
        _bounded_number(value, "BYSETPOS", 1, 366)
    if "BYSETPOS" in parts and not {"BYDAY", "BYMONTHDAY"} & set(parts):
        raise RuleError("BYSETPOS needs BYDAY or BYMONTHDAY")
    for value in _values(parts, "BYDAY"):
        match = _NTH_DAY.match(value)
        if not match:
            raise RuleError(f"BYDAY {value!r} is not a weekday")
        if match.group(2) is not None:
            if freq in ("DAILY", "WEEKLY"):
                raise RuleError(f"BYDAY {value!r}: an n-th weekday needs FREQ=MONTHLY or YEARLY")
            limit = 5 if freq == "MONTHLY" or "BYMONTH" in parts else 53
            if not 1 <= int(match.group(2)) <= limit:
                raise RuleError(f"BYDAY {value!r}: n must be 1..{limit}")


def _values(parts, name):
    return parts[name].split(",") if name in parts else []


def _bounded_number(value, name, low, high, signed=True):
    match = _NUMBER.match(value)
    if not match or (match.group(1) and not signed) or not low <= int(match.group(2)) <= high:
        sign = "±" if signed else ""
        raise RuleError(f"{name}={value!r} must be a whole number {sign}{low}..{high}")


def parts_of(text):
    """'FREQ=WEEKLY;COUNT=3' -> {'FREQ': 'WEEKLY', 'COUNT': '3'}; RuleError when unreadable."""
    body = str(text).strip().upper()
    if body.startswith("RRULE:"):
        body = body[6:]
    parts = {}
    for part in body.split(";"):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value or key in parts:
            raise RuleError(f"cannot read {part!r}")
        parts[key] = value
    return parts


def build(text, dtstart):
    """The dateutil rule for a checked `text`, starting at `dtstart` (local: aware, or naive all-day)."""
    check_parts(parts_of(text))
    try:
        rule = rrulestr(text, dtstart=dtstart)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise RuleError(str(exc)) from None
    if rule._until is not None and _naive(rule._until) > _naive(dtstart) + MAX_SPAN:
        raise RuleError(f"UNTIL is more than {_years(MAX_SPAN)} years after the start")
    return rule


def stored_rule(text, dtstart, event_id=None):
    """A rule read back from the database: None (and a warning) if it no longer passes the checks."""
    try:
        return build(text, dtstart)
    except RuleError as exc:
        log.warning("event %s: stored RRULE %r is not expanded: %s", event_id, text, exc)
        return None


def first_occurrence(rule):
    """The first occurrence of `rule` (or None), in a bounded time even if the rule never matches."""
    dtstart = rule._dtstart
    shift = _cycles_to_late(dtstart.year) * GREGORIAN_CYCLE_YEARS
    until = rule._until
    if until is not None and until.tzinfo is not None and dtstart.tzinfo is not None:
        until = until.astimezone(dtstart.tzinfo)
    late = rule.replace(dtstart=_naive(dtstart).replace(year=dtstart.year + shift),
                        until=_naive(until).replace(year=until.year + shift) if until else None)
    try:
        found = next(iter(late), None)
    except (ValueError, OverflowError) as exc:
        raise RuleError(str(exc)) from None
    if found is None:
        return None
    return found.replace(year=found.year - shift, tzinfo=dtstart.tzinfo)


def _cycles_to_late(year):
    return max(0, -(-(_LATE_YEAR - year) // GREGORIAN_CYCLE_YEARS))  # rounded up


def between(rule, lo, hi, limit=EXPANSION_BUDGET):
    """Occurrences `start` of `rule` with lo <= start < hi (local times like DTSTART), walking
    from about one period before `lo` and never more than `limit` occurrences."""
    if rule._count is None:
        rule = _started_near(rule, lo)
    found = []
    for walked, start in enumerate(rule, start=1):
        if start >= hi or walked > limit:
            break
        if walked % YIELD_EVERY == 0:
            cooperate()
        if start >= lo:
            found.append(start)
    return found


def cooperate():
    """Let other green threads (AMQP heartbeats, other requests) run; a no-op without eventlet."""
    time.sleep(0)


def _started_near(rule, lo):
    """The same series, with DTSTART moved a whole number of periods forward to shortly before `lo`.

    What dateutil derives from DTSTART (the month day of a MONTHLY rule, the weekday of a
    WEEKLY one...) is pinned first, so moving DTSTART changes nothing but where the walk begins.
    The new DTSTART is the start of its period and is one period early, so no occurrence of the
    window's periods is skipped. COUNT rules are walked from the start (COUNT <= MAX_COUNT).
    """
    dtstart, interval = rule._dtstart, rule._interval
    if lo <= dtstart:
        return rule
    pinned = _pinned_defaults(rule)
    if rule._freq == DAILY:
        periods = (lo.date() - dtstart.date()).days // interval - 1
        moved = dtstart + timedelta(days=periods * interval) if periods > 0 else None
    elif rule._freq == WEEKLY:
        periods = (lo.date() - dtstart.date()).days // (7 * interval) - 1
        moved = dtstart + timedelta(weeks=periods * interval) if periods > 0 else None
    elif rule._freq == MONTHLY:
        periods = ((lo.year - dtstart.year) * 12 + lo.month - dtstart.month) // interval - 1
        moved = dtstart.replace(day=1) + relativedelta(months=periods * interval) if periods > 0 else None
    elif rule._freq == YEARLY:
        periods = (lo.year - dtstart.year) // interval - 1
        moved = dtstart.replace(month=1, day=1) + relativedelta(years=periods * interval) if periods > 0 else None
    else:  # only rules that passed check_parts get here
        return rule
    if moved is None:
        return rule
    # Wall-clock arithmetic: keep the local time of day whatever the zone's offset is then.
    moved = moved.replace(tzinfo=dtstart.tzinfo)
    return rule.replace(dtstart=moved, **pinned)


def _pinned_defaults(rule):
    """What dateutil would take from DTSTART, made explicit (see rrule.__init__)."""
    original = rule._original_rule
    if any(original.get(name) for name in ("byweekno", "byyearday", "bymonthday", "byweekday", "byeaster")):
        return {}
    dtstart = rule._dtstart
    if rule._freq == YEARLY:
        return {"bymonth": original.get("bymonth") or dtstart.month, "bymonthday": dtstart.day}
    if rule._freq == MONTHLY:
        return {"bymonthday": dtstart.day}
    if rule._freq == WEEKLY:
        return {"byweekday": dtstart.weekday()}
    return {}


def _naive(moment):
    return moment.replace(tzinfo=None) if isinstance(moment, datetime) else moment


def _years(delta):
    return delta.years
