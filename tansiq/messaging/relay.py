"""The outbox relay: publishes committed outbox rows in order, with confirms and `mandatory`.

Runs inside every service that has a database (a sub-extension of tansiq.db.Database).
It wakes right after a commit that added rows, and polls every second anyway, so
rows left behind by a crash (committed, never published) go out after a restart.
A row is marked sent only after the broker confirmed it; a crash in between
re-sends it, and consumers drop the duplicate through their inbox.
"""

import logging

import eventlet
from eventlet.event import Event
from nameko.extensions import SharedExtension
from sqlalchemy import select, text, update

from tansiq.envelope import utcnow
from tansiq.messaging.broker import ConfirmedPublisher, connect, declare_network
from tansiq.messaging.outbox import OUTBOX, SESSION_FLAG
from tansiq.messaging.store import PENDING_ONLY, SENT

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
BATCH = 200
BACKOFF_MAX_SECONDS = 30


def pending_batch(session, limit=BATCH):
    """The oldest pending rows, as (seq, message_id, exchange, routing_key, body) rows, not ORM objects."""
    # The condition as the partial index ix_outbox_pending states it, so both databases read that index alone.
    query = (select(OUTBOX.c.seq, OUTBOX.c.message_id, OUTBOX.c.exchange, OUTBOX.c.routing_key, OUTBOX.c.body)
             .where(text(PENDING_ONLY)).order_by(OUTBOX.c.seq).limit(limit))
    if session.bind.dialect.name == "postgresql":
        # Several replicas may relay the same outbox: each row goes to one of them.
        query = query.with_for_update(skip_locked=True)
    return session.execute(query).all()


def _mark(session, seqs, **values):
    """One UPDATE for all of `seqs`: each row's attempt counted, and `values` set."""
    if seqs:
        session.execute(update(OUTBOX).where(OUTBOX.c.seq.in_(seqs)).values(attempts=OUTBOX.c.attempts + 1, **values))


def relay_once(engine, publisher):
    """Publish what is pending, a batch at a time with confirms in flight; returns how many were sent.

    Rows are marked sent only once confirmed. A crash between the confirms and the commit
    re-sends the batch, which consumers drop through their inbox. A row that was not confirmed
    stays pending (with its error) and goes out again on the next pass.
    """
    from tansiq.db import session_scope  # not at import time: tansiq.db's Database brings this relay along

    with session_scope(engine) as session:
        rows = pending_batch(session)
        if not rows:
            return 0
        try:
            confirmed = set(publisher.publish_many(
                (row.body.encode("utf-8"), row.exchange, row.routing_key, row.message_id) for row in rows))
        except Exception as exc:  # noqa: BLE001 - recorded on the rows, retried later
            _mark(session, [row.seq for row in rows], last_error=str(exc)[:1000])
            session.commit()
            raise
        # A referral to a partner carries shared personal fields: no copy of the body is kept once sent.
        _mark(session, [row.seq for row in rows if row.message_id in confirmed], state=SENT, sent_at=utcnow(),
              last_error=None, body="")
        _mark(session, [row.seq for row in rows if row.message_id not in confirmed],
              last_error="not confirmed by the broker (nacked, returned or timed out)")
        unconfirmed = len(rows) - len(confirmed)
    if unconfirmed:  # raised after the commit: what was confirmed stays marked sent
        raise RuntimeError(f"{unconfirmed} of {len(rows)} message(s) not confirmed; retrying")
    return len(confirmed)


class OutboxRelay(SharedExtension):
    engine = None  # set by the Database provider that owns this relay (its setup may run first)

    def setup(self):
        self.wakeup = Event()
        self.publisher = ConfirmedPublisher(self.container.config["AMQP_URI"])
        self._running = False
        from tansiq.messaging.consumer import retry_delays

        # The whole topology before the first publish (setup ends before anything starts): a
        # consumer not started yet still gets its messages.
        with connect(self.container.config["AMQP_URI"]) as connection:
            declare_network(connection, retry_delays(self.container.config))

    def wake_if_outbox_written(self, session):
        """After-commit hook of the service's sessions: publish right away what was just committed."""
        if session.info.pop(SESSION_FLAG, False) and not self.wakeup.ready():
            self.wakeup.send(True)

    def start(self):
        self._running = True
        self.container.spawn_managed_thread(self._run, identifier="outbox-relay")

    def _run(self):
        backoff = POLL_SECONDS
        while self._running:
            try:
                count = relay_once(self.engine, self.publisher)
                backoff = POLL_SECONDS
                if count:
                    log.debug("relayed %d message(s)", count)
                if count >= BATCH:
                    continue  # a full batch: there may be more
                # Fewer: nothing else was pending. Rows committed meanwhile have woken it, so the wait
                # below returns at once for them, without an empty pass after every batch.
            except Exception as exc:  # noqa: BLE001 - broker or DB down: back off and retry
                log.warning("outbox relay: %s (retrying in %.0fs)", exc, backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
            with eventlet.Timeout(backoff, False):
                self.wakeup.wait()
            if self.wakeup.ready():
                self.wakeup.reset()

    def stop(self):
        self._running = False
        if not self.wakeup.ready():
            self.wakeup.send(False)
        self.publisher.close()

    def kill(self):
        self.stop()
