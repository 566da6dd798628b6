"""A PostgreSQL connection that sat in the pool is pinged before use; one in steady use is not.

On the real PostgreSQL: the server side of pooled connections is ended (pg_terminate_backend, as a
restart of PostgreSQL or a firewall cutting idle connections would) and the next unit of work must
still succeed; and a busy service must not pay a round trip per unit of work for it.
"""

import time

import psycopg2
import pytest
from fixtures.databases import PG_ADMIN, throwaway_engine
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from tansiq.db import make_engine, session_scope

pytestmark = pytest.mark.postgres


@pytest.fixture
def database(tmp_path):
    with throwaway_engine("postgres", tmp_path, lambda engine: None, "pool") as engine:
        yield engine.url


def backend_pid(engine):
    with session_scope(engine) as session:
        return session.execute(text("SELECT pg_backend_pid()")).scalar_one()


def terminate(pid):
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    try:
        admin.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        admin.close()


def engine_pinging_after(url, idle_seconds):
    return make_engine(url.render_as_string(hide_password=False), idle_before_ping=idle_seconds, pool_size=1,
                       max_overflow=0)


def counting_pings(engine):
    pings = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection):
        pings.append(1)
        return ping(dbapi_connection)

    engine.dialect.do_ping = counted
    return pings


def test_a_connection_ended_while_idle_in_the_pool_is_replaced_before_the_next_unit_of_work(database):
    engine = engine_pinging_after(database, idle_seconds=0.2)
    try:
        first = backend_pid(engine)
        terminate(first)
        time.sleep(0.3)
        assert backend_pid(engine) != first  # pinged, found dead, replaced: the unit of work never saw it
    finally:
        engine.dispose()


def test_without_the_ping_that_unit_of_work_would_have_failed(database):
    """The test above can fail: the same dead connection, not yet idle long enough to be pinged."""
    engine = engine_pinging_after(database, idle_seconds=3600)
    try:
        terminate(backend_pid(engine))
        time.sleep(0.3)
        with pytest.raises(OperationalError):
            backend_pid(engine)
        # SQLAlchemy discarded the pool on that failure: the next unit of work has a new connection.
        assert backend_pid(engine)
    finally:
        engine.dispose()


def test_a_connection_back_in_the_pool_moments_ago_is_used_without_a_ping(database):
    engine = engine_pinging_after(database, idle_seconds=5)
    pings = counting_pings(engine)
    try:
        for _ in range(20):
            backend_pid(engine)
        assert pings == []
    finally:
        engine.dispose()


def test_the_services_engines_ping_a_connection_idle_longer_than_a_second(database):
    engine = make_engine(database.render_as_string(hide_password=False))
    pings = counting_pings(engine)
    try:
        backend_pid(engine)
        backend_pid(engine)
        assert pings == []
        time.sleep(1.1)
        backend_pid(engine)
        assert pings == [1]
    finally:
        engine.dispose()
