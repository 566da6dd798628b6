"""Partners on the real broker: provisioned users, their permissions, the SDK's outbox and consumer.

Each test session gets its own vhost (created through the management API, the
topology of tansiq.messaging.topology declared in it) and its own partner users.
"""

import json
import socket
import threading
import uuid
from urllib.parse import quote

import pika
import pika.exceptions
import pytest

from tansiq import contracts, signing
from tansiq.broker_admin import BrokerAdmin
from tansiq.errors import BadMessage
from tansiq.messaging import topology
from tansiq.partner import PartnerClient, PartnerRefused, check_inbound

REFERRAL = contracts.get("ma.tansiq.referral.sent.v1").example
TANSIQ_SIDE = "tansiq.partners.test"  # what a service's partner queue would receive


@pytest.fixture(scope="module")
def broker():
    admin = BrokerAdmin(vhost=f"tansiq-test-{uuid.uuid4().hex[:8]}")
    admin.add_vhost()
    admin.declare_topology()
    admin.declare_queue(topology.Queue(TANSIQ_SIDE, {}, [(topology.PARTNERS_INBOUND, "#")]))
    admin.slugs = []  # every partner made here, so none outlives the session
    yield admin
    for slug in admin.slugs:
        admin.revoke_partner(slug)
    admin.delete_vhost()


def uri(user, password, vhost):
    return f"amqp://{user}:{password}@127.0.0.1:5672/{quote(vhost, safe='')}"


class Partner:
    def __init__(self, broker, tmp_path):
        self.slug = f"p-{uuid.uuid4().hex[:10]}"
        broker.slugs.append(self.slug)
        self.credentials = broker.add_partner(self.slug)
        self.key = signing.generate_key()
        self.uri = uri(self.slug, self.credentials["password"], broker.vhost)
        self.outbox = tmp_path / f"{self.slug}.sqlite3"

    def client(self, amqp_uri=None):
        return PartnerClient(amqp_uri or self.uri, self.slug, self.key, self.outbox)

    def connect(self):
        return pika.BlockingConnection(pika.URLParameters(self.uri))


@pytest.fixture
def partner_a(broker, tmp_path):
    return Partner(broker, tmp_path)


@pytest.fixture
def partner_b(broker, tmp_path):
    return Partner(broker, tmp_path)


@pytest.fixture
def tansiq_side(broker):
    """The service side: reads what partners published, as the admin user."""
    connection = pika.BlockingConnection(pika.URLParameters(uri("guest", "guest", broker.vhost)))
    channel = connection.channel()
    channel.queue_purge(TANSIQ_SIDE)

    def drain(expected):
        messages = []
        for method, properties, body in channel.consume(TANSIQ_SIDE, inactivity_timeout=5):
            if method is None:
                break
            channel.basic_ack(method.delivery_tag)
            messages.append((method, properties, body))
            if len(messages) == expected:
                break
        channel.cancel()
        return messages

    channel.drain = drain
    yield channel
    connection.close()


def keys_of(*partners):
    public = {partner.slug: signing.public_key_b64(partner.key) for partner in partners}
    return public.get


def raw_publish(partner, routing_key, body, user_id):
    """Publish as `partner` with confirms, so a refusal surfaces here as ChannelClosedByBroker."""
    connection = partner.connect()
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(topology.PARTNERS_INBOUND, routing_key, body,
                              pika.BasicProperties(user_id=user_id, delivery_mode=2), mandatory=True)
    finally:
        if connection.is_open:
            connection.close()


def signed(partner, source=None, key=None):
    envelope = contracts.make("ma.tansiq.referral.sent.v1", source or partner.slug, REFERRAL)
    return signing.sign(envelope, key or partner.key)


# sending ---------------------------------------------------------------------------------
def test_many_messages_in_flight_arrive_in_order_and_pass_the_inbound_check(partner_a, tansiq_side):
    client = partner_a.client()
    sent = [client.send("ma.tansiq.referral.sent.v1", {**REFERRAL, "referral_id": f"r-{n}"}, deliver=False)
            for n in range(600)]  # more than the in-flight window
    assert client.flush() == 600
    assert client.store.pending_count() == 0

    received = tansiq_side.drain(600)
    assert [properties.message_id for _, properties, _ in received] == [envelope.id for envelope in sent]
    method, properties, body = received[0]
    assert properties.user_id == partner_a.slug
    assert properties.content_type == "application/cloudevents+json"
    assert properties.delivery_mode == 2
    envelope = check_inbound(body, properties.user_id, method.routing_key, keys_of(partner_a))
    assert envelope.source == partner_a.slug and envelope.data["referral_id"] == "r-0"


