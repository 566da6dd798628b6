"""Finding events: by words of the title, city and a date range (the calendar's search page).

Reads the stored occurrences (occurrences.py): an event matches when one of its occurrences starts
in the range, and is listed once, at the first of them. Series are stored two years ahead
(occurrences.HORIZON): a range beyond that finds only what is stored there.
"""

from datetime import timedelta

from sqlalchemy import func, or_, select

from services.events import domain
from services.events.models import Event, StoredOccurrence
from tansiq.errors import DomainError

DEFAULT_BACK, DEFAULT_AHEAD = timedelta(days=31), timedelta(days=366)
MAX_RESULTS = 100


def search(session, now, text=None, city=None, start=None, end=None, visibilities=("public",), association=None,
           limit=50):
    """[{"event": Event, "first": first matching start (UTC)}], soonest first, at most `limit`.

    Drafts are found only by their organiser's staff (`association`), like everywhere else.
    """
    start = start or now - DEFAULT_BACK
    end = end or start + DEFAULT_BACK + DEFAULT_AHEAD
    if end <= start:
        raise DomainError("the end of the range must be after its start", code="invalid_window")
    if end - start > domain.MAX_WINDOW:
        raise DomainError(f"search at most {domain.MAX_WINDOW.days} days at a time", code="invalid_window")
    stored = StoredOccurrence
    first = func.min(stored.starts_at).label("first")
    query = (select(stored.event_id, first)
             .where(stored.starts_at >= start, stored.starts_at < end, stored.visibility.in_(visibilities),
                    or_(stored.status != "draft", stored.organiser == (association or "")))
             .group_by(stored.event_id).order_by(first, stored.event_id).limit(max(1, min(limit, MAX_RESULTS))))
    words = (text or "").strip().lower()
    if words:
        query = query.where(func.lower(stored.title).contains(words, autoescape=True))
    if city:
        query = query.where(stored.city_key == city.strip().lower())
    found = session.execute(query).all()
    events = {event.id: event for event in session.scalars(select(Event).where(
        Event.id.in_([event_id for event_id, _ in found])))}
    return [{"event": events[event_id], "first": first} for event_id, first in found if event_id in events]
