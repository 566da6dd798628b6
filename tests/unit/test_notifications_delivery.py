"""Delivery: per channel state, retries with backoff, one failing channel never blocks another,
SMS and webhooks over real HTTP (a local server), the inbox (list, unread count, mark read)."""

import hashlib
import hmac
import json
import socket
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fixtures.databases import BACKENDS, throwaway_engine
from fixtures.notifications import directory, session, small_network  # noqa: F401 - fixtures
from sqlalchemy import select

from services.notifications import channels, domain
from services.notifications.models import FAILED, QUEUED, READ, SENT, Delivery
from services.notifications.render import Renderer
from tansiq import contracts
from tansiq.errors import NotFound

DAY = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
REFERRAL = {"referral_id": "r-41", "from_association": "amal-safi", "to_association": "wafae-marrakech"}


class Recorder(BaseHTTPRequestHandler):
    """A partner endpoint / SMS gateway: records each POST; answers `status` (500 = down)."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, dict(self.headers), body))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.received, server.status = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port():
    """A port nothing listens on: an SMTP server that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]



@pytest.fixture
def renderer():
    return Renderer("http://tansiq.test")


def referral_sent(urgency="urgent"):
    data = {**contracts.get("ma.tansiq.referral.sent.v1").example, **REFERRAL, "urgency": urgency}
    return contracts.validate(contracts.make("ma.tansiq.referral.sent.v1", "tests", data))


def by_channel(session):
    return {d.channel: d for d in session.scalars(select(Delivery))}


def test_a_failing_channel_does_not_block_the_others(session, directory, renderer, http_server, closed_port):
    domain.set_preferences(session, "s-wafae-cw-en", {"channels": ["email", "sms"]}, DAY)
    domain.notify(session, directory, referral_sent(), DAY, enabled_channels=("email", "sms"))
    sent = {"email": channels.EmailChannel("127.0.0.1", closed_port, "t@tansiq.test"),
            "sms": channels.SmsChannel(f"{http_server.url}/sms")}
    assert domain.deliver_due(session, DAY, sent, renderer) == {"sent": 1, "failed": 1}
    state = by_channel(session)
    assert state["sms"].state == SENT and state["email"].state == FAILED
    assert state["email"].attempts == 1 and "Connection" in state["email"].last_error
    assert state["email"].next_attempt_at == DAY + timedelta(minutes=1)
    [(path, headers, body)] = http_server.received
    sms = json.loads(body)
    assert path == "/sms" and sms["to"] == "+212600000002"
    assert sms["text"].startswith("Tansiq: New referral from Association Amal") and "Khadija" not in sms["text"]


def test_retries_back_off_exponentially_then_stop(session, directory, renderer, closed_port):
    domain.notify(session, directory, referral_sent(), DAY)
    down = {"email": channels.EmailChannel("127.0.0.1", closed_port, "t@tansiq.test")}
    now, waits = DAY, []
    for _ in range(domain.MAX_ATTEMPTS):
        assert domain.deliver_due(session, now, down, renderer) == {"sent": 0, "failed": 1}
        email = by_channel(session)["email"]
        assert domain.deliver_due(session, email.next_attempt_at - timedelta(seconds=1), down, renderer) == \
            {"sent": 0, "failed": 0}  # not before its time
        waits.append(email.next_attempt_at - now)
        now = email.next_attempt_at
    assert waits[:4] == [timedelta(minutes=m) for m in (1, 2, 4, 8)] and max(waits) == domain.RETRY_CAP
    assert domain.deliver_due(session, now + timedelta(days=1), down, renderer) == {"sent": 0, "failed": 0}
    assert by_channel(session)["email"].state == FAILED  # kept, visible, and the inbox item is still there
    assert domain.unread_count(session, "s-wafae-cw-en") == 1


def test_an_unconfigured_channel_fails_its_own_deliveries_only(session, directory, renderer, http_server):
    domain.set_preferences(session, "s-wafae-cw-en", {"channels": ["email", "sms"]}, DAY)
    domain.notify(session, directory, referral_sent(), DAY, enabled_channels=("email", "sms"))
    only_sms = {"sms": channels.SmsChannel(http_server.url)}
    assert domain.deliver_due(session, DAY, only_sms, renderer) == {"sent": 1, "failed": 1}


