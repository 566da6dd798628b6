"""Cursor paging (tansiq.paging) of real lists on a real database: SQLite file, and PostgreSQL when marked."""

import uuid
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest
from sqlalchemy.orm import Session

from services.notifications import domain as notifications
from services.notifications.models import Base as NotificationsBase, InboxItem
from tansiq import paging
from tansiq.db import make_engine
from tansiq.errors import DomainError

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'paging.sqlite3'}")
        NotificationsBase.metadata.create_all(engine)
        yield engine
        engine.dispose()
        return
    name = f"tansiq_paging_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        engine = make_engine(f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}")
        NotificationsBase.metadata.create_all(engine)
        yield engine
        engine.dispose()
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def session(engine):
    with Session(engine, expire_on_commit=False) as session:
        yield session


def add_items(session, staff_id, times):
    """Inbox items at these times (several share a time: the id decides between them)."""
    items = [InboxItem(staff_id=staff_id, association="amal-safi", kind="referral_received", urgency="normal",
                       subject_key="referral_received", subject_params={}, link="",
                       source_message_id=uuid.uuid4().hex, created_at=moment) for moment in times]
    session.add_all(items)
    session.commit()
    return [item.id for item in items]


def test_pages_walk_the_whole_inbox_once_while_items_arrive(session):
    existing = add_items(session, "s-1", [T0 + timedelta(minutes=n // 3) for n in range(47)])  # ties of 3
    add_items(session, "s-2", [T0] * 5)  # someone else's: never in her pages
    seen, cursor, pages = [], None, 0
    while True:
        items, cursor = notifications.inbox_page(session, "s-1", limit=10, cursor=cursor)
        seen += [item.id for item in items]
        pages += 1
        # New items keep arriving between pages, newer than anything already listed.
        add_items(session, "s-1", [T0 + timedelta(days=1, minutes=pages)] * 2)
        if cursor is None:
            break
    assert pages == 5
    assert len(seen) == len(set(seen)) == 47
    assert set(seen) == set(existing)
    rows = {item.id: item for item in session.query(InboxItem).filter(InboxItem.id.in_(seen))}
    keys = [(rows[i].created_at, rows[i].id) for i in seen]
    assert keys == sorted(keys, reverse=True)  # newest first, ties by id


def test_the_last_page_says_there_is_no_next(session):
    add_items(session, "s-1", [T0] * 4)
    items, cursor = notifications.inbox_page(session, "s-1", limit=4)
    assert len(items) == 4 and cursor is None  # exactly full: no empty page to ask for
    assert notifications.inbox_page(session, "s-2") == ([], None)


@pytest.mark.parametrize("limit", [0, -1, paging.MAX_LIMIT + 1, "ten", 10**9])
def test_a_limit_outside_the_bounds_is_refused_not_cut(session, limit):
    with pytest.raises(DomainError) as refused:
        notifications.inbox_page(session, "s-1", limit=limit)
    assert refused.value.code == "invalid_request"
    assert notifications.inbox_page(session, "s-1", limit=paging.MAX_LIMIT) == ([], None)


def test_a_cursor_from_another_list_is_refused(session):
    add_items(session, "s-1", [T0 + timedelta(minutes=n) for n in range(3)])
    add_items(session, "s-2", [T0 + timedelta(minutes=n) for n in range(3)])
    _, cursor = notifications.inbox_page(session, "s-1", limit=1)
    assert cursor
    for other_list in ({"staff_id": "s-2"}, {"staff_id": "s-1", "unread_only": True}):
        with pytest.raises(DomainError, match="another list"):
            notifications.inbox_page(session, cursor=cursor, limit=1, **other_list)
    mine = ("inbox", "s-1", False)
    for broken in ("x", "!!!", cursor[:-3], paging.encode_cursor(mine, []), paging.encode_cursor(mine, [[1], 2])):
        with pytest.raises(DomainError):
            notifications.inbox_page(session, "s-1", cursor=broken)


def test_a_page_is_an_index_range_not_a_sort_of_her_whole_inbox(engine, session):
    from sqlalchemy import event

    add_items(session, "s-1", [T0 + timedelta(minutes=n) for n in range(30)])
    _, cursor = notifications.inbox_page(session, "s-1", limit=5)
    statements = []

    def record(conn, cursor_, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        notifications.inbox_page(session, "s-1", limit=5, cursor=cursor)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    [(statement, parameters)] = [s for s in statements if "FROM inbox_items" in s[0]]
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("SET enable_seqscan = off")
            plan = "\n".join(row[0] for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters))
            assert "ix_inbox_items_staff_page" in plan and "Sort" not in plan.split("->")[0], plan
        else:
            plan = "\n".join(row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                           parameters))
            assert "ix_inbox_items_staff_page" in plan and "TEMP B-TREE" not in plan, plan
