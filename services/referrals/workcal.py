"""Working time in Morocco: Monday-Friday, office hours in Africa/Casablanca, minus public holidays.

Public holidays come from the `holidays` package (Islamic dates are estimates there), corrected
by overrides an admin records once the dates are announced.
"""

from datetime import date, datetime, time, timedelta, timezone
from functools import cache
from zoneinfo import ZoneInfo

import holidays

CASABLANCA = ZoneInfo("Africa/Casablanca")
MAX_DAYS_SCANNED = 3660  # a guard against a calendar with no working day at all
YEARS_AHEAD = 11  # public holidays computed at first use: as far as MAX_DAYS_SCANNED reaches


@cache
def public_holidays(country):
    """The country's public holidays, one object per process for every calendar: computing them anew for
    each referral's calendar (Islamic dates included) was 0.6 ms of every referral. Filled at first use
    for the years deadlines fall in, so later lookups read it and do not fill it; a year outside them
    is added on lookup."""
    this_year = date.today().year
    return holidays.country_holidays(country, years=range(this_year - 1, this_year + YEARS_AHEAD + 1))


class WorkCalendar:
    def __init__(self, overrides=None, tz=CASABLANCA, opens=time(9), closes=time(17), country="MA"):
        self.overrides = dict(overrides or {})  # date -> is_holiday
        self.tz = tz
        self.opens, self.closes = opens, closes
        self.public_holidays = public_holidays(country)

    @property
    def working_day(self):
        """The length of one working day, the unit of 'N working days'."""
        return datetime.combine(datetime.min, self.closes) - datetime.combine(datetime.min, self.opens)

    def days(self, n):
        return n * self.working_day

    def is_working_day(self, day):
        if day in self.overrides:
            return not self.overrides[day]
        return day.weekday() < 5 and day not in self.public_holidays

    def add(self, start, duration):
        """The aware UTC instant `duration` of working time after `start`."""
        if duration <= timedelta(0):
            return start
        remaining = duration
        cursor = start.astimezone(self.tz)
        for _ in range(MAX_DAYS_SCANNED):
            day = cursor.date()
            if self.is_working_day(day):
                # Build each bound in local time so a DST/Ramadan offset change is honoured.
                opens = datetime.combine(day, self.opens, self.tz)
                closes = datetime.combine(day, self.closes, self.tz)
                cursor = max(cursor, opens)
                if cursor < closes:
                    available = closes.astimezone(timezone.utc) - cursor.astimezone(timezone.utc)
                    if remaining <= available:
                        return (cursor.astimezone(timezone.utc) + remaining)
                    remaining -= available
            cursor = datetime.combine(day + timedelta(days=1), time(0), self.tz)
        raise ValueError("no working time found within ten years")
