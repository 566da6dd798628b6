"""The calendar at scale (`tansiq bench --calendar-events N`): the rows of issue 13's table.

N events (a third of them recurring, some open-ended) are bulk-loaded into a throwaway
PostgreSQL database by series.load_events: each is checked by the real validation, its stored
occurrences and VEVENT text are made by the same functions as a create, and the rows go in a
few thousand at a time (not through the API, which would take hours). Then the month views,
feeds and single creates are timed in this process, on the events service's own code, without
the RPC and HTTP hops.
"""

import json
import multiprocessing
import os
import random
import statistics
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.events import domain, feeds, listing, occurrences
from services.events.models import Base, Event, StoredOccurrence
from tansiq.db import Sessions, make_engine
from tansiq.messaging.store import messaging_metadata

UTC = timezone.utc
NOW = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)
CITIES = ("Safi", "Marrakech", "Agadir", "Rabat", "Casablanca", "Fes", "Tanger", "Oujda", "Essaouira", "Meknes",
          "Tetouan", "Laayoune")
ASSOCIATIONS = {f"assoc-{n:03d}" for n in range(120)}
RULES = ("FREQ=WEEKLY;COUNT=10", "FREQ=WEEKLY", "FREQ=DAILY;COUNT=5", "FREQ=MONTHLY;COUNT=12", "FREQ=WEEKLY;INTERVAL=2")
BATCH = 2000  # events per transaction while loading
# Events lasting one to three weeks, as a network has (a fair, a festival): 1 in 1,000. Without any, the rows
# missed what one long event cost every month page and overlap check (occurrences.LONG).
LONG_EVENTS = 0.001
SAMPLES = 20
CREATES = 200  # creates timed in a row (domain) or by API_CLIENTS clients at once (API)
API_CLIENTS = 8
EVENTS_MANAGER = "youssef@amal-safi.example"  # the demo's events manager of amal-safi


def load(engine, n, seed=2027, progress=None):
    """Bulk-load `n` events as a create would store them; `progress(done, n, seconds)` after each batch."""
    rng = random.Random(seed)
    slugs = sorted(ASSOCIATIONS)
    started = time.monotonic()
    for first in range(0, n, BATCH):
        specs = []
        for number in range(first, min(n, first + BATCH)):
            day = NOW + timedelta(days=rng.randrange(-90, 540))
            start = day.replace(hour=rng.randrange(8, 20), minute=0, tzinfo=None)
            length = timedelta(hours=rng.choice((1, 2, 3)))
            rule = rng.choice(RULES) if rng.random() < 1 / 3 else None
            if rng.random() < LONG_EVENTS:  # an exhibition or a festival of one to three weeks
                length, rule = timedelta(days=rng.randrange(7, 22)), None
            specs.append({"title": f"Evenement {number}", "kind": rng.choice(("training", "meeting", "exhibition")),
                          "organiser": rng.choice(slugs), "city": rng.choice(CITIES), "start": start,
                          "end": start + length, "status": "published", "visibility": "public", "rrule": rule})
        with engine.begin() as connection:
            domain.load_events(connection, NOW, specs, ASSOCIATIONS,
                               new_id=lambda: str(uuid.UUID(int=rng.getrandbits(128))))
        if progress:
            progress(min(n, first + BATCH), n, time.monotonic() - started)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        # As autovacuum soon would (it vacuums tables that were only inserted into, too): plans for the
        # loaded sizes, and the visibility map that lets an index answer alone (a feed's ETag).
        connection.exec_driver_sql("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE")
    return time.monotonic() - started


def show_progress(done, n, seconds):
    print(f"  loaded {done:,}/{n:,} events in {seconds:,.0f} s ({done / max(seconds, 1e-9):,.0f} per second)",
          file=sys.stderr, flush=True)


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


def month_json(session, start, city=None, cursor=None):
    """One page of a month as the service answers it: read, then written as JSON."""
    page = occurrences.page(session, start, start + timedelta(days=31), city=city, cursor=cursor)
    body = json.dumps({"items": [listing.as_json(o) for o in page.items], "next": page.next, "truncated": False},
                      ensure_ascii=False)
    return page, body


