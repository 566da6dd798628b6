"""iCalendar feeds answered from a cache, with an ETag, and built off the database session.

A feed's ETag is a hash of what it covers (scope, audience, window) and of the last change
to the events it may hold (their latest `updated_at` and their number): one small query. A
client that already has that version is told so without a build (HTTP 304); a feed already
built for it is served from memory. Otherwise each event's VEVENT text, stored with the event
(Event.ics_text, rewritten with each change), is read in one short unit of work and the texts
are joined after it has closed, yielding every few hundred events, so a long build holds
neither the database (SQLite's unit-of-work lock) nor the event loop. An event stored before
its text was is written here once and kept in memory until it changes. Two
requests for the same feed share one build.
"""

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from services.events import ical
from services.events.recurrence import cooperate

CACHE_BYTES = 64 * 1024 * 1024  # feeds kept in memory, most recently used first
EVENT_CACHE_BYTES = 64 * 1024 * 1024  # events' VEVENT texts, reused by the next build of any feed


@dataclass(frozen=True)
class Answer:
    etag: str
    last_modified: datetime | None
    text: str | None  # None: the client's copy is current (304)


class TextCache:
    """Texts by key, least recently used dropped first past `max_bytes`."""

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self._texts = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            text = self._texts.get(key)
            if text is not None:
                self._texts.move_to_end(key)
            return text

    def put(self, key, text):
        if len(text) > self.max_bytes:
            return  # served, not kept
        with self._lock:
            previous = self._texts.pop(key, None)
            self._size += len(text) - (len(previous) if previous is not None else 0)
            self._texts[key] = text
            while self._size > self.max_bytes:
                _, dropped = self._texts.popitem(last=False)
                self._size -= len(dropped)


class FeedCache:
    def __init__(self, max_bytes=CACHE_BYTES, event_bytes=EVENT_CACHE_BYTES):
        self._feeds = TextCache(max_bytes)  # etag -> feed text
        # (event id, sequence, last change) -> its VEVENTs: a change rewrites one event, not the feed.
        self._events = TextCache(event_bytes)
        self._lock = threading.Lock()  # green once eventlet patches threading
        self._building = {}  # etag -> threading.Event of the build under way

    def answer(self, sessions, now, scope, value=None, visibilities=("public",), start=None, end=None,
               if_none_match=None, if_modified_since=None):
        """The feed, or None as its text when the client's copy is current: `if_none_match` holds its
        ETag, or (without If-None-Match, RFC 9110 13.2.2) nothing changed after `if_modified_since`.

        `sessions`: a callable opening a unit of work (the service's `db.session`)."""
        start, end = ical.window(now, start, end)
        with sessions() as session:
            last_modified, counts = ical.version(session, scope, value, visibilities)
            etag = _etag(scope, value, visibilities, start, end, last_modified, counts)
            if _current(etag, last_modified, if_none_match, if_modified_since):
                return Answer(etag, last_modified, None)
            cached = self._feeds.get(etag)
            if cached is not None:
                return Answer(etag, last_modified, cached)
            owner, done = self._claim(etag)
            if owner:
                cooperate()  # between the version query and the build's: others' turn
                try:
                    name, content, _ = ical.feed_events(session, now, scope, value, visibilities, start, end)
                except BaseException:
                    self._release(etag, done)
                    raise
        if not owner:
            done.wait()
            cached = self._feeds.get(etag)
            if cached is not None:
                return Answer(etag, last_modified, cached)
            return self.answer(sessions, now, scope, value, visibilities, start, end, if_none_match,
                               if_modified_since)
        try:
            # The session is closed: nothing is held while the text is written.
            text = ical.text(content, name, now, start, end, event_text=self._event_text)
            self._feeds.put(etag, text)
        finally:
            self._release(etag, done)
        return Answer(etag, last_modified, text)

    def _claim(self, etag):
        with self._lock:
            if etag in self._building:
                return False, self._building[etag]
            done = self._building[etag] = threading.Event()
            return True, done

    def _release(self, etag, done):
        with self._lock:
            self._building.pop(etag, None)
        done.set()

    def _event_text(self, event):
        key = (event.id, event.sequence, event.updated_at.isoformat())
        text = self._events.get(key)
        if text is None:
            text = ical.vevents_text(event)
            self._events.put(key, text)
        return text


def _etag(scope, value, visibilities, start, end, last_modified, counts):
    key = "|".join(map(str, (scope, (value or "").lower(), ",".join(sorted(visibilities)), start.isoformat(),
                             end.isoformat(), last_modified.isoformat() if last_modified else "", counts)))
    return '"' + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32] + '"'


def _current(etag, last_modified, if_none_match, if_modified_since):
    if if_none_match:
        return etag in _tags(if_none_match) or "*" in _tags(if_none_match)
    if if_modified_since and last_modified:
        return last_modified.replace(microsecond=0) <= if_modified_since
    return False


def _tags(header):
    return {tag.strip().removeprefix("W/") for tag in str(header).split(",")}


CACHE = FeedCache()  # one per events service process
