"""After-commit work (e.g. waking the outbox relay) runs only for a unit of work that committed."""

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from tansiq.db import Sessions, after_commit, make_engine, pool_for, session_scope
from tansiq.envelope import Envelope
from tansiq.messaging import outbox


@pytest.fixture
def engine():
    engine = make_engine("sqlite://")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
    yield engine
    engine.dispose()


def test_work_of_a_transaction_that_rolls_back_never_runs(engine):
    ran = []
    with pytest.raises(RuntimeError):
        with session_scope(engine) as session:
            session.execute(text("INSERT INTO t VALUES (1)"))
            after_commit(session, lambda s: ran.append("rolled back"))
            raise RuntimeError("refused")
    with session_scope(engine) as session:  # a later unit of work commits: still nothing from the first
        session.execute(text("INSERT INTO t VALUES (2)"))
    assert ran == []


def test_work_runs_once_after_its_commit(engine):
    ran = []
    with session_scope(engine) as session:
        session.execute(text("INSERT INTO t VALUES (1)"))
        after_commit(session, lambda s: ran.append("committed"))
        assert ran == []  # not before the commit
    assert ran == ["committed"]


def test_a_session_that_goes_on_after_a_rollback_does_not_run_the_dropped_work(engine):
    ran = []
    with Session(engine) as session:
        session.execute(text("INSERT INTO t VALUES (1)"))
        after_commit(session, lambda s: ran.append("first"))
        session.rollback()
        session.execute(text("INSERT INTO t VALUES (2)"))
        after_commit(session, lambda s: ran.append("second"))
        session.commit()
        session.execute(text("INSERT INTO t VALUES (3)"))
        session.commit()  # the second transaction's work ran once, not again
    assert ran == ["second"]


def test_a_savepoint_rolled_back_keeps_the_outer_transactions_work(engine):
    ran = []
    with session_scope(engine) as session:
        after_commit(session, lambda s: ran.append("outer"))
        with pytest.raises(ValueError):
            with session.begin_nested():
                session.execute(text("INSERT INTO t VALUES (1)"))
                raise ValueError("duplicate")
        session.execute(text("INSERT INTO t VALUES (2)"))
    assert ran == ["outer"]


def test_sessions_hooks_see_what_the_unit_of_work_wrote_and_only_on_commit(engine):
    """What the outbox relay relies on: its hook learns that outbox rows were committed."""
    from tansiq.messaging.store import messaging_metadata

    messaging_metadata.create_all(engine)
    sessions, woken = Sessions(engine), []
    sessions.on_commit(lambda session: woken.append(session.info.pop(outbox.SESSION_FLAG, False)))
    with pytest.raises(RuntimeError):
        with sessions.session() as session:
            outbox.add(session, Envelope(type="test.rolled_back.v1", source="test", data={}))
            raise RuntimeError("refused")
    assert woken == []
    with sessions.session() as session:
        outbox.add(session, Envelope(type="test.committed.v1", source="test", data={}))
    assert woken == [True]


def test_a_failing_hook_does_not_turn_a_commit_into_an_error(engine):
    ran = []

    def broken(session):
        raise RuntimeError("relay not ready")

    with session_scope(engine) as session:
        session.execute(text("INSERT INTO t VALUES (1)"))
        after_commit(session, broken)
        after_commit(session, lambda s: ran.append("next"))
    assert ran == ["next"]
    with session_scope(engine) as session:
        assert session.execute(text("SELECT count(*) FROM t")).scalar() == 1


def test_a_postgresql_pool_holds_a_connection_for_each_worker_and_sqlite_keeps_its_own():
    """With SQLAlchemy's 5, the 6th of 10 concurrent units of work opened a connection (a server process)
    and closed it after use, on every request at load."""
    from types import SimpleNamespace

    def container(url, **config):
        return SimpleNamespace(config={"DB_URI": url, **config})

    url = "postgresql://postgres@127.0.0.1:5432/nowhere"  # not connected to: the pool is only sized
    assert pool_for(container(url, max_workers=10)) == {"pool_size": 12, "max_overflow": 10}
    assert pool_for(container(url)) == {"pool_size": 12, "max_overflow": 10}  # nameko's default of 10 workers
    engine = make_engine(url, **pool_for(container(url, max_workers=20)))
    assert engine.pool.size() == 22
    engine.dispose()
    assert pool_for(container("sqlite:///var/x.sqlite3", max_workers=10)) == {}
