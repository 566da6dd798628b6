"""Email notifications against a real SMTP server (aiosmtpd in the test process), on SQLite and PostgreSQL.

Time is driven by hand: `deliver_due(session, now, …)` is called with a chosen `now`.
"""

import email
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from email.policy import default as default_policy

import pytest
import requests
from aiosmtpd.controller import Controller
from fixtures.notifications import small_network
from harness import create_pg_database, drop_pg_database
from sqlalchemy import select

from services.notifications import channels, domain
from services.notifications.models import FAILED, SENT, Base, Delivery
from services.notifications.render import Message, Renderer
from tansiq import contracts
from tansiq.db import make_engine, session_scope
from tansiq.messaging import inbox
from tansiq.messaging.store import messaging_metadata

DAY = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)  # 11:00 in Casablanca
REFERRAL = {"referral_id": "r-41", "from_association": "amal-safi", "to_association": "wafae-marrakech"}
SECRETS = ("Khadija", "Benali", "+212611223344", "Violences", "b-7c2e")
CONSUMER = "notifications"


class Mailbox:
    """aiosmtpd handler: keeps every message it accepts, parsed."""

    def __init__(self):
        self.messages = []
        self.greetings = 0  # EHLO: once per SMTP connection

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=default_policy)
        self.messages.append((envelope.rcpt_tos, message, envelope.original_content))
        return "250 OK"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.greetings += 1
        session.host_name = hostname
        return responses


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp():
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    mailbox.port = controller.port
    yield mailbox
    controller.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    yield from notifications_engine(request.param, tmp_path)


@pytest.fixture
def pg_engine(tmp_path):
    """Replicas of the service share a PostgreSQL database (the embedded SQLite one serves one process)."""
    yield from notifications_engine("postgres", tmp_path)


def notifications_engine(backend, tmp_path):
    if backend == "postgres":
        name = f"tansiq_notifications_{uuid.uuid4().hex[:10]}"
        engine = make_engine(create_pg_database(name))
    else:
        name, engine = None, make_engine(f"sqlite:///{tmp_path}/notifications.sqlite3")
    Base.metadata.create_all(engine)
    messaging_metadata.create_all(engine)
    yield engine
    engine.dispose()
    if name:
        drop_pg_database(name)


@pytest.fixture(scope="module")
def directory():
    directory = small_network()
    yield directory
    directory.close()


def handle(engine, directory, event, now):
    """What the service's handler does, one transaction per delivery of the message."""
    with session_scope(engine) as session:
        if inbox.first_time(session, CONSUMER, event):
            domain.notify(session, directory, event, now)


def deliver(engine, now, port):
    with session_scope(engine) as session:
        sender = {"email": channels.EmailChannel("127.0.0.1", port, "Tansiq <no-reply@tansiq.test>")}
        return domain.deliver_due(session, now, sender, Renderer("http://tansiq.test"))


def make(type_, **data):
    example = {**contracts.get(type_).example, **REFERRAL, **data}
    return contracts.validate(contracts.make(type_, "referrals", example))


def deliveries(engine):
    with session_scope(engine) as session:
        return session.scalars(select(Delivery).order_by(Delivery.id)).all()


def test_an_address_with_arabic_or_accented_letters_reaches_a_server_that_speaks_smtputf8():
    """Addresses are any string the directory accepts; a server offering SMTPUTF8 (Postfix's default) must
    get the email, not a failure at every retry (a compat32 message cannot be sent with utf8=True)."""
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=True)
    controller.start()
    try:
        sender = channels.EmailChannel("127.0.0.1", controller.port, "Tansiq <no-reply@tansiq.test>")
        message = Message(language="ar", subject="عاجل: إحالة جديدة", text="نص", html="<p>نص</p>", sms="")
        for address in ("fatimé@amal-safi.example", "فاطمة@amal-safi.example"):
            sender.send(address, message, delivery=None)
    finally:
        controller.stop()
    assert [rcpt for rcpt, _, _ in mailbox.messages] == [["fatimé@amal-safi.example"], ["فاطمة@amal-safi.example"]]
    assert mailbox.messages[0][1]["Subject"] == "عاجل: إحالة جديدة"


