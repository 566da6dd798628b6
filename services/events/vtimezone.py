"""VTIMEZONE blocks written from the zone database, one observance per transition.

icalendar's own generator guesses rules from the date it starts at, and misses the
Ramadan transitions of Africa/Casablanca in some years (2027): a client that trusts the
feed's VTIMEZONE rather than its own zone database would show those weeks an hour off.
Here every transition of the years a feed covers is read from zoneinfo and written as
its own STANDARD/DAYLIGHT observance (no RRULE to guess), so the block is exactly the
zone database over those years, and nothing outside them.
"""

import functools
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import icalendar

UTC = timezone.utc
_STEP = timedelta(hours=6)  # no zone changes its offset twice within six hours


@functools.lru_cache(maxsize=256)  # the zone database does not change while a process runs
def transitions(tz, first_year, last_year):
    """(instant UTC, offset before, offset after, dst after, name after) for each change of
    `tz`'s UTC offset from 1 January `first_year` to the end of `last_year` (UTC)."""
    start = datetime(first_year, 1, 1, tzinfo=UTC)
    end = datetime(last_year + 1, 1, 1, tzinfo=UTC)
    found = []
    moment, offset = start, start.astimezone(tz).utcoffset()
    while moment < end:
        following = min(moment + _STEP, end)
        next_offset = following.astimezone(tz).utcoffset()
        if next_offset != offset:
            lo, hi = moment, following  # offset(lo) == offset, offset(hi) != offset: bisect to the second
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(tz).utcoffset() == offset:
                    lo = mid
                else:
                    hi = mid
            hi = hi.replace(microsecond=0)
            after = hi.astimezone(tz)
            found.append((hi, offset, after.utcoffset(), bool(after.dst()), after.tzname()))
            offset = next_offset
        moment = following
    return tuple(found)


def vtimezone(tz, first_year, last_year):
    """The VTIMEZONE of `tz` (a ZoneInfo) for the years first_year..last_year."""
    component = icalendar.Timezone()
    component.add("tzid", tz.key)
    component.add("x-lic-location", tz.key)
    # Where the covered years begin: the offset then in force, so the block needs nothing earlier.
    start = datetime(first_year, 1, 1, tzinfo=UTC).astimezone(tz)
    component.add_component(_observance(start.replace(tzinfo=None), start.utcoffset(), start.utcoffset(),
                                        bool(start.dst()), start.tzname()))
    for instant, before, after, dst, name in transitions(tz, first_year, last_year):
        # DTSTART is the onset in the local time that was in force before it (RFC 5545 3.6.5).
        onset = (instant + before).replace(tzinfo=None)
        component.add_component(_observance(onset, before, after, dst, name))
    return component


def _observance(onset, offset_from, offset_to, dst, name):
    observance = icalendar.TimezoneDaylight() if dst else icalendar.TimezoneStandard()
    observance.add("dtstart", onset)
    observance.add("tzoffsetfrom", offset_from)
    observance.add("tzoffsetto", offset_to)
    if name:
        observance.add("tzname", name)
    return observance


def for_zones(names, first_year, last_year):
    """One VTIMEZONE per zone name, sorted, for the years a feed covers."""
    return [vtimezone(ZoneInfo(name), first_year, last_year) for name in sorted(set(names))]