def test_webhooks_are_signed_and_carry_no_beneficiary_detail(session, directory, renderer, http_server):
    hook = domain.add_webhook(session, "wafae-marrakech", f"{http_server.url}/hook", "s3cret", [], DAY)
    data = {**contracts.get("ma.tansiq.referral.sent.v1").example, **REFERRAL,
            "shared": {"first_name": "Khadija"}, "reason": "Khadija needs a lawyer"}
    domain.notify(session, directory, contracts.validate(contracts.make("ma.tansiq.referral.sent.v1", "t", data)),
                  DAY)
    assert domain.deliver_due(session, DAY, {"webhook": channels.WebhookChannel(),
                                             "email": channels.EmailChannel("127.0.0.1", 9, "t@t")},
                              renderer)["sent"] == 1
    [(path, headers, body)] = http_server.received
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert path == "/hook" and headers["X-Tansiq-Signature"] == f"sha256={expected}"
    payload = json.loads(body)
    assert payload["kind"] == "referral.sent" and payload["params"]["link"] == "/referrals/r-41"
    assert "Khadija" not in body.decode()
    domain.remove_webhook(session, "wafae-marrakech", hook.id)
    with pytest.raises(NotFound):
        domain.remove_webhook(session, "amal-safi", hook.id)  # not theirs


def test_a_partner_endpoint_that_fails_is_retried(session, directory, renderer, http_server):
    domain.add_webhook(session, "amal-safi", http_server.url, "k", ["referral.sent"], DAY)
    domain.notify(session, directory, referral_sent("normal"), DAY)
    http_server.status = 503
    hooks = {"webhook": channels.WebhookChannel()}
    domain.deliver_due(session, DAY, hooks, renderer)
    assert by_channel(session)["webhook"].state == FAILED
    http_server.status = 200
    domain.deliver_due(session, DAY + timedelta(minutes=1), hooks, renderer)
    assert by_channel(session)["webhook"].state == SENT and len(http_server.received) == 2


def test_reading_the_item_cancels_what_has_not_gone_out(session, directory, renderer, closed_port):
    night = datetime(2026, 11, 30, 23, 0, tzinfo=timezone.utc)
    [item] = domain.notify(session, directory, referral_sent("normal"), night)
    assert by_channel(session)["email"].state == QUEUED  # held until quiet hours end
    domain.mark_read(session, "s-wafae-cw-en", item.id, night + timedelta(minutes=5))
    assert by_channel(session)["email"].state == READ
    assert domain.deliver_due(session, night + timedelta(days=1), {}, renderer) == {"sent": 0, "failed": 0}


def test_low_urgency_items_go_out_as_one_digest(session, directory, renderer, http_server):
    domain.set_preferences(session, "s-nour-events", {"channels": ["sms"]}, DAY)
    for event_id in ("e-1", "e-2"):
        data = {**contracts.get("ma.tansiq.event.published.v1").example, "event_id": event_id}
        domain.notify(session, directory, contracts.validate(contracts.make("ma.tansiq.event.published.v1", "t",
                                                                            data)), DAY, enabled_channels=("sms",))
    assert domain.deliver_due(session, DAY, {"sms": channels.SmsChannel(http_server.url)}, renderer) == \
        {"sent": 0, "failed": 0}  # waits for the digest hour
    tomorrow = DAY + timedelta(days=1)
    assert domain.deliver_due(session, tomorrow, {"sms": channels.SmsChannel(http_server.url)}, renderer) == \
        {"sent": 2, "failed": 0}
    assert [json.loads(body)["to"] for _, _, body in http_server.received] == ["+212600000003"]


def test_inbox_lists_counts_and_marks_read_for_its_owner_only(session, directory):
    domain.notify(session, directory, referral_sent(), DAY)
    domain.notify(session, directory, referral_sent(), DAY + timedelta(minutes=1))  # another event
    items = domain.list_inbox(session, "s-wafae-cw-en")
    assert len(items) == 2 and items[0].created_at > items[1].created_at
    assert domain.unread_count(session, "s-wafae-cw-en") == 2
    with pytest.raises(NotFound):
        domain.mark_read(session, "s-amal-cw-fr", items[0].id, DAY)
    domain.mark_read(session, "s-wafae-cw-en", items[0].id, DAY)
    domain.mark_read(session, "s-wafae-cw-en", items[0].id, DAY)  # twice is fine
    assert domain.unread_count(session, "s-wafae-cw-en") == 1
    assert [i.id for i in domain.list_inbox(session, "s-wafae-cw-en", unread_only=True)] == [items[1].id]


def counters_match_the_items(session):
    """Every staff member's kept counter equals what a count of her unread items says."""
    from sqlalchemy import func

    from services.notifications.models import InboxItem, UnreadCount

    counted = dict(session.execute(select(InboxItem.staff_id, func.count()).where(InboxItem.read_at.is_(None))
                                   .group_by(InboxItem.staff_id)).all())
    kept = {staff_id: unread for staff_id, unread in session.execute(select(UnreadCount.staff_id, UnreadCount.unread))
            if unread}
    assert kept == counted
    return kept