def network_feed_alone(pg_url):
    """(seconds, MB, peak RSS MiB, RSS MiB before) of the network feed built by a new process that has
    loaded only the events service's code, as the service would build it."""
    from services.events.service import EventsService  # noqa: F401 - the service's code in memory, as deployed

    engine = make_engine(pg_url)
    try:
        rss_before = memory_mib("VmRSS")
        reset_peak()
        started = time.perf_counter()
        network = feeds.FeedCache(max_bytes=256 * 1024 * 1024).answer(Sessions(engine).session, NOW, "network")
        seconds = time.perf_counter() - started
        return seconds, len(network.text.encode("utf-8")) / 1e6, memory_mib("VmHWM"), rss_before
    finally:
        engine.dispose()


def memory_mib(field):
    """VmRSS or VmHWM (peak since reset_peak) of this process, in MiB (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak():
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
        clear.write("5")  # VmHWM := VmRSS (Linux >= 4.0)


def cpu_of(pids):
    """{pid: CPU seconds so far} of those of `pids` still running."""
    from tansiq.bench import cpu_seconds  # not at import time: tansiq.bench imports this module when asked

    seconds = {}
    for pid in pids:
        try:
            seconds[pid] = cpu_seconds(pid)
        except OSError:  # gone meanwhile
            continue
    return seconds


def pids_named(name):
    """The processes whose command name is `name` (PostgreSQL's backends, RabbitMQ's beam.smp)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == name:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


class CpuMeter:
    """CPU seconds spent by groups of processes between start() and stop(): the services by pid, the
    database and the broker by name (so with anything else they did meanwhile), this process too; and
    how much of the time `watched` spent on a CPU and waiting for one (/proc/<pid>/schedstat)."""

    def __init__(self, services, watched):
        self.services, self.watched = services, watched

    def _groups(self):
        return {**{name: [pid] for name, pid in self.services.items()}, "PostgreSQL": pids_named("postgres"),
                "RabbitMQ": pids_named("beam.smp"), "this bench's client": [os.getpid()]}

    def _schedstat(self):
        return [int(value) for value in Path(f"/proc/{self.watched}/schedstat").read_text().split()[:2]]

    def start(self):
        self.before = {name: cpu_of(pids) for name, pids in self._groups().items()}
        self.sched_before, self.started = self._schedstat(), time.perf_counter()

    def stop(self):
        """({group: CPU seconds}, (share of the time `watched` ran, share it waited for a CPU))."""
        wall = time.perf_counter() - self.started
        running, waiting = (now - then for now, then in zip(self._schedstat(), self.sched_before, strict=True))
        spent = {}
        for name, pids in self._groups().items():
            before = self.before.get(name, {})
            # A backend started meanwhile counts whole; one that ended meanwhile is lost (none should).
            spent[name] = sum(now - before.get(pid, 0) for pid, now in cpu_of(pids).items())
        return spent, (running / 1e9 / wall, waiting / 1e9 / wall)