def test_a_cannot_use_b_routing_key(partner_a, partner_b, tansiq_side):
    body = signed(partner_a).to_bytes()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        raw_publish(partner_a, f"{partner_b.slug}.ma.tansiq.referral.sent.v1", body, partner_a.slug)
    assert refused.value.reply_code == 403
    assert tansiq_side.drain(1) == []


def test_a_cannot_set_b_as_user_id(partner_a, partner_b, tansiq_side):
    body = signed(partner_a).to_bytes()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        raw_publish(partner_a, f"{partner_a.slug}.ma.tansiq.referral.sent.v1", body, partner_b.slug)
    assert refused.value.reply_code == 406  # PRECONDITION_FAILED: user_id is not the connection's user
    assert tansiq_side.drain(1) == []


def test_a_cannot_write_an_envelope_from_b(partner_a, partner_b, tansiq_side):
    body = signed(partner_a, source=partner_b.slug).to_bytes()
    raw_publish(partner_a, f"{partner_a.slug}.ma.tansiq.referral.sent.v1", body, partner_a.slug)
    [(method, properties, received)] = tansiq_side.drain(1)
    with pytest.raises(BadMessage) as refused:
        check_inbound(received, properties.user_id, method.routing_key, keys_of(partner_a, partner_b))
    assert refused.value.reason == "forged_sender"


def test_a_signature_by_another_key_is_refused(partner_a, partner_b, tansiq_side):
    body = signed(partner_a, key=partner_b.key).to_bytes()
    raw_publish(partner_a, f"{partner_a.slug}.ma.tansiq.referral.sent.v1", body, partner_a.slug)
    [(method, properties, received)] = tansiq_side.drain(1)
    with pytest.raises(BadMessage) as refused:
        check_inbound(received, properties.user_id, method.routing_key, keys_of(partner_a, partner_b))
    assert refused.value.reason == "bad_signature"


# reading, declaring, binding ---------------------------------------------------------------
def refused_code(partner, action):
    connection = partner.connect()
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            action(connection.channel())
        return refused.value.reply_code
    finally:
        if connection.is_open:
            connection.close()


def test_a_cannot_read_b_queue(partner_a, partner_b):
    queue_b = topology.partner_queue(partner_b.slug)
    assert refused_code(partner_a, lambda channel: channel.basic_get(queue_b)) == 403
    assert refused_code(partner_a, lambda channel: channel.basic_consume(queue_b, lambda *args: None)) == 403


def test_a_reads_its_own_queue(partner_a):
    connection = partner_a.connect()
    try:
        method, _, _ = connection.channel().basic_get(topology.partner_queue(partner_a.slug))
        assert method is None  # allowed, and empty
    finally:
        connection.close()


@pytest.mark.parametrize("action", [
    lambda channel, own: channel.queue_declare(f"{own}.extra"),
    lambda channel, own: channel.queue_declare("", exclusive=True),  # server-named
    lambda channel, own: channel.exchange_declare(f"{own}.exchange", "fanout"),
    lambda channel, own: channel.queue_delete(own),
    lambda channel, own: channel.queue_bind(own, topology.PARTNERS_OUTBOUND, "#"),
    lambda channel, own: channel.queue_bind(own, topology.PARTNERS_INBOUND, "#"),
    lambda channel, own: channel.queue_bind(TANSIQ_SIDE, topology.PARTNERS_INBOUND, "#"),
], ids=["declare-queue", "declare-server-named", "declare-exchange", "delete-own-queue",
        "bind-outbound-all", "bind-inbound", "bind-other-queue"])
def test_a_cannot_declare_or_bind(partner_a, action):
    own = topology.partner_queue(partner_a.slug)
    assert refused_code(partner_a, lambda channel: action(channel, own)) == 403


# revocation -----------------------------------------------------------------------------------
def test_a_revoked_partner_is_cut_off(broker, partner_a):
    connection = partner_a.connect()
    broker.revoke_partner(partner_a.slug)
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker):
        for _ in range(100):  # until the broker's close arrives; no time is measured
            connection.process_data_events(time_limit=0.2)
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        partner_a.connect()
    client = partner_a.client()
    client.send("ma.tansiq.referral.sent.v1", REFERRAL, deliver=False)
    with pytest.raises(PartnerRefused):
        client.flush()
    with pytest.raises(PartnerRefused):
        client.listen(lambda envelope: None)
    assert client.store.pending_count() == 1  # kept, in case the partner is reinstated


# offline ----------------------------------------------------------------------------------------
def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_offline_partner_loses_nothing_and_sends_in_order_once(partner_a, tansiq_side):
    offline = partner_a.client(f"amqp://{partner_a.slug}:{partner_a.credentials['password']}"
                               f"@127.0.0.1:{closed_port()}/")
    sent = [offline.send("ma.tansiq.referral.sent.v1", {**REFERRAL, "referral_id": f"r-{n}"})
            for n in range(30)]
    assert offline.store.pending_count() == 30
    assert tansiq_side.drain(1) == []

    back = partner_a.client()  # same outbox file, broker reachable again
    assert back.flush() == 30
    assert back.flush() == 0
    received = tansiq_side.drain(31)
    assert [json.loads(body)["id"] for _, _, body in received] == [envelope.id for envelope in sent]