def test_a_line_break_in_a_subject_adds_no_header_and_no_recipient(smtp):
    """Subjects carry what people typed (an event's title, an association's name): a CR LF in one must not
    start a header of its own (a Bcc to someone else). Refused in Latin script, kept as text in Arabic."""
    sender = channels.EmailChannel("127.0.0.1", smtp.port, "Tansiq <no-reply@tansiq.test>")
    hostile = "\r\nBcc: someone@elsewhere.example"
    with pytest.raises(Exception):  # noqa: B017, PT011 - the email package's refusal; the delivery is retried
        sender.send("s-safi-1@amal-safi.ma", Message(language="fr", subject="Atelier" + hostile, text="t",
                                                     html="<p>t</p>", sms=""), delivery=None)
    sender.send("s-safi-1@amal-safi.ma", Message(language="ar", subject="ورشة" + hostile, text="t",
                                                 html="<p>t</p>", sms=""), delivery=None)
    assert [rcpt for rcpt, _, _ in smtp.messages] == [["s-safi-1@amal-safi.ma"]]
    received = smtp.messages[0][1]
    assert received["Bcc"] is None and "Bcc: someone@elsewhere.example" in received["Subject"]


def test_a_delivery_run_sends_its_emails_over_one_smtp_connection(engine, directory, smtp):
    for n in range(6):
        handle(engine, directory, make("ma.tansiq.referral.sent.v1", referral_id=f"r-{n}", urgency="urgent"), DAY)
    assert deliver(engine, DAY, smtp.port) == {"sent": 6, "failed": 0}
    assert len(smtp.messages) == 6
    assert smtp.greetings == 1
    # Each email its own MIME boundary (channels.EmailChannel makes them), its two parts intact.
    assert len({message.get_boundary() for _, message, _ in smtp.messages}) == 6
    assert all([part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
               for _, message, _ in smtp.messages)


@pytest.mark.postgres
def test_two_replicas_sending_at_once_send_each_email_once(pg_engine, directory, smtp):
    """Two notifications processes run their delivery timers at the same moment on one PostgreSQL database:
    each due delivery is claimed by one of them (`_claim`, SKIP LOCKED), so every email goes out once."""
    engine = pg_engine
    for n in range(40):
        handle(engine, directory, make("ma.tansiq.referral.sent.v1", referral_id=f"r-{n}", urgency="urgent"), DAY)
    with session_scope(engine) as session:
        due = len(session.scalars(select(Delivery.id).where(Delivery.channel == "email")).all())
    start = threading.Barrier(2)

    def replica():
        start.wait()
        return deliver(engine, DAY, smtp.port)

    with ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(lambda _: replica(), range(2)))
    assert sum(count["sent"] for count in counts) == due and all(count["failed"] == 0 for count in counts)
    assert all(count["sent"] > 0 for count in counts), f"the two did not overlap: {counts}"
    assert len(smtp.messages) == due  # not one more: no email twice
    with session_scope(engine) as session:
        rows = session.scalars(select(Delivery).where(Delivery.channel == "email")).all()
    assert {(row.state, row.attempts) for row in rows} == {(SENT, 1)}


