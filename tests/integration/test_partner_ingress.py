"""A partner message keeps its sender across retries and a replay from the dead-letter queue, and a
message that fails for good is answered too (real broker, real directory, a probe partner handler)."""

import signal
from urllib.parse import quote

import pika
import pytest
from fixtures import partner_probe
from harness import BROKER_HOST, Network, add_partner_association, eventually, random_slug

from tansiq import config, contracts, ops, signing
from tansiq.broker_admin import BrokerAdmin
from tansiq.envelope import parse
from tansiq.messaging import topology

PROBE = "tests.fixtures.partner_probe:PartnerProbeService"
QUEUE = topology.partner_inbound_queue("probe")


class ProbePartner:
    """A provisioned partner publishing with pika (confirms on), reading the answers on its own queue."""

    def __init__(self, network, prefix):
        self.slug = random_slug(prefix)
        add_partner_association(network, self.slug)
        self.admin = BrokerAdmin(vhost=network.vhost)
        self.admin.declare_topology()
        password = self.admin.add_partner(self.slug)["password"]
        self.key = signing.generate_key()
        self.connection = pika.BlockingConnection(pika.URLParameters(
            f"amqp://{self.slug}:{quote(password, safe='')}@{BROKER_HOST}:5672/{quote(network.vhost, safe='')}"))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()

    def register_key(self, network):
        with network.rpc() as rpc:
            rpc.directory.set_public_key(self.slug, signing.public_key_b64(self.key))

    def send(self, reason, headers=None, **data):
        example = {key: value for key, value in contracts.get(partner_probe.SENT).example.items() if key != "sealed"}
        data = {**example, "referral_id": random_slug("r"),
                "from_association": self.slug, "reason": reason, **data}
        envelope = signing.sign(contracts.make(partner_probe.SENT, self.slug, data), self.key)
        self.channel.basic_publish(topology.PARTNERS_INBOUND, f"{self.slug}.{partner_probe.SENT}",
                                   envelope.to_bytes(), pika.BasicProperties(
                                       user_id=self.slug, message_id=envelope.id, delivery_mode=2, headers=headers),
                                   mandatory=True)
        return envelope.id

    def answers(self):
        found = []
        while (got := self.channel.basic_get(topology.partner_queue(self.slug), auto_ack=True))[0] is not None:
            envelope = parse(got[2])
            if envelope.type == "ma.tansiq.message.rejected.v1":
                found.append(envelope.data)
        return found

    def close(self):
        self.connection.close()
        self.admin.revoke_partner(self.slug)


@pytest.fixture(scope="module")
def network(broker_admin):
    """One network for the module: the directory, the referrals service and the probe partner handler."""
    network = Network()
    try:
        network.migrate()
        network.seed()
        partner_probe.create_tables(config.load("events", environ=network.env)["DB_URI"])
        network.start("directory", "intake", "referrals")  # referrals waits for intake, which it calls
        network.start("events", service_class=PROBE, rpc_name="probe")
        yield network
    finally:
        network.close()


@pytest.fixture
def partner(network):
    probe = ProbePartner(network, "probe")
    probe.register_key(network)
    yield network, probe.slug, probe.send, probe.answers
    probe.close()


def letter_ids(network, queue):
    return [letter["message_id"] for letter in ops.dead_letters(network.amqp_uri, queue)]


def applied(network):
    with network.rpc() as rpc:
        return [tuple(row) for row in rpc.probe.applied()]


def test_a_retried_partner_message_is_still_the_partners(partner):
    network, slug, send, answers = partner
    # A partner cannot smuggle the kernel's headers in: stripped at ingress, the broker's user_id is recorded.
    message_id = send("fail-once", headers={"x-tansiq-sender": "amal-safi", "x-tansiq-attempts": 99})
    eventually(lambda: (message_id, slug) in applied(network), message="applied on its retry, as the partner's")
    assert answers() == [] and message_id not in letter_ids(network, QUEUE)


def test_a_message_that_fails_for_good_is_answered_kept_and_replayed_as_the_partners(partner):
    network, slug, send, answers = partner
    message_id = send("fail-until-healed")
    letters = eventually(lambda: [x for x in ops.dead_letters(network.amqp_uri, QUEUE)
                                  if x["message_id"] == message_id],
                         message="dead-lettered after retries")
    assert [(letter["message_id"], letter["reason"], letter["sender"]) for letter in letters] == [
        (message_id, "handler_failed", slug)]
    collected = []
    eventually(lambda: collected.extend(answers()) or collected, message="the partner is told")
    assert [(a["rejected_id"], a["reason"]) for a in collected] == [(message_id, "handler_failed")]

    (network.var / "healed").touch()
    result = network.tansiq("dlq", "replay", QUEUE)
    assert result.returncode == 0, result.stderr
    eventually(lambda: (message_id, slug) in applied(network), message="the replay applies, as the partner's")
    assert message_id not in letter_ids(network, QUEUE)


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