def test_run_outbox_retries_until_the_broker_answers(partner_a, tansiq_side):
    client = partner_a.client()
    client.send("ma.tansiq.referral.sent.v1", REFERRAL, deliver=False)
    stop = threading.Event()
    worker = threading.Thread(target=client.run_outbox, args=(stop,), kwargs={"poll_s": 0.1})
    worker.start()
    try:
        assert len(tansiq_side.drain(1)) == 1
    finally:
        stop.set()
        worker.join()
    assert client.store.pending_count() == 0


# receiving ----------------------------------------------------------------------------------------
def test_listen_acks_each_message_once_and_only_reads_its_own_queue(broker, partner_a, partner_b):
    connection = pika.BlockingConnection(pika.URLParameters(uri("guest", "guest", broker.vhost)))
    channel = connection.channel()
    channel.confirm_delivery()
    first = contracts.make("ma.tansiq.message.rejected.v1", "referrals",
                           {"rejected_id": "x-1", "rejected_type": "ma.tansiq.referral.sent.v1",
                            "reason": "schema_invalid", "detail": "urgency"})
    last = contracts.make("ma.tansiq.referral.acknowledged.v1", "referrals", {
        "referral_id": "r-41", "from_association": partner_a.slug, "to_association": "wafae-marrakech"})
    for slug, envelope in [(partner_a.slug, first), (partner_a.slug, first), (partner_b.slug, first),
                           (partner_a.slug, last)]:
        channel.basic_publish(topology.PARTNERS_OUTBOUND, f"{slug}.{envelope.type}", envelope.to_bytes(),
                              pika.BasicProperties(message_id=envelope.id, delivery_mode=2), mandatory=True)
    connection.close()

    handled, stop = [], threading.Event()

    def handler(envelope):
        handled.append(envelope)
        if envelope.id == last.id:
            stop.set()

    client = partner_a.client()
    worker = threading.Thread(target=client.listen, args=(handler, stop))
    worker.start()
    worker.join(timeout=60)
    stop.set()
    worker.join()
    assert [envelope.id for envelope in handled] == [first.id, last.id]
    assert handled[0].data["reason"] == "schema_invalid"
    # Unacked messages would be back in the queue now that the client is gone.
    for partner, expected in [(partner_a, None), (partner_b, first.id)]:
        connection = partner.connect()
        method, properties, _ = connection.channel().basic_get(topology.partner_queue(partner.slug))
        connection.close()
        assert (properties.message_id if method else None) == expected


def test_refused_messages_are_answered_on_the_sender_queue_and_good_ones_still_pass(partner_a, tansiq_side):
    """The service side here is check_inbound + rejection, as the kernel's partner consumer uses them."""
    from tansiq.envelope import MAX_BODY_BYTES
    from tansiq.partner import rejection

    routing_key = f"{partner_a.slug}.ma.tansiq.referral.sent.v1"
    bodies = [b"{not json", b"{" + b" " * MAX_BODY_BYTES + b"}",
              contracts.make("ma.tansiq.referral.sent.v1", partner_a.slug, REFERRAL).to_bytes(),  # unsigned
              signed(partner_a).to_bytes()]
    for body in bodies:
        raw_publish(partner_a, routing_key, body, partner_a.slug)

    accepted = []
    for method, properties, body in tansiq_side.drain(len(bodies)):
        try:
            accepted.append(check_inbound(body, properties.user_id, method.routing_key, keys_of(partner_a)))
        except BadMessage as refused:
            answer_key, answer = rejection(body, properties.user_id, refused, "referrals")
            tansiq_side.basic_publish(topology.PARTNERS_OUTBOUND, answer_key, answer.to_bytes(),
                                      pika.BasicProperties(message_id=answer.id, delivery_mode=2))
    assert [envelope.source for envelope in accepted] == [partner_a.slug]

    answers, stop = [], threading.Event()

    def handler(envelope):
        answers.append(envelope)
        if len(answers) == 3:
            stop.set()

    worker = threading.Thread(target=partner_a.client().listen, args=(handler, stop))
    worker.start()
    worker.join(timeout=60)
    stop.set()
    worker.join()
    assert [(a.type, a.data["reason"]) for a in answers] == [
        ("ma.tansiq.message.rejected.v1", "malformed_json"),
        ("ma.tansiq.message.rejected.v1", "oversized"),
        ("ma.tansiq.message.rejected.v1", "bad_signature"),
    ]
    assert answers[2].data["rejected_id"] == json.loads(bodies[2])["id"]
