"""First-page latency of the paged lists at size: 10,000 referrals, 1,000,000 inbox items, 10,000 beneficiaries.

    .venv/bin/python -m tansiq.bench_lists [--notifications 1000000] [--referrals 10000] [--runs 200]

(also part of `tansiq bench`). Fills a throwaway SQLite file and a throwaway PostgreSQL database
(127.0.0.1:5432, user postgres) with bulk inserts (not timed), then times the domain call each RPC
makes for a page (query, and for referrals the per-item view and schema dump), first page and a
page from a cursor, and the unread count, and prints a Markdown table (p50/p95/max in ms).
Everything is dropped at the end.
"""

import argparse
import csv
import io
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
from sqlalchemy import insert
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the services next to tansiq/

from services.intake import domain as intake  # noqa: E402
from services.intake.models import Base as IntakeBase  # noqa: E402
from services.intake.models import Beneficiary
from services.notifications import domain as notifications  # noqa: E402
from services.notifications.models import Base as NotificationsBase  # noqa: E402
from services.referrals import domain as referrals  # noqa: E402
from services.referrals.models import Base as ReferralsBase  # noqa: E402
from services.referrals.models import Referral
from services.referrals.schemas import ReferralSchema  # noqa: E402
from tansiq.contracts.actor import Actor  # noqa: E402
from tansiq.crypto import KeyRing  # noqa: E402
from tansiq.db import make_engine  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
STAFF = "s-bench"
HOME, OTHER = "amal-safi", "wafae-marrakech"


INBOX_COLUMNS = ("staff_id", "association", "kind", "urgency", "subject_key", "subject_params", "link",
                 "source_message_id", "created_at", "read_at")


def inbox_rows(count):
    """Half of them one staff member's, one in ten unread; times as both databases store them (UTC)."""
    for n in range(count):
        created = T0 + timedelta(seconds=n)
        read = None if n % 10 == 0 else created + timedelta(days=1)
        yield (STAFF if n % 2 == 0 else f"s-{n % 50}", HOME, "referral.sent", "normal", "referral.sent", "{}",
               "/referrals", uuid.uuid4().hex, created, read)


def load_inbox(engine, count, say=print):
    """Bulk load through the driver (COPY on PostgreSQL, executemany on SQLite): a million rows through
    the ORM took most of the bench's time."""
    chunk = 100_000
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        rows = inbox_rows(count)
        for start in range(0, count, chunk):
            part = [next(rows) for _ in range(min(chunk, count - start))]
            if engine.dialect.name == "postgresql":
                text = io.StringIO()
                writer = csv.writer(text)
                for row in part:
                    writer.writerow([*row[:8], row[8].isoformat(), row[9].isoformat() if row[9] else None])
                text.seek(0)
                cursor.copy_expert(f"COPY inbox_items ({', '.join(INBOX_COLUMNS)}) FROM STDIN WITH (FORMAT csv)", text)
            else:  # SQLAlchemy's SQLite DateTime text, naive UTC
                cursor.executemany(
                    f"INSERT INTO inbox_items ({', '.join(INBOX_COLUMNS)}) VALUES ({', '.join('?' * 10)})",
                    [(*row[:8], _sqlite_time(row[8]), _sqlite_time(row[9])) for row in part])
            raw.commit()
            if start + chunk < count:
                say(f"    … {start + chunk:,}/{count:,} inbox items loaded")
    finally:
        raw.close()


def _sqlite_time(value):
    return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds") if value else None


def fill(engine, args, say=print):
    for base in (NotificationsBase, ReferralsBase, IntakeBase):
        base.metadata.create_all(engine)
    load_inbox(engine, args.notifications, say)
    with Session(engine) as session:  # the counters record_many keeps, for rows loaded around it
        notifications.recount_unread(session)
        session.commit()
    with Session(engine) as session:
        session.execute(insert(Referral), [
            {"id": f"r-{n:06d}", "beneficiary_id": f"b-{n}", "from_association": HOME if n % 2 else OTHER,
             "to_association": OTHER if n % 2 else HOME, "service_category": "legal_orientation",
             "urgency": "normal", "state": "sent", "created_at": T0 + timedelta(seconds=n),
             "updated_at": T0 + timedelta(seconds=n), "ack_due": T0 + timedelta(days=2)}
            for n in range(args.referrals * 2)])  # half of them received by HOME
        session.execute(insert(Beneficiary), [
            {"id": f"b-{n:06d}", "association": HOME, "kind": "survivor", "city": "Safi", "registered_by": STAFF,
             "registered_at": T0 + timedelta(seconds=n)} for n in range(args.referrals)])
        session.commit()