def test_a_referral_id_another_partner_used_is_answered_duplicate_id_not_dropped(network):
    first, second = ProbePartner(network, "nour"), ProbePartner(network, "amane")
    try:
        first.register_key(network)
        second.register_key(network)
        referral = {"referral_id": random_slug("r"), "to_association": "wafae-marrakech"}

        case_worker = network.assertion({"id": "s-wafae-cw", "association": "wafae-marrakech",
                                         "roles": ["case_worker"]}, "referrals")

        def received():
            with network.rpc() as rpc:
                return [r for r in rpc.referrals.list_referrals(case_worker, "received")
                        if r["id"] == referral["referral_id"]]

        first.send("Besoin d'une avocate", **referral)
        eventually(received, message="applied")
        reused = second.send("Une autre femme", **referral)
        collected = []
        eventually(lambda: collected.extend(second.answers()) or collected, message="the second partner is told")
        assert [(a["rejected_id"], a["reason"]) for a in collected] == [(reused, "duplicate_id")]
        [kept] = received()
        assert kept["from_association"] == first.slug
        assert [x["reason"] for x in ops.dead_letters(network.amqp_uri, "referrals.partners")
                if x["message_id"] == reused] == ["duplicate_id"]
    finally:
        first.close()
        second.close()


def test_a_sealed_value_the_recipient_cannot_open_is_answered_and_breaks_no_list(network):
    partner = ProbePartner(network, "sceau")
    try:
        partner.register_key(network)
        case_worker = network.assertion({"id": "s-wafae-cw", "association": "wafae-marrakech",
                                         "roles": ["case_worker"]}, "referrals")
        bogus = contracts.get(partner_probe.SENT).example["sealed"]  # well formed, sealed to no real key
        rejected = partner.send("Besoin d'une avocate", to_association="wafae-marrakech", sealed=bogus)
        collected = []
        eventually(lambda: collected.extend(partner.answers()) or collected, message="the partner is told")
        assert [(a["rejected_id"], a["reason"]) for a in collected] == [(rejected, "sealed_unreadable")]
        with network.rpc() as rpc:  # the recipient's list still opens
            assert isinstance(rpc.referrals.list_referrals(case_worker, "received"), list)
    finally:
        partner.close()


def test_a_partner_referral_waits_for_a_restarted_service_while_the_directory_is_down_however_long(network):
    """A service restarted while the directory does not answer has no read model to check a partner's
    signature with. Its messages wait, round the longest retry queue, without spending their attempts:
    before, they were dead-lettered and answered handler_failed once the attempts were spent (31 s deployed).
    The directory is paused (SIGSTOP), not stopped: the restarted service starts (it sees the directory's
    queue consumed) and its snapshot waits, as when the directory dies between the two."""
    sender = ProbePartner(network, "hayat")
    directory = network.procs["directory"]
    try:
        sender.register_key(network)
        # Its key announced before the pause: the probe service's read model must know this partner too.
        eventually(lambda: directory_outbox_pending(network) == 0, message="the directory announced the key")
        directory.send_signal(signal.SIGSTOP)
        network.kill("referrals")
        network.start("referrals")
        referral = {"referral_id": random_slug("r"), "to_association": "wafae-marrakech"}
        message_id = sender.send("Hébergement d'urgence", **referral)
        rounds = len(topology.RETRY_DELAYS_MS) + 2  # more than the attempts a message has
        eventually(lambda: network.log("referrals").count(f"message {message_id} waits") >= rounds,
                   message=f"the message waited {rounds} times without being dead-lettered")
        assert sender.answers() == []
        assert message_id not in letter_ids(network, "referrals.partners")
        directory.send_signal(signal.SIGCONT)
        case_worker = network.assertion({"id": "s-wafae-cw", "association": "wafae-marrakech",
                                         "roles": ["case_worker"]}, "referrals")

        def received():
            with network.rpc() as rpc:
                return [r["id"] for r in rpc.referrals.list_referrals(case_worker, "received")
                        if r["id"] == referral["referral_id"]]

        assert eventually(received, message="applied once the directory is back") == [referral["referral_id"]]
        assert sender.answers() == []
    finally:
        directory.send_signal(signal.SIGCONT)
        if "referrals" not in network.procs:
            network.start("referrals")
        sender.close()


def directory_outbox_pending(network):
    from sqlalchemy import func, select

    from tansiq.db import make_engine, session_scope
    from tansiq.messaging.store import PENDING, OutboxMessage

    engine = make_engine(config.load("directory", environ=network.env)["DB_URI"])
    try:
        with session_scope(engine) as session:
            return session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state == PENDING))
    finally:
        engine.dispose()