def test_the_unread_counter_follows_every_change_of_her_items(session, directory):
    """Kept with the items (new, repeated, read twice, read by someone else, erased), never a count of rows."""
    sent = referral_sent()
    domain.notify(session, directory, sent, DAY)
    domain.notify(session, directory, sent, DAY)  # the same event again: no item, no count
    domain.notify(session, directory, referral_sent(), DAY + timedelta(minutes=1))
    before = counters_match_the_items(session)
    assert before["s-wafae-cw-en"] == domain.unread_count(session, "s-wafae-cw-en") == 2
    items = domain.list_inbox(session, "s-wafae-cw-en")
    with pytest.raises(NotFound):
        domain.mark_read(session, "s-amal-cw-fr", items[0].id, DAY)  # not hers: nothing moves
    domain.mark_read(session, "s-wafae-cw-en", items[0].id, DAY)
    domain.mark_read(session, "s-wafae-cw-en", items[0].id, DAY)  # twice counts once
    assert counters_match_the_items(session)["s-wafae-cw-en"] == 1
    assert {k: v for k, v in counters_match_the_items(session).items() if k != "s-wafae-cw-en"} == \
        {k: v for k, v in before.items() if k != "s-wafae-cw-en"}  # nobody else's counter moved

    registered = {**contracts.get("ma.tansiq.beneficiary.registered.v1").example, "beneficiary_id": "b-77",
                  "association": "amal-safi"}
    domain.notify(session, directory, contracts.validate(contracts.make(
        "ma.tansiq.beneficiary.registered.v1", "amal-safi", registered)), DAY)
    told = [i for i in domain.list_inbox(session, "s-amal-cw-fr") if i.link == "/beneficiaries/b-77"]
    domain.mark_read(session, "s-amal-cw-fr", told[0].id, DAY)  # one read, the others unread: both kinds erased
    assert domain.forget_beneficiary(session, "b-77") >= len(told)
    counters_match_the_items(session)
    assert domain.unread_count(session, "nobody") == 0


@pytest.fixture(params=BACKENDS)
def engine(request, tmp_path):
    """A notifications database on SQLite and on a throwaway PostgreSQL database."""
    from services.notifications.models import Base

    with throwaway_engine(request.param, tmp_path, Base.metadata.create_all, "notifications") as engine:
        yield engine


def test_sending_what_is_due_reads_the_due_deliveries_not_every_one_ever_sent(engine, renderer):
    """Sent deliveries are kept, and the database's statistics may date from when they were queued (a
    backlog drained): the query of what is due must still read only what is queued or failed, by the
    partial index ix_deliveries_due. Ordered by next_attempt_at, PostgreSQL walked that column's index
    over every delivery ever sent (they are all due by then), on every pass."""
    import re

    from sqlalchemy import event as sqlalchemy_event
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from tansiq.db import insert_many

    def deliveries(count, prefix):
        return [{"source_message_id": f"{prefix}-{n}", "recipient": "s-wafae-cw-en", "channel": "email",
                 "address": "houda@wafae.example", "language": "en", "kind": "referral.received",
                 "urgency": "normal", "params": {}, "digest": False, "state": QUEUED, "attempts": 0,
                 "next_attempt_at": DAY - timedelta(hours=1), "created_at": DAY - timedelta(hours=1)}
                for n in range(count)]

    with Session(engine) as session:
        insert_many(session, Delivery, deliveries(5000, "sent"))
        session.commit()
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")  # while all of them are queued
    statements = []

    def remember(connection, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "FROM deliveries" in statement:
            statements.append((statement, parameters))

    with Session(engine) as session:
        session.execute(update(Delivery).values(state=SENT, attempts=1, sent_at=DAY - timedelta(minutes=59)))
        insert_many(session, Delivery, deliveries(3, "due"))
        session.commit()
        sqlalchemy_event.listen(engine, "before_cursor_execute", remember)
        try:  # no channel configured: each due delivery fails on its own, which is enough here
            assert domain.deliver_due(session, DAY, {}, renderer) == {"sent": 0, "failed": 3}
        finally:
            sqlalchemy_event.remove(engine, "before_cursor_execute", remember)
    statement, parameters = statements[0]  # the due ones; the claims follow
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            plan = "\n".join(row[0] for row in connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters))
            assert sum(int(rows) for rows in re.findall(r"Rows Removed by Filter: (\d+)", plan)) < 100, plan
        else:
            plan = " / ".join(row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}",
                                                                             parameters))
            assert "ix_deliveries_due" in plan, plan
