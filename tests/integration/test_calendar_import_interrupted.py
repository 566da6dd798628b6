"""An import whose process dies does not stay "running" forever: the events service is SIGKILLed in
the middle of a real import, and once it is back the job is failed with the reason its association
sees; importing the same calendar again finishes it without a duplicate (imports are idempotent on
UID)."""

import signal
import time

import pytest
from fixtures.events import daily_calendar
from harness import eventually, postgres_available
from sqlalchemy import func, select

from services.events import imports
from services.events.models import Event, ImportJob
from tansiq import config
from tansiq.db import make_engine, session_scope

COORDINATOR = {"id": "s-safi-2", "association": "amal-safi", "roles": ["coordinator"], "language": "fr",
               "name": "Hanane Benali"}
SERIES = 500  # 5 batches: far from done when the first one is committed
STALE_AFTER_S = 2


IMPORTED = Event.uid.like("%@amal-safi.import.tansiq.ma")  # not the demo's own events


@pytest.mark.timeout(600)  # three starts of the events service and two imports, on a shared machine
def test_an_import_killed_midway_is_failed_with_its_reason_then_finished_by_importing_again(network_factory):
    network = network_factory(backend="postgres" if postgres_available() else "sqlite")
    network.migrate()
    network.seed()
    network.start("directory", "events")
    body = {"association": "amal-safi", "ics": daily_calendar(SERIES, "interrupted"), "name": "agenda.ics"}

    def status(job_id):
        with network.rpc() as rpc:
            return rpc.events.import_status(job_id, actor=network.assertion(COORDINATOR, "events"))

    with network.rpc() as rpc:
        job = rpc.events.start_import(body, actor=network.assertion(COORDINATOR, "events"))
    eventually(lambda: status(job["id"])["processed"] >= imports.BATCH, timeout=120, message="no batch")
    network.kill("events", signal.SIGKILL)

    engine = make_engine(config.load("events", environ=network.env)["DB_URI"])
    try:
        with session_scope(engine) as session:
            left = session.get(ImportJob, job["id"])
            assert left.status == "running" and 0 < left.processed < SERIES  # what the crash left behind
            committed = session.scalar(select(func.count()).select_from(Event).where(IMPORTED))
        assert committed == left.processed  # a batch is one unit of work: all of it or none

        time.sleep(STALE_AFTER_S)  # its heartbeat is now older than the limit the restarted service uses
        network.env["TANSIQ_IMPORT_STALE_AFTER_S"] = str(STALE_AFTER_S)
        network.start("events")
        eventually(lambda: status(job["id"])["status"] == "failed", timeout=60, message="still running")
        report = status(job["id"])
        assert report["message"] == imports.INTERRUPTED and report["processed"] == left.processed

        # Importing the same calendar again (the usual limit again) finishes it, duplicating nothing.
        network.kill("events", signal.SIGTERM)
        del network.env["TANSIQ_IMPORT_STALE_AFTER_S"]
        network.start("events")
        with network.rpc() as rpc:
            again = rpc.events.start_import(body, actor=network.assertion(COORDINATOR, "events"))
        eventually(lambda: status(again["id"])["status"] == "done", timeout=300, message="re-import not done")
        report = status(again["id"])
        assert (report["created"], report["unchanged"]) == (SERIES - left.processed, left.processed)
        with session_scope(engine) as session:
            assert session.scalar(select(func.count()).select_from(Event).where(IMPORTED)) == SERIES
    finally:
        engine.dispose()
