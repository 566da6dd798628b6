"""Working time in Morocco: Monday-Friday, office hours in Africa/Casablanca, minus public holidays.

Public holidays come from the `holidays` package (Islamic dates are estimates there), corrected
by overrides an admin records once the dates are announced.
"""

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import holidays

CASABLANCA = ZoneInfo("Africa/Casablanca")
MAX_DAYS_SCANNED = 3660  # a guard against a calendar with no working day at all


class WorkCalendar:
    def __init__(self, overrides=None, tz=CASABLANCA, opens=time(9), closes=time(17), country="MA"):
        self.overrides = dict(overrides or {})  # date -> is_holiday
        self.tz = tz
        self.opens, self.closes = opens, closes
        self.public_holidays = holidays.country_holidays(country)  # expands to any year on lookup

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
