"""The partner's local SQLite file: a store-and-forward outbox and the ids already processed.

Messages are kept in the order they were sent (`seq`) until the broker confirms
them, so a partner offline for hours loses nothing and sends in order when back.
"""

import sqlite3
from contextlib import closing, contextmanager
from datetime import datetime, timezone

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',  -- pending | confirmed | returned
    done_at TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (status, seq);
CREATE TABLE IF NOT EXISTS processed (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    processed_at TEXT NOT NULL
);
"""


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class LocalStore:
    def __init__(self, path):
        self.path = str(path)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self):
        # One short-lived connection per operation: safe to share the store between threads.
        with closing(sqlite3.connect(self.path, timeout=30)) as db:
            with db:  # commit, or roll back on error
                yield db

    def add(self, envelope, routing_key):
        with self._connect() as db:
            db.execute("INSERT INTO outbox (id, type, routing_key, body, created_at) VALUES (?, ?, ?, ?, ?)",
                       (envelope.id, envelope.type, routing_key, envelope.to_bytes(), _now()))

    def pending(self, limit=None):
        """[(seq, id, routing_key, body)] not yet confirmed by the broker, oldest first."""
        sql = "SELECT seq, id, routing_key, body FROM outbox WHERE status = 'pending' ORDER BY seq"
        with self._connect() as db:
            return db.execute(sql + (f" LIMIT {int(limit)}" if limit else "")).fetchall()

    def pending_count(self):
        with self._connect() as db:
            return db.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0]

    def mark(self, seqs, status):
        with self._connect() as db:
            db.executemany("UPDATE outbox SET status = ?, done_at = ? WHERE seq = ? AND status = 'pending'",
                           [(status, _now(), seq) for seq in seqs])

    def returned(self):
        """Messages the broker could not route (mandatory): kept for the operator, never resent."""
        with self._connect() as db:
            return db.execute("SELECT id, type, routing_key FROM outbox WHERE status = 'returned' "
                              "ORDER BY seq").fetchall()

    def seen(self, message_id):
        with self._connect() as db:
            return db.execute("SELECT 1 FROM processed WHERE id = ?", (message_id,)).fetchone() is not None

    def record_processed(self, message_id, type_):
        with self._connect() as db:
            db.execute("INSERT OR IGNORE INTO processed (id, type, processed_at) VALUES (?, ?, ?)",
                       (message_id, type_, _now()))
