"""The calendar at scale (`tansiq bench --calendar-events N`): the rows of issue 13's table.

N events (a third of them recurring, some open-ended) are created through the real domain
(`domain.create_event`, the same overlap checks and stored occurrences as the API) in a
throwaway PostgreSQL database, then the month views, feeds and single creates are timed in
this process, in the events service's own code, without the RPC and HTTP hops.
"""

import os
import random
import resource
import statistics
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.events import domain, feeds, occurrences
from services.events.models import Base, Event, StoredOccurrence
from tansiq.db import Sessions, make_engine
from tansiq.messaging.store import messaging_metadata

UTC = timezone.utc
NOW = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)
CITIES = ("Safi", "Marrakech", "Agadir", "Rabat", "Casablanca", "Fes", "Tanger", "Oujda", "Essaouira", "Meknes",
          "Tetouan", "Laayoune")
ASSOCIATIONS = {f"assoc-{n:03d}" for n in range(120)}
RULES = ("FREQ=WEEKLY;COUNT=10", "FREQ=WEEKLY", "FREQ=DAILY;COUNT=5", "FREQ=MONTHLY;COUNT=12", "FREQ=WEEKLY;INTERVAL=2")
BATCH = 500  # events per unit of work while loading
SAMPLES = 20


def load(db, n, seed=2027):
    rng = random.Random(seed)
    slugs = sorted(ASSOCIATIONS)
    started = time.monotonic()
    for first in range(0, n, BATCH):
        with db.session() as session:
            for number in range(first, min(n, first + BATCH)):
                day = NOW + timedelta(days=rng.randrange(-90, 540))
                start = day.replace(hour=rng.randrange(8, 20), minute=0, tzinfo=None)
                spec = {"title": f"Evenement {number}", "kind": rng.choice(("training", "meeting", "exhibition")),
                        "organiser": rng.choice(slugs), "city": rng.choice(CITIES), "start": start,
                        "end": start + timedelta(hours=rng.choice((1, 2, 3))), "status": "published",
                        "visibility": "public", "rrule": rng.choice(RULES) if rng.random() < 1 / 3 else None}
                domain.create_event(session, NOW, spec, ASSOCIATIONS, force=True)
    return time.monotonic() - started


def timed(call, samples=SAMPLES):
    durations = []
    for _ in range(samples):
        started = time.perf_counter()
        call()
        durations.append(time.perf_counter() - started)
    durations.sort()
    return statistics.median(durations), durations[max(0, int(len(durations) * 0.95) - 1)]


def ms(seconds):
    return f"{seconds * 1000:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def run(n, pg_url):
    load_before = os.getloadavg()[0]
    engine = make_engine(pg_url)
    Base.metadata.create_all(engine)
    messaging_metadata.create_all(engine)
    db = Sessions(engine)
    rows = []
    try:
        load_seconds = load(db, n)
        with Session(engine) as session:
            stored = session.scalar(select(func.count()).select_from(StoredOccurrence))
        rng = random.Random(1)
        months = [NOW.replace(day=1) + timedelta(days=31 * k) for k in range(0, 12)]

        def month_page(city=None):
            start = rng.choice(months).replace(day=1)
            with Session(engine) as session:
                return occurrences.page(session, start, start + timedelta(days=31), city=city)

        def month_all(city=None):
            start, cursor, found = rng.choice(months).replace(day=1), None, 0
            with Session(engine) as session:
                while True:
                    page = occurrences.page(session, start, start + timedelta(days=31), city=city, cursor=cursor)
                    found += len(page.items)
                    if page.next is None:
                        return found
                    cursor = page.next

        p50, p95 = timed(month_page)
        rows.append(("month view JSON, whole network: first page (500)", ms(p50), ms(p95)))
        sizes = []
        p50, p95 = timed(lambda: sizes.append(month_all()), samples=5)
        rows.append((f"month view JSON, whole network: every page (~{int(statistics.mean(sizes)):,} occurrences)",
                     ms(p50), ms(p95)))
        p50, p95 = timed(lambda: month_page("Safi"))
        rows.append(("month view JSON, one city: first page", ms(p50), ms(p95)))

        cache = feeds.FeedCache(max_bytes=256 * 1024 * 1024)
        started = time.perf_counter()
        city = cache.answer(db.session, NOW, "city", "Safi")
        city_cold = time.perf_counter() - started
        rows.append((f"city feed (.ics), built ({len(city.text) / 1e6:.1f} MB)", ms(city_cold), "—"))
        p50, p95 = timed(lambda: cache.answer(db.session, NOW, "city", "Safi"))
        rows.append(("city feed (.ics), cached", ms(p50), ms(p95)))
        p50, p95 = timed(lambda: cache.answer(db.session, NOW, "city", "Safi", if_none_match=city.etag))
        rows.append(("city feed (.ics), conditional GET answered 304", ms(p50), ms(p95)))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        network = cache.answer(db.session, NOW, "network")
        network_cold = time.perf_counter() - started
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append((f"network feed (.ics), built ({len(network.text) / 1e6:.1f} MB; peak RSS {rss_after:,.0f} MiB, "
                     f"{rss_before:,.0f} before)", ms(network_cold), "—"))

        with db.session() as session:
            some = session.scalar(select(Event.id).where(Event.rrule.is_(None)).limit(1))
            domain.update_event(session, NOW, some, {"title": "Evenement change"}, ASSOCIATIONS, force=True)
        started = time.perf_counter()
        rebuilt = cache.answer(db.session, NOW, "network")
        rows.append(("network feed (.ics), rebuilt after one event changed (the others' text reused)",
                     ms(time.perf_counter() - started), "—"))
        assert "Evenement change" in rebuilt.text

        creates = 200
        started = time.perf_counter()
        for number in range(creates):
            with db.session() as session:
                start = (NOW + timedelta(days=number % 300)).replace(hour=10, tzinfo=None)
                domain.create_event(session, NOW, {
                    "title": f"Nouveau {number}", "kind": "meeting", "organiser": "assoc-001", "city": "Safi",
                    "start": start, "end": start + timedelta(hours=1), "status": "published",
                    "visibility": "public"}, ASSOCIATIONS, force=True)
        rate = creates / (time.perf_counter() - started)
        rows.append((f"create one event (domain, own unit of work; {creates} in a row)", f"{rate:,.0f} per second",
                     "—"))
    finally:
        engine.dispose()
    return load_seconds, stored, rows, (load_before, os.getloadavg()[0])


def section(n, load_seconds, stored, rows, load_average):
    lines = [
        f"## The calendar at {n:,} events (PostgreSQL)",
        "",
        f"Written by `tansiq bench --calendar-events {n}` (`make bench CALENDAR_EVENTS={n}`). {n:,} events "
        f"(a third recurring, some without an end) in 12 cities, created through `domain.create_event` in "
        f"{load_seconds:,.0f} s ({n / load_seconds:,.0f} per second, {BATCH} per unit of work), "
        f"{stored:,} stored occurrences. Timed in one process on the events service's code (no RPC or HTTP hop); "
        f"p50/p95 over {SAMPLES} random months of the coming year. Load average {load_average[0]:.1f} at the "
        f"start, {load_average[1]:.1f} at the end, on {os.cpu_count()} cores.",
        "",
        "| operation | p50 | p95 |",
        "|---|---|---|",
        *[f"| {label} | {p50} | {p95} |" for label, p50, p95 in rows],
    ]
    return "\n".join(lines)
