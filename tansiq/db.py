"""SQLAlchemy 2 engines and sessions, and the nameko DependencyProvider that hands them to workers.

The same code runs on SQLite (embedded default, one file per service under var/)
and PostgreSQL (psycopg2 made green with psycogreen, so a slow query does not
starve the AMQP heartbeat under eventlet).
"""

import hashlib
import logging
import threading
import time
from contextlib import contextmanager, nullcontext
from datetime import timezone
from pathlib import Path

from nameko.extensions import DependencyProvider
from sqlalchemy import DateTime, TypeDecorator, create_engine, event, insert, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session

DB_URI_KEY = "DB_URI"
# A pooled PostgreSQL connection that sat unused this long is pinged before it is handed out (see
# ping_when_idle); one in steady use is not.
IDLE_BEFORE_PING_SECONDS = 1.0

log = logging.getLogger(__name__)


class UTCDateTime(TypeDecorator):
    """An aware UTC datetime on every backend (SQLite drops the offset on the way back).

    Store the IANA zone the time was entered in next to it (Africa/Casablanca changes offset).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

_AFTER_COMMIT = "tansiq_after_commit"


def after_commit(session, hook):
    """Run `hook(session)` once `session`'s current transaction commits; never if it rolls back.

    Through the session's own events, so work registered by one unit of work never runs for another.
    """
    hooks = session.info.get(_AFTER_COMMIT)
    if hooks is None:
        hooks = session.info[_AFTER_COMMIT] = []
        event.listen(session, "after_commit", _run_after_commit)
        event.listen(session, "after_soft_rollback", _drop_after_commit)
    hooks.append(hook)


def _run_after_commit(session):
    hooks, session.info[_AFTER_COMMIT] = session.info.get(_AFTER_COMMIT) or [], []  # a new transaction may follow
    for hook in hooks:
        try:
            hook(session)
        except Exception:  # noqa: BLE001 - the data is committed: a failing hook must not make it look failed
            log.exception("after-commit hook %r failed", hook)


def _drop_after_commit(session, previous_transaction):
    if previous_transaction.parent is None:  # the whole transaction, not a savepoint inside it
        session.info[_AFTER_COMMIT] = []


def make_green_if_needed():
    """psycopg2 blocks the eventlet hub unless patched; patch once when eventlet is in charge."""
    try:
        import eventlet.patcher
    except ImportError:  # pragma: no cover - eventlet is a dependency
        return
    if eventlet.patcher.is_monkey_patched("socket"):
        from psycogreen.eventlet import patch_psycopg

        patch_psycopg()


PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def make_private(path):
    """Create the SQLite file readable by its owner only (0600), or tighten an existing one.

    SQLite gives its -wal and -shm files the database file's mode, so they follow.
    """
    path = Path(path)
    path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    path.touch(mode=PRIVATE_FILE, exist_ok=True)
    for each in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        if each.exists() and each.stat().st_mode & 0o777 != PRIVATE_FILE:
            each.chmod(PRIVATE_FILE)


def make_engine(url, idle_before_ping=IDLE_BEFORE_PING_SECONDS, **kwargs):
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            make_private(parsed.database)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        # SQLite waits for a lock inside C, which freezes the whole eventlet hub: a worker holding a
        # write lock while it awaits an RPC reply would then never get it. One unit of work at a
        # time per process instead; waiting on this (green, once patched) lock lets others run.
        engine.tansiq_lock = threading.RLock()

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":  # SQLAlchemy 2.1 would pick psycopg 3; ours is psycopg2 + psycogreen
            url = parsed.set(drivername="postgresql+psycopg2")
        make_green_if_needed()
        engine = create_engine(url, **kwargs)
        ping_when_idle(engine, idle_before_ping)
        return engine
    return create_engine(url, **kwargs)


def ping_when_idle(engine, idle_seconds):
    """SQLAlchemy's pool_pre_ping, for connections that sat in the pool only.

    pool_pre_ping sends a SELECT 1 on every checkout: a round trip, and about 5% of a busy service's CPU,
    on every unit of work. What it protects against (PostgreSQL restarted, a connection cut while idle)
    happens to a connection while it waits in the pool; one back in the pool for a few milliseconds is
    used as it is, and if the server went away meanwhile the failing statement makes SQLAlchemy discard
    every connection of the pool, so only units of work already under way fail."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection, record):
        record.info["tansiq_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy):
        since = record.info.pop("tansiq_idle_since", None)
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool throws this connection away and checks out another (a new one if need be).
            raise DisconnectionError(f"pooled connection found dead after {idle_seconds:g} s idle") from exc


def insert_many(session, table, rows):
    """One Core INSERT of `rows` (dicts) into `table` (a Table or a model), in the session's transaction:
    no ORM objects and no flush on a hot path; nothing when there are no rows."""
    if rows:
        # A model's Table, not the model: SQLAlchemy's ORM bulk path costs more and adds nothing here.
        session.execute(insert(getattr(table, "__table__", table)), rows)


def insert_if_absent(session, table, values):
    """INSERT `values` into `table` (a Table or a model) unless a row with the same key is there: writers
    making the same first row at the same moment do not end in a unique-key failure. On PostgreSQL the
    INSERT waits for a concurrent one to commit, so a SELECT after it sees the row that stands."""
    insert_for = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert_for(getattr(table, "__table__", table)).values(**values).on_conflict_do_nothing())


