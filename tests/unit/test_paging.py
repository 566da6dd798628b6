"""Cursor paging (tansiq.paging) of real lists on a real database: SQLite file, and PostgreSQL when marked."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fixtures.databases import BACKENDS, throwaway_engine
from sqlalchemy.orm import Session

from services.intake import domain as intake
from services.intake.models import Base as IntakeBase
from services.notifications import domain as notifications
from services.notifications.models import Base as NotificationsBase
from services.notifications.models import InboxItem
from services.referrals import domain as referrals
from services.referrals.models import Base as ReferralsBase
from tansiq import paging
from tansiq.contracts.actor import Actor
from tansiq.crypto import KeyRing
from tansiq.errors import DomainError

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
def engine(request, tmp_path):
    with throwaway_engine(request.param, tmp_path, NotificationsBase.metadata.create_all, "paging") as engine:
        yield engine


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


def plan_of(engine, call, table):
    """The database's plan for the SELECT on `table` that `call` runs (sequential scans off on PostgreSQL,
    so a plan without a usable index shows as one)."""
    from sqlalchemy import event

    statements = []

    def record(conn, cursor_, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    [(statement, parameters)] = [s for s in statements if f"FROM {table}" in s[0]]
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("SET enable_seqscan = off")
            return "\n".join(row[0] for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters))
        return "\n".join(row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))


def assert_index_range(engine, plan, index):
    """Read through `index` in its order: no full scan, no sort of the owner's whole list."""
    assert index in plan, plan
    if engine.dialect.name == "postgresql":
        assert "Sort" not in plan and "Seq Scan" not in plan, plan
    else:
        assert "TEMP B-TREE" not in plan, plan


def test_a_page_is_an_index_range_not_a_sort_of_her_whole_inbox(engine, session):
    add_items(session, "s-1", [T0 + timedelta(minutes=n) for n in range(30)])
    _, cursor = notifications.inbox_page(session, "s-1", limit=5)
    plan = plan_of(engine, lambda: notifications.inbox_page(session, "s-1", limit=5, cursor=cursor), "inbox_items")
    assert_index_range(engine, plan, "ix_inbox_items_staff_page")


@pytest.mark.parametrize("direction", ["sent", "received"])
def test_a_referrals_page_is_an_index_range(engine, session, direction):
    ReferralsBase.metadata.create_all(engine)
    plan = plan_of(engine, lambda: referrals.referrals_page(session, "amal-safi", direction, limit=5,
                                                            cursor=paging.encode_cursor(
                                                                ("referrals", "amal-safi", direction, None),
                                                                [T0, "r-1"])), "referrals")
    assert_index_range(engine, plan, f"ix_referrals_{direction}_page")


def test_a_beneficiaries_page_is_an_index_range(engine, session):
    IntakeBase.metadata.create_all(engine)
    reader = Actor(association="amal-safi", id="s-1", roles=frozenset({"case_worker"}))
    plan = plan_of(engine, lambda: intake.list_beneficiaries(session, KeyRing(bytes(32)), reader, limit=5),
                   "beneficiary")
    assert_index_range(engine, plan, "ix_beneficiary_page")