def test_each_person_gets_the_email_in_their_language(engine, directory, smtp):
    handle(engine, directory, make("ma.tansiq.referral.escalated.v1", note="Khadija Benali +212611223344"), DAY)
    handle(engine, directory, make("ma.tansiq.referral.sent.v1", urgency="urgent", reason="Violences, b-7c2e",
                                   shared={"first_name": "Khadija", "last_name": "Benali"}), DAY)
    assert deliver(engine, DAY, smtp.port) == {"sent": 3, "failed": 0}

    received = {tuple(rcpt): message for rcpt, message, _ in smtp.messages}
    assert set(received) == {("s-amal-coord@amal-safi.ma",), ("s-wafae-coord@wafae-marrakech.ma",),
                             ("s-wafae-cw-en@wafae-marrakech.ma",)}
    french = received[("s-amal-coord@amal-safi.ma",)]
    assert french["Subject"].startswith("Urgent : orientation escaladée entre Association Amal")
    assert french["Content-Language"] == "fr"
    arabic = received[("s-wafae-coord@wafae-marrakech.ma",)]
    assert arabic["Subject"].startswith("عاجل") and arabic["Content-Language"] == "ar"
    html = arabic.get_body(("html",)).get_content()
    assert 'lang="ar" dir="rtl"' in html and "جمعية أمل" in html
    english = received[("s-wafae-cw-en@wafae-marrakech.ma",)]
    assert english["Subject"] == "New referral from Association Amal"
    assert "Please respond before" in english.get_body(("plain",)).get_content()
    # The real messages, raw as the SMTP server got them, name no beneficiary detail.
    for _, message, raw in smtp.messages:
        decoded = "".join(part.get_content() for part in message.walk() if not part.is_multipart())
        for secret in SECRETS:
            assert secret not in decoded and secret.encode() not in raw
        assert "http://tansiq.test/inbox/" in decoded


def test_smtp_down_is_retried_with_backoff_then_delivered_and_the_inbox_is_unaffected(engine, directory):
    port = free_port()  # nothing listens here yet: the SMTP server is down
    handle(engine, directory, make("ma.tansiq.referral.sent.v1", urgency="urgent"), DAY)
    with session_scope(engine) as session:
        assert domain.unread_count(session, "s-wafae-cw-en") == 1  # the inbox does not wait for email

    assert deliver(engine, DAY, port) == {"sent": 0, "failed": 1}
    [email_delivery] = deliveries(engine)
    assert email_delivery.state == FAILED and email_delivery.attempts == 1
    retry_at = email_delivery.next_attempt_at
    assert retry_at == DAY + timedelta(minutes=1)
    assert deliver(engine, retry_at - timedelta(seconds=1), port) == {"sent": 0, "failed": 0}
    assert deliver(engine, retry_at, port) == {"sent": 0, "failed": 1}
    assert deliveries(engine)[0].next_attempt_at == retry_at + timedelta(minutes=2)

    mailbox = Mailbox()  # the server comes back, on the same port
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert deliver(engine, retry_at + timedelta(minutes=2), port) == {"sent": 1, "failed": 0}
    finally:
        controller.stop()
    [(rcpt, message, _)] = mailbox.messages
    assert rcpt == ["s-wafae-cw-en@wafae-marrakech.ma"] and message["Subject"].startswith("New referral")
    [delivered] = deliveries(engine)
    assert delivered.state == SENT and delivered.attempts == 3 and delivered.last_error is None
    with session_scope(engine) as session:
        [item] = domain.list_inbox(session, "s-wafae-cw-en")
        assert item.kind == "referral.sent" and item.read_at is None