def hold(session, name):
    """Units of work holding the same `name` take turns, from this call until they end: on PostgreSQL a
    transaction-level advisory lock (no row needs to exist yet), on SQLite nothing, since a process's units of
    work already take turns there (session_scope)."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


@contextmanager
def session_scope(engine, after_commit_hooks=()):
    """One unit of work: commit on success, roll back on error, always close.

    `after_commit_hooks` run (with the session) only if the unit of work commits."""
    lock = getattr(engine, "tansiq_lock", None) or nullcontext()
    with lock:
        session = Session(engine, expire_on_commit=False)
        for hook in after_commit_hooks:
            after_commit(session, hook)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


class Sessions:
    """What `self.db` is inside a worker: units of work on the service's engine.
    Tests hand the same object to nameko's worker_factory."""

    def __init__(self, engine):
        self.engine = engine
        self.after_commit_hooks = []

    def on_commit(self, hook):
        """Run `hook(session)` after each unit of work of these sessions that commits."""
        self.after_commit_hooks.append(hook)

    def session(self):
        return session_scope(self.engine, self.after_commit_hooks)


def pool_for(container):
    """A PostgreSQL pool as large as the service's workers (and its relay and janitor): with SQLAlchemy's
    default of 5, the 6th concurrent unit of work opened a new connection (a server process forked) and
    closed it after one use."""
    if make_url(container.config[DB_URI_KEY]).get_backend_name() != "postgresql":
        return {}
    return {"pool_size": int(container.config.get("max_workers") or 10) + 2, "max_overflow": 10}


class Database(DependencyProvider):
    """nameko dependency: `self.db.session()` is a unit of work on the service's own database.

    It brings the outbox relay along: a service that has a database publishes its outbox; and the
    janitor that forgets expired idempotency keys.
    """

    from tansiq.commands import CommandKeyJanitor
    from tansiq.messaging.relay import OutboxRelay

    relay = OutboxRelay()
    janitor = CommandKeyJanitor()  # forgets expired idempotency keys (tansiq.commands)

    def setup(self):
        self.engine = make_engine(self.container.config[DB_URI_KEY], **pool_for(self.container))
        self.relay.engine = self.engine
        self.janitor.engine = self.engine
        self.sessions = Sessions(self.engine)
        self.sessions.on_commit(self.relay.wake_if_outbox_written)

    def stop(self):
        self.engine.dispose()

    def kill(self):
        self.engine.dispose()

    def get_dependency(self, worker_ctx):
        return self.sessions