def run(n, pg_url, creates=CREATES, through_api=True):
    """The rows at `n` events: `creates` timed creates (domain, then API unless not `through_api`)."""
    load_before = os.getloadavg()[0]
    engine = make_engine(pg_url)
    Base.metadata.create_all(engine)
    messaging_metadata.create_all(engine)
    db = Sessions(engine)
    rows = []
    try:
        load_seconds = load(engine, n, progress=show_progress)
        with Session(engine) as session:
            stored = session.scalar(select(func.count()).select_from(StoredOccurrence))
        rng = random.Random(1)
        months = [(NOW.replace(day=1) + timedelta(days=31 * k)).replace(day=1) for k in range(0, 12)]

        def month_page(city=None):
            with Session(engine) as session:
                return month_json(session, rng.choice(months), city=city)

        def month_all(city=None):
            start, cursor, found = rng.choice(months), None, 0
            with Session(engine) as session:
                while True:
                    page, _ = month_json(session, start, city=city, cursor=cursor)
                    found += len(page.items)
                    if page.next is None:
                        return found
                    cursor = page.next

        month_page()  # connections opened, caches warm: what a running service has
        p50, p95 = timed(month_page)
        rows.append((f"month view JSON, whole network: first page ({occurrences.PAGE_SIZE} occurrences)", ms(p50),
                     ms(p95)))
        sizes = []
        p50, p95 = timed(lambda: sizes.append(month_all()), samples=5)
        rows.append((f"month view JSON, whole network: every page (~{int(statistics.mean(sizes)):,} occurrences, "
                     f"{int(statistics.mean(sizes)) // occurrences.PAGE_SIZE + 1} pages)", ms(p50), ms(p95)))
        p50, p95 = timed(lambda: month_page("Safi"))
        rows.append(("month view JSON, one city: first page", ms(p50), ms(p95)))
        sizes = []
        p50, p95 = timed(lambda: sizes.append(month_all("Safi")), samples=5)
        rows.append((f"month view JSON, one city: every page (~{int(statistics.mean(sizes)):,} occurrences)",
                     ms(p50), ms(p95)))

        cache = feeds.FeedCache(max_bytes=256 * 1024 * 1024)
        started = time.perf_counter()
        city = cache.answer(db.session, NOW, "city", "Safi")
        city_cold = time.perf_counter() - started
        rows.append((f"city feed (.ics), built from the stored texts ({len(city.text) / 1e6:.1f} MB)", ms(city_cold),
                     "—"))
        p50, p95 = timed(lambda: cache.answer(db.session, NOW, "city", "Safi"))
        rows.append(("city feed (.ics), cached", ms(p50), ms(p95)))
        p50, p95 = timed(lambda: cache.answer(db.session, NOW, "city", "Safi", if_none_match=city.etag))
        rows.append(("city feed (.ics), conditional GET answered 304", ms(p50), ms(p95)))
        # In a process of its own, as the events service builds it: this one holds the loader's leftovers.
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as fresh:
            network_cold, size, peak, rss_before = fresh.submit(network_feed_alone, pg_url).result()
        rows.append((f"network feed (.ics), built from the stored texts ({size:.1f} MB; peak RSS of the process "
                     f"building it {peak:,.0f} MiB, {rss_before:,.0f} before)", ms(network_cold), "—"))

        with db.session() as session:
            some = session.scalar(select(Event.id).where(Event.rrule.is_(None)).limit(1))
            domain.update_event(session, NOW, some, {"title": "Evenement change"}, ASSOCIATIONS, force=True)
        started = time.perf_counter()
        rebuilt = cache.answer(db.session, NOW, "network")
        rows.append(("network feed (.ics), rebuilt after one event changed", ms(time.perf_counter() - started), "—"))
        assert "Evenement change" in rebuilt.text
        del rebuilt

        started = time.perf_counter()
        for number in range(creates):
            with db.session() as session:
                domain.create_event(session, NOW, new_event(number, "assoc-001"), ASSOCIATIONS, force=True)
        rate = creates / (time.perf_counter() - started)
        rows.append((f"create one event (domain, own unit of work, overlap checks; {creates} in a row)",
                     f"{rate:,.0f} per second", "—"))
    finally:
        engine.dispose()
    if through_api:
        rows.append(api_creates(n, creates))
    return load_seconds, stored, rows, (load_before, os.getloadavg()[0]), creates, through_api


def new_event(number, organiser):
    """The `number`th event a bench creates: one hour in Safi, among the loaded ones (overlaps found)."""
    start = (NOW + timedelta(days=number % 300)).replace(hour=10, tzinfo=None)
    return {"title": f"Nouveau {number}", "kind": "meeting", "organiser": organiser, "city": "Safi",
            "start": start, "end": start + timedelta(hours=1), "status": "published", "visibility": "public"}


def api_creates(n, creates=CREATES):
    """The row of creates through the API: a network of its own on PostgreSQL (tests/harness.py), the demo
    seeded and the same `n` events loaded into its events database, then `creates` events posted by API_CLIENTS
    clients at once, each with its own Idempotency-Key, as the demo's events manager."""
    from harness import Network  # tests/harness.py: vhost, databases, processes

    from tansiq.bench_flows import Client

    net = Network(backend="postgres")
    try:
        net.migrate()
        net.seed()
        engine = make_engine(net.env["TANSIQ_EVENTS_DB_URI"])
        try:
            load(engine, n, progress=show_progress)
        finally:
            engine.dispose()
        net.start("directory", "events", "gateway")
        client = Client(net.web, EVENTS_MANAGER)

        def create(number):
            body = new_event(number, "amal-safi")
            body["start"], body["end"] = body["start"].isoformat(), body["end"].isoformat()
            started = time.perf_counter()
            client.post("/api/events", body, headers={"Idempotency-Key": str(uuid.uuid4())})
            return time.perf_counter() - started

        warm_up = creates  # as many again: the first seconds of a network under load are slower (measured)
        with ThreadPoolExecutor(API_CLIENTS) as pool:
            # At the same concurrency first: each client's connection, the services' database connections
            # (one per worker busy at once) and statement caches, as a running network has them.
            list(pool.map(create, range(warm_up)))
            meter = CpuMeter({name: net.procs[name].pid for name in ("events", "gateway")}, net.procs["events"].pid)
            meter.start()
            started = time.perf_counter()
            latencies = sorted(pool.map(create, range(warm_up, warm_up + creates)))
            rate = creates / (time.perf_counter() - started)
            spent, (running, waiting) = meter.stop()
    finally:
        net.close()
    cpu = ", ".join(f"{name} {seconds / creates * 1000:.1f}" for name, seconds in spent.items())
    return (f"create one event through the API (HTTP to the gateway, RPC to the events service, signed-in events "
            f"manager, Idempotency-Key; {creates} by {API_CLIENTS} clients at once; each answered in p50 "
            f"{ms(statistics.median(latencies))}, p95 {ms(latencies[int(len(latencies) * 0.95) - 1])}; CPU ms per "
            f"create: {cpu}; the events service on a CPU {running:.0%} of the time and waiting for one "
            f"{waiting:.0%})", f"{rate:,.0f} per second", "—")