def test_a_duplicated_event_notifies_once(engine, directory, smtp):
    event = make("ma.tansiq.referral.sent.v1", urgency="urgent")
    handle(engine, directory, event, DAY)
    handle(engine, directory, event, DAY)  # the broker delivered it twice
    with session_scope(engine) as session:  # even past the inbox table, the unique keys hold
        assert domain.notify(session, directory, event, DAY) == []
    assert deliver(engine, DAY, smtp.port) == {"sent": 1, "failed": 0}
    assert deliver(engine, DAY + timedelta(hours=1), smtp.port) == {"sent": 0, "failed": 0}
    assert len(smtp.messages) == 1
    with session_scope(engine) as session:
        assert domain.unread_count(session, "s-wafae-cw-en") == 1


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_through_the_broker_a_registration_reaches_inbox_email_and_json_api_once(network_factory, smtp, backend):
    """The slice's consumer side with real processes (directory, notifications, gateway), broker and SMTP."""
    from harness import eventually

    from tansiq.messaging import topology
    from tansiq.messaging.broker import ConfirmedPublisher

    network = network_factory(backend=backend)
    network.env.update(TANSIQ_SMTP_PORT=str(smtp.port), TANSIQ_DELIVERY_INTERVAL_S="0.3")
    for service in ("directory", "notifications"):
        network.tansiq("migrate", "--service", service)
    directory_db = network.env.get("TANSIQ_DIRECTORY_DB_URI", f"sqlite:///{network.var}/directory.sqlite3")
    small_network(directory_db, password="tansiq-test").close()
    network.start("directory", "notifications", "gateway")

    registered = contracts.make("ma.tansiq.beneficiary.registered.v1", "intake", {
        "beneficiary_id": "b-7c2e", "association": "amal-safi", "registered_by": "s-amal-cw-fr",
        "urgency": "urgent", "needs": ["shelter"], "city": "Hay Mohammadi"})
    publisher = ConfirmedPublisher(network.amqp_uri)
    try:
        for _ in range(2):  # delivered twice: one effect
            publisher.publish(registered.to_bytes(), topology.EVENTS_EXCHANGE, registered.type, registered.id)
    finally:
        publisher.close()

    def staff(staff_id, association):
        return network.assertion({"id": staff_id, "association": association, "roles": ["case_worker"]})

    with network.rpc() as cluster:
        items = eventually(lambda: cluster.notifications.inbox(staff("s-amal-cw-ar", "amal-safi")),
                           message="no inbox item")
        assert [item["kind"] for item in items] == ["beneficiary.registered"]
        assert items[0]["subject"] == "تسجيل مستفيدة جديدة في جمعية أمل"  # in her language
        # Another association: nothing.
        assert cluster.notifications.inbox(staff("s-wafae-cw-en", "wafae-marrakech")) == []
        assert cluster.notifications.get_preferences(staff("s-amal-cw-ar", "amal-safi"))["language"] == "ar"
        assert cluster.notifications.health() == "ok"

    # Urgent: both case workers are emailed at once, whatever the hour; the duplicate adds nothing.
    eventually(lambda: len(smtp.messages) >= 2, message="the emails did not arrive")
    received = sorted(rcpt for rcpt, _, _ in smtp.messages)
    assert received == [["s-amal-cw-ar@amal-safi.ma"], ["s-amal-cw-fr@amal-safi.ma"]]
    for _, _message, raw in smtp.messages:
        for secret in ("b-7c2e", "Hay Mohammadi", "shelter"):
            assert secret.encode() not in raw

    # The gateway's JSON API, signed in as the French-speaking case worker.
    web = network.login("s-amal-cw-fr@amal-safi.ma", password="tansiq-test")
    assert web.get(f"{network.web}/api/inbox/unread-count").json() == {"unread": 1}
    [item] = web.get(f"{network.web}/api/inbox", params={"unread": 1}).json()["items"]
    assert item["subject"] == "Nouvelle bénéficiaire enregistrée à Association Amal" and item["read"] is False
    assert web.post(f"{network.web}/api/inbox/{item['id']}/read").json()["read"] is True
    assert web.get(f"{network.web}/api/inbox", params={"unread": 1}).json()["items"] == []
    assert web.get(f"{network.web}/api/inbox/unread-count").json() == {"unread": 0}
    assert web.get(f"{network.web}/api/inbox").json()["items"][0]["id"] == item["id"]  # still listed, read
    other = network.login("s-amal-cw-ar@amal-safi.ma", password="tansiq-test")
    assert other.post(f"{network.web}/api/inbox/{item['id']}/read").status_code == 404  # not hers
    assert web.get(f"{network.web}/api/preferences").json()["language"] == "fr"
    changed = web.put(f"{network.web}/api/preferences", json={"language": "en", "quiet_start": "22:00",
                                                              "quiet_end": "07:00"}).json()
    assert changed["language"] == "en" and changed["quiet_start"] == "22:00"
    assert web.put(f"{network.web}/api/preferences", json={"channels": ["pigeon"]}).status_code == 422
    assert requests.get(f"{network.web}/api/inbox", timeout=10).status_code == 401