def timed(engine, call, runs):
    samples = []
    for _ in range(runs):
        with Session(engine) as session:
            started = time.perf_counter()
            call(session)
            samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1], samples[-1]


def rows(engine, args):
    keyring = KeyRing(os.urandom(32))
    reader = Actor(association=HOME, id=STAFF, roles=frozenset({"case_worker"}))
    now = T0 + timedelta(days=400)

    def inbox_first(session):
        return notifications.inbox_page(session, STAFF, limit=50)

    with Session(engine) as session:
        inbox_cursor = notifications.inbox_page(session, STAFF, limit=50)[1]
        referral_cursor = referrals.referrals_page(session, HOME, "received", limit=50)[1]

    def referrals_page(cursor):
        def call(session):
            page, _ = referrals.referrals_page(session, HOME, "received", limit=50, cursor=cursor)
            return ReferralSchema().dump([referrals.view(r, reader, now, keyring) for r in page], many=True)
        return call

    def referrals_unpaged(session):
        found = referrals.list_referrals(session, now, HOME, "received")
        return ReferralSchema().dump([referrals.view(r, reader, now, keyring) for r in found[:50]], many=True)

    def beneficiaries_first(session):
        return intake.list_beneficiaries(session, keyring, reader, limit=50)

    yield (f"inbox, first page of 50 ({args.notifications // 2:,} hers of {args.notifications:,})",
           timed(engine, inbox_first, args.runs))
    yield ("inbox, a page from a cursor",
           timed(engine, lambda s: notifications.inbox_page(s, STAFF, limit=50, cursor=inbox_cursor), args.runs))
    yield (f"referrals received, first page of 50 ({args.referrals:,} received), with views",
           timed(engine, referrals_page(None), args.runs))
    yield ("referrals received, a page from a cursor, with views", timed(engine, referrals_page(referral_cursor),
                                                                          args.runs))
    yield (f"inbox, unread count ({args.notifications // 20:,} of hers unread)",
           timed(engine, lambda s: notifications.unread_count(s, STAFF), args.runs))
    yield (f"beneficiaries, first page of 50 ({args.referrals:,})", timed(engine, beneficiaries_first, args.runs))
    yield (f"before: referrals received unpaged (all {args.referrals:,} read and sorted, 50 viewed)",
           timed(engine, referrals_unpaged, max(3, args.runs // 20)))


def measure(args, pg_url=None, say=print):
    """[(database, list, p50, p95, max)] on SQLite, then on PostgreSQL at `pg_url` (an empty database) if given."""
    found = []
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/lists.sqlite3")
        say(f"  lists on SQLite: loading {args.notifications:,} inbox items, {args.referrals * 2:,} referrals …")
        fill(engine, args, say)
        for name, (p50, p95, worst) in rows(engine, args):
            found.append(("SQLite", name, p50, p95, worst))
            say(f"    SQLite {name}: p95 {p95:.1f} ms")
        engine.dispose()
    if pg_url:
        engine = make_engine(pg_url)
        say(f"  lists on PostgreSQL: loading {args.notifications:,} inbox items, {args.referrals * 2:,} referrals …")
        fill(engine, args, say)
        # What autovacuum does to a table after a million inserts: statistics, and the visibility map
        # that lets a count read the index alone.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
        for name, (p50, p95, worst) in rows(engine, args):
            found.append(("PostgreSQL", name, p50, p95, worst))
            say(f"    PostgreSQL {name}: p95 {p95:.1f} ms")
        engine.dispose()
    return found


def table(found):
    lines = ["| database | list | p50 ms | p95 ms | max ms |", "|---|---|---:|---:|---:|"]
    lines += [f"| {database} | {name} | {p50:.1f} | {p95:.1f} | {worst:.1f} |"
              for database, name, p50, p95, worst in found]
    return "\n".join(lines)


def arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=1_000_000)
    parser.add_argument("--referrals", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=200)
    return parser.parse_args(argv)


def main():
    args = arguments()
    database = f"tansiq_bench_lists_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{database}"')
    try:
        found = measure(args, f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}", say=lambda _: None)
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()
    print(table(found))


if __name__ == "__main__":
    main()