def section(n, load_seconds, stored, rows, load_average, creates=CREATES, through_api=True):
    lines = [
        f"## The calendar at {n:,} events (PostgreSQL)",
        "",
        f"Written by `tansiq bench --calendar-events {n}` (`make bench CALENDAR_EVENTS={n}`). {n:,} events "
        f"(a third recurring, some without an end, 1 in 1,000 lasting one to three weeks) in 12 cities, "
        f"bulk-loaded (each validated, its occurrences "
        f"and VEVENT text made as a create makes them, {BATCH} per transaction) in {load_seconds:,.0f} s "
        f"({n / load_seconds:,.0f} per second), {stored:,} stored occurrences. Timed in one process on the events "
        f"service's code (no RPC or HTTP hop), a month page including its JSON text; p50/p95 over {SAMPLES} "
        f"random months of the coming year (5 for every page). "
        + (f"The last row is through the API instead: a "
           f"network of its own on PostgreSQL (gateway, directory and events services, each its own process, "
           f"RabbitMQ between them), the demo seeded and the same {n:,} events loaded into its events database, "
           f"then {creates} events posted by {API_CLIENTS} clients at once as the demo's events manager, each "
           f"with its own Idempotency-Key, after {creates} at the same concurrency to warm up; its rate is "
           f"the {creates} creates over the time all took; beside it each process's CPU per create (user + system "
           f"from /proc; PostgreSQL and RabbitMQ by process name, so with anything else they did meanwhile) and "
           f"the share of that time the events service spent on a CPU and waiting for one (/proc/<pid>/schedstat: "
           f"when the two add up to about 100% its single process is what sets the rate) (the other "
           f"services of a deployment, notifications and the rest, not running; this bench's client on the same "
           f"cores). " if through_api else "No row through the API in this run (--no-calendar-api). ")
        + f"Load average {load_average[0]:.1f} at the start, "
        f"{load_average[1]:.1f} at the end, on {os.cpu_count()} cores (shared with other work).",
        "",
        "| operation | p50 | p95 |",
        "|---|---|---|",
        *[f"| {label} | {p50} | {p95} |" for label, p50, p95 in rows],
        "",
        f"To reproduce: `make bench CALENDAR_EVENTS={n}` (or `tansiq bench --calendar-events {n}`), with "
        "PostgreSQL at `TANSIQ_BENCH_PG_URL` (default `postgresql://postgres@127.0.0.1:5432`): a throwaway "
        "database is created, loaded (progress on standard error) and dropped. How the rows are reached: a month "
        "page is the next rows of one index in the listing's order joined to those rows' events only, written as "
        "JSON by hand; a feed joins the VEVENT texts stored with each event (`events.ics_text`), found by their "
        "span in the events table, streamed from a server-side cursor; a 304 is one small query (on PostgreSQL "
        "answered from the index on lower(city) alone, which includes the ETag's columns); a create "
        "expands no other event (its overlap check reads stored occurrences by (city, start)) and is five "
        "statements and a commit: the bounds of the stored occurrences, the clashing occurrences joined to their "
        "events' names, then one INSERT each for the event (whole: its VEVENT text and span are made before), "
        "its messages and its occurrences (an Idempotency-Key adds a read and an INSERT of `command_keys`). "
        "The network feed is built by a new process that loaded the events service's code (as the service "
        "builds it, not this bench process, which holds what the loading left); its peak RSS is that whole "
        "process's (Python, SQLAlchemy, nameko, the code, the feed). Figures on "
        "a loaded, shared machine are upper bounds.",
    ]
    return "\n".join(lines)
