"""A partner message keeps its sender across retries and a replay from the dead-letter queue, and a
message that fails for good is answered too (real broker, real directory, a probe partner handler)."""

import json
from urllib.parse import quote

import pika
import pytest

from harness import BROKER_HOST, add_partner_association, eventually, random_slug
from fixtures import partner_probe
from tansiq import config, contracts, ops, signing
from tansiq.broker_admin import BrokerAdmin
from tansiq.envelope import parse
from tansiq.messaging import topology

PROBE = "tests.fixtures.partner_probe:PartnerProbeService"
QUEUE = topology.partner_inbound_queue("probe")


@pytest.fixture
def partner(network_factory):
    network = network_factory()
    network.migrate()
    network.seed()
    slug = random_slug("probe")
    add_partner_association(network, slug)
    partner_probe.create_tables(config.load("events", environ=network.env)["DB_URI"])
    admin = BrokerAdmin(vhost=network.vhost)
    admin.declare_topology()
    password = admin.add_partner(slug)["password"]
    key = signing.generate_key()
    network.start("directory")
    with network.rpc() as rpc:
        rpc.directory.set_public_key(slug, signing.public_key_b64(key))
    network.start("events", service_class=PROBE, rpc_name="probe")
    connection = pika.BlockingConnection(pika.URLParameters(
        f"amqp://{slug}:{quote(password, safe='')}@{BROKER_HOST}:5672/{quote(network.vhost, safe='')}"))
    channel = connection.channel()
    channel.confirm_delivery()

    def send(reason, headers=None):
        data = {**contracts.get(partner_probe.SENT).example, "from_association": slug, "reason": reason}
        envelope = signing.sign(contracts.make(partner_probe.SENT, slug, data), key)
        channel.basic_publish(topology.PARTNERS_INBOUND, f"{slug}.{partner_probe.SENT}", envelope.to_bytes(),
                              pika.BasicProperties(user_id=slug, message_id=envelope.id, delivery_mode=2,
                                                   headers=headers), mandatory=True)
        return envelope.id

    def answers():
        found = []
        while (got := channel.basic_get(topology.partner_queue(slug), auto_ack=True))[0] is not None:
            found.append(parse(got[2]).data)
        return found

    yield network, slug, send, answers
    connection.close()
    admin.revoke_partner(slug)


def applied(network):
    with network.rpc() as rpc:
        return [tuple(row) for row in rpc.probe.applied()]


def test_a_retried_partner_message_is_still_the_partners(partner):
    network, slug, send, answers = partner
    # A partner cannot smuggle the kernel's headers in: stripped at ingress, the broker's user_id is recorded.
    message_id = send("fail-once", headers={"x-tansiq-sender": "amal-safi", "x-tansiq-attempts": 99})
    eventually(lambda: (message_id, slug) in applied(network), message="applied on its retry, as the partner's")
    assert answers() == [] and ops.dead_letters(network.amqp_uri, QUEUE) == []


def test_a_message_that_fails_for_good_is_answered_kept_and_replayed_as_the_partners(partner):
    network, slug, send, answers = partner
    message_id = send("fail-until-healed")
    letters = eventually(lambda: ops.dead_letters(network.amqp_uri, QUEUE), message="dead-lettered after retries")
    assert [(letter["message_id"], letter["reason"], letter["sender"]) for letter in letters] == [
        (message_id, "handler_failed", slug)]
    collected = []
    eventually(lambda: collected.extend(answers()) or collected, message="the partner is told")
    assert [(a["rejected_id"], a["reason"]) for a in collected] == [(message_id, "handler_failed")]

    (network.var / "healed").touch()
    result = network.tansiq("dlq", "replay", QUEUE)
    assert result.returncode == 0, result.stderr
    eventually(lambda: (message_id, slug) in applied(network), message="the replay applies, as the partner's")
    assert ops.dead_letters(network.amqp_uri, QUEUE) == []


def test_an_unbounded_unroutable_queue_of_an_older_version_is_bounded_when_empty_kept_when_not(network_factory):
    from kombu import Connection, Producer, Queue

    from tansiq.messaging.broker import connect, declare_network

    network = network_factory()
    old = Queue(topology.UNROUTABLE_QUEUE, durable=True, queue_arguments={"x-queue-type": "quorum"})
    with Connection(network.amqp_uri) as connection:
        old(connection.default_channel).declare()
        Producer(connection.default_channel).publish(b"kept", exchange="", routing_key=topology.UNROUTABLE_QUEUE)
    with connect(network.amqp_uri) as connection:
        declare_network(connection)  # holds a message: kept as it was, with a warning, and the rest declared
    assert network.queue_depth(topology.UNROUTABLE_QUEUE) == 1
    assert network.queue_depth(topology.PARTNERS_UNHANDLED) == 0
    with Connection(network.amqp_uri) as connection:
        connection.default_channel.queue_purge(topology.UNROUTABLE_QUEUE)
    with connect(network.amqp_uri) as connection:
        declare_network(connection)  # empty: replaced by the bounded one
    admin = BrokerAdmin(vhost=network.vhost)
    arguments = admin._call("GET", f"/queues/{quote(network.vhost, safe='')}/{topology.UNROUTABLE_QUEUE}")["arguments"]
    assert arguments["x-max-length"] == topology.UNROUTABLE_MAX_LENGTH
