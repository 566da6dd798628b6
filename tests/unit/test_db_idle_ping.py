"""PostgreSQL connections are pinged before use only after sitting idle in the pool (tansiq.db._ping_when_idle):
a dead idle connection is replaced unseen; a dead one used a moment ago fails one unit of work, then the pool
reconnects. Its session is terminated on the server, as a restart or an administrator would."""

import uuid

import faults
import pytest
from harness import create_pg_database, drop_pg_database
from sqlalchemy import exc, text

from tansiq import db

pytestmark = pytest.mark.postgres


@pytest.fixture
def database():
    name = f"tansiq_idle_ping_{uuid.uuid4().hex[:10]}"
    url = create_pg_database(name)
    yield name, url
    drop_pg_database(name)


def answer(engine):
    with db.session_scope(engine) as session:
        return session.execute(text("SELECT 41 + 1")).scalar()


def test_a_connection_idle_long_enough_is_pinged_and_replaced_if_dead(database, monkeypatch):
    name, url = database
    engine = db.make_engine(url, pool_size=1, max_overflow=0)
    try:
        assert answer(engine) == 42
        assert faults.kill_database_connections([name]) == 1
        monkeypatch.setattr(db, "IDLE_BEFORE_PING_S", 0.0)  # every connection counts as idle
        assert answer(engine) == 42  # the ping found it dead: a new connection, no error
    finally:
        engine.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged(database, monkeypatch):
    name, url = database
    monkeypatch.setattr(db, "IDLE_BEFORE_PING_S", 3600.0)  # never idle long enough within the test
    engine = db.make_engine(url, pool_size=1, max_overflow=0)
    try:
        assert answer(engine) == 42  # a new connection is pinged once, then goes back to the pool
        assert faults.kill_database_connections([name]) == 1
        with pytest.raises(exc.OperationalError):
            answer(engine)  # no ping: the dead connection is used, this unit of work fails
        assert answer(engine) == 42  # and the pool has reconnected
    finally:
        engine.dispose()
