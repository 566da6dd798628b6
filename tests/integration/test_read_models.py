"""No synchronous chains on the write path (issue 12, item 2), through the real broker and processes.

Every RPC request the services send is copied to a spy queue bound to nameko's RPC exchange, with its
`nameko.call_id_stack` header: the chain of calls it is part of, the user's request first. The referral
loop and the intake flow through the API must make no chain longer than two calls and none to the
directory; what they need from it comes from their read models (tansiq.readmodel), and a change made
in the directory (a staff member deactivated, a key rotated, an association renamed) reaches them.
"""

import re
import signal
import uuid
from urllib.parse import quote

import pika
import pytest
import requests
from fixtures.referral_network import Api, Partner
from harness import Network, add_partner_association, admin, eventually, random_slug

from tansiq import sealing, signing
from tansiq.messaging import topology

SERVICES = ("directory", "intake", "referrals", "notifications", "gateway")
RPC_EXCHANGE = "nameko-rpc"
REQUEST = re.compile(r"^(?P<service>[a-z_]+)\.(?P<method>[a-z_]+)$")  # replies are routed by a uuid
SAFI, MARRAKECH = "amal-safi", "wafae-marrakech"
STAFF = {"fatima": "fatima@amal-safi.example", "naima": "naima@wafae.example", "salma": "salma@wafae.example"}


@pytest.fixture(scope="module")
def network(broker_admin):
    network = Network()
    partner = None
    try:
        network.migrate()
        network.seed()
        slug = random_slug("nour")
        add_partner_association(network, slug)
        partner = network.partner = Partner(network, slug)
        network.start(*SERVICES)
        with network.rpc() as rpc:
            rpc.directory.set_public_key(slug, signing.public_key_b64(partner.key))
        network.staff = {name: network.login(email) for name, email in STAFF.items()}
        yield network
    finally:
        if partner is not None:
            partner.close()
        network.close()


class RpcSpy:
    """A copy of every RPC request on the vhost, with the chain of calls it belongs to."""

    def __init__(self, network):
        self.connection = pika.BlockingConnection(pika.URLParameters(network.amqp_uri))
        self.channel = self.connection.channel()
        self.queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.queue_bind(self.queue, RPC_EXCHANGE, "#")

    def calls(self):
        """[(service, method, call_id_stack)] of the requests seen so far."""
        calls = []
        while True:
            method, properties, _ = self.channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                return calls
            request = REQUEST.match(method.routing_key)
            if request:
                stack = (properties.headers or {}).get("nameko.call_id_stack") or []
                calls.append((request["service"], request["method"], [str(call) for call in stack]))

    def close(self):
        self.connection.close()


def chains(calls):
    """{the user's request (first call id of the stack): [(depth, "service.method"), …]}."""
    found = {}
    for service, method, stack in calls:
        found.setdefault(stack[0] if stack else "?", []).append((len(stack), f"{service}.{method}"))
    return found


def unique_phone():
    return "06" + str(uuid.uuid4().int)[:8]


def test_the_referral_loop_and_intake_make_at_most_two_hops_and_none_to_the_directory(network):
    fatima, naima = Api(network, "fatima"), Api(network, "naima")
    spy = RpcSpy(network)
    try:
        beneficiary = fatima.register("Salma", "Idrissi", unique_phone())
        fatima.ok(fatima.get(f"/api/beneficiaries/{beneficiary}"))
        fatima.ok(fatima.post(f"/api/beneficiaries/{beneficiary}/sessions", {"orientation": "Écoute", "needs": [
            "legal_orientation"]}), 201)
        fatima.consent(beneficiary, ["first_name", "phone"], recipient=MARRAKECH)
        sent = fatima.ok(fatima.refer(beneficiary, MARRAKECH, ["first_name", "phone"]), 201)
        fatima.ok(fatima.get("/api/directory/services", params={"category": "legal_orientation"}))
        assert sent["id"] in {r["id"] for r in naima.received()}
        for action in ("acknowledge", "accept", "start"):
            naima.ok(naima.act(sent["id"], action))
        naima.ok(naima.act(sent["id"], "complete", outcome="Accompagnée."))
        assert fatima.referral(sent["id"])["state"] == "completed"
        naima.ok(naima.get("/api/inbox"))
        calls = spy.calls()
    finally:
        spy.close()

    by_request = chains(calls)
    assert len(by_request) >= 12, by_request  # every request above was seen (the spy can see them)
    deepest = max(depth for chain in by_request.values() for depth, _ in chain)
    assert deepest == 2, by_request  # the referral's chain: gateway -> referrals -> intake, and no deeper
    assert (2, "intake.prepare_referral_share") in by_request[next(
        request for request, chain in by_request.items() if (1, "referrals.create_referral") in chain)]
    assert not [call for call in calls if call[0] == "directory"], calls  # the read models answered


def test_directory_changes_reach_the_read_models_and_take_effect(network):
    fatima, salma = Api(network, "fatima"), Api(network, "salma")
    partner = network.partner

    # A key rotated in the directory: referrals seal the next referral to the partner to the new key.
    for key in (sealing.generate_private_key(), sealing.generate_private_key()):
        with network.rpc() as rpc:
            rpc.directory.set_encryption_key(partner.slug, sealing.public_key_b64(key))
        partner.client.encryption_key = key
        eventually(lambda: _refer_sealed_to_current_key(fatima, partner), timeout=30,
                   message="a referral sealed to the key just published")

    # An association renamed in the directory: the gateway's pages name it anew.
    renamed = f"Association Nour {uuid.uuid4().hex[:6]}"
    _rename(network, partner.slug, renamed)
    eventually(lambda: renamed in fatima.get("/calendar?lang=fr").text, message="the new name on the calendar page")

    # A staff member deactivated by her admin through the gateway: refused on her very next request.
    naima = network.login(STAFF["naima"])
    assert naima.get(f"{network.web}/api/me", timeout=30).status_code == 200
    naima_id = naima.get(f"{network.web}/api/me", timeout=30).json()["id"]
    assert salma.post(f"/api/staff/{naima_id}/deactivate").status_code == 200
    assert naima.get(f"{network.web}/api/me", timeout=30).status_code == 401
    assert network.staff["naima"].get(f"{network.web}/api/me", timeout=30).status_code == 401

    # Deactivated in the directory itself (an operator's tool): the change reaches the gateway.
    hanane = network.login("hanane@amal-safi.example")
    hanane_id = hanane.get(f"{network.web}/api/me", timeout=30).json()["id"]
    with network.rpc() as rpc:
        rpc.directory.deactivate_staff(hanane_id)
    eventually(lambda: hanane.get(f"{network.web}/api/me", timeout=30).status_code == 401,
               message="her session ended by the directory's change")


def test_a_read_model_cut_from_the_broker_binds_a_new_queue_and_catches_up(network):
    broker = admin(network.vhost)
    youssef = network.login("youssef@amal-safi.example")
    assert youssef.get(f"{network.web}/api/me", timeout=30).status_code == 200
    [before] = eventually(lambda: _feed_queues(broker, "gateway"), message="the gateway's read-model queue")
    connections = eventually(lambda: _consumer_connections(broker, before), message="its consumer's connection")
    for name in connections:
        broker._call("DELETE", f"/connections/{quote(name, safe='')}")
    with network.rpc() as rpc:  # made while (or just after) the gateway's feed is cut
        rpc.directory.deactivate_staff(youssef.get(f"{network.web}/api/me", timeout=30).json()["id"])
    eventually(lambda: (queues := _feed_queues(broker, "gateway")) and before not in queues,
               message="a new queue once reconnected")
    eventually(lambda: youssef.get(f"{network.web}/api/me", timeout=30).status_code == 401,
               message="the deactivation known through the new snapshot or the feed")


def test_a_change_the_read_model_cannot_read_makes_it_take_a_new_snapshot(network):
    broker = admin(network.vhost)
    [before] = eventually(lambda: _feed_queues(broker, "referrals"), message="the referrals' read-model queue")
    connection = pika.BlockingConnection(pika.URLParameters(network.amqp_uri))
    try:
        connection.channel().basic_publish(topology.EVENTS_EXCHANGE, "ma.tansiq.directory.staff_changed.v1",
                                           b'{"not": "an envelope"}')
    finally:
        connection.close()
    eventually(lambda: (queues := _feed_queues(broker, "referrals")) and before not in queues,
               message="a new queue and snapshot after an unreadable change")
    assert network.answers("referrals")


def test_sessions_and_partner_keys_need_no_directory_call(network):
    """Sessions and partners' signatures are checked on the read models alone: with the directory stopped, a
    forged token is refused, a session just opened elsewhere works, a partner's signed answer is taken."""
    fatima, partner = Api(network, "fatima"), network.partner
    key = sealing.generate_private_key()  # the partner's own, published: what referrals to it are sealed to
    with network.rpc() as rpc:
        rpc.directory.set_encryption_key(partner.slug, sealing.public_key_b64(key))
    partner.client.encryption_key = key
    eventually(lambda: _refer_sealed_to_current_key(fatima, partner), timeout=30, message="the key in the models")
    beneficiary = fatima.register("Imane", "Tazi", unique_phone())
    fatima.consent(beneficiary, ["first_name"], recipient=partner.slug)
    referral_id = fatima.ok(fatima.refer(beneficiary, partner.slug, ["first_name"]), 201)["id"]
    partner.about(referral_id, "sent")
    with network.rpc() as rpc:  # signed in as through another gateway: this one hears of it by the feed only
        opened = rpc.directory.sign_in(STAFF["fatima"], "tansiq-demo", "127.0.0.1")
    elsewhere = {"Authorization": f"Bearer {opened['token']}"}
    # Known through the feed (a loaded machine may take longer than the gateway's one-second grace).
    me = eventually(lambda: (answer := requests.get(f"{network.web}/api/me", headers=elsewhere, timeout=30))
                    .status_code == 200 and answer, message="the session opened elsewhere, from the feed")
    assert me.json()["id"] == "s-safi-1"
    network.kill("directory", signal.SIGTERM)
    try:
        forged = requests.get(f"{network.web}/api/me", headers={"Authorization": f"Bearer {'x' * 43}"}, timeout=30)
        assert forged.status_code == 401, forged.text
        assert requests.get(f"{network.web}/api/me", headers=elsewhere, timeout=30).status_code == 200
        partner.send("acknowledged", {"referral_id": referral_id, "from_association": SAFI,
                                      "to_association": partner.slug})
        eventually(lambda: fatima.referral(referral_id)["state"] == "received", timeout=30,
                   message="the partner's signed answer, checked with the directory stopped")
    finally:
        network.start("directory")


def _feed_queues(broker, service):
    prefix = topology.read_model_queue_prefix(service)
    return [queue["name"] for queue in broker._call("GET", f"/queues/{quote(broker.vhost, safe='')}")
            if queue["name"].startswith(prefix)]


def _consumer_connections(broker, queue):
    details = broker._call("GET", f"/queues/{quote(broker.vhost, safe='')}/{quote(queue, safe='')}")
    # The management API writes channel_details as [] until its stats for the channel arrive.
    return [consumer["channel_details"]["connection_name"] for consumer in details.get("consumer_details", [])
            if isinstance(consumer.get("channel_details"), dict) and consumer["channel_details"].get("connection_name")]


def _refer_sealed_to_current_key(fatima, partner):
    """A new referral to the partner, opened with the key its client now holds (one try of `eventually`)."""
    beneficiary = fatima.register("Hafsa", "Lamrani", unique_phone())
    fatima.consent(beneficiary, ["first_name"], recipient=partner.slug)
    sent = fatima.ok(fatima.refer(beneficiary, partner.slug, ["first_name"]), 201)
    envelope, _ = partner.about(sent["id"], "sent")
    try:
        return partner.client.open_sealed(envelope)["shared"] == {"first_name": "Hafsa"}
    except Exception:  # noqa: BLE001 - sealed to the previous key: the change has not arrived yet
        return False


def _rename(network, slug, name_fr):
    from services.directory import domain
    from tansiq import config
    from tansiq.db import make_engine, session_scope

    engine = make_engine(config.load("directory", environ=network.env)["DB_URI"])
    with session_scope(engine) as session:
        association = domain.get_association(session, slug)
        domain.upsert_association(session, {"slug": slug, "name_ar": association.name_ar, "name_fr": name_fr,
                                            "city": association.city})
    engine.dispose()


def test_events_wait_for_a_restarted_services_read_model_without_spending_their_attempts():
    """A service whose handlers read the directory model does not hand a message to a worker before the model
    has loaded: the worker would wait for it past its time budget (1 s here) and the message would be
    dead-lettered once its attempts were spent. It goes round the retry queues, spending none, until then.
    An erasure, whose handler reads no directory, is not held back."""
    from kombu import Connection, Producer
    from sqlalchemy import func, select

    from services.notifications.models import InboxItem
    from tansiq import config, contracts, ops
    from tansiq.db import make_engine, session_scope
    from tansiq.messaging.store import InboxMessage

    engine = None

    def handled(envelope):
        with session_scope(engine) as session:
            return session.scalar(select(func.count()).select_from(InboxMessage).where(
                InboxMessage.message_id == envelope.id))

    network = Network()
    network.env["TANSIQ_HANDLER_TIME_BUDGET_S"] = "1"
    try:
        network.migrate()
        network.seed()
        network.start("directory", "notifications")
        directory = network.procs["directory"]
        directory.send_signal(signal.SIGSTOP)  # it is there (its queue consumed), but answers no snapshot
        try:
            network.kill("notifications")
            network.start("notifications")
            engine = make_engine(config.load("notifications", environ=network.env)["DB_URI"])
            sent = contracts.make("ma.tansiq.referral.sent.v1", SAFI, {
                **contracts.get("ma.tansiq.referral.sent.v1").example, "referral_id": random_slug("r")})
            erased = contracts.make("ma.tansiq.beneficiary.erased.v1", "intake",
                                    contracts.get("ma.tansiq.beneficiary.erased.v1").example)
            with Connection(network.amqp_uri) as connection:
                for envelope in (sent, erased):
                    Producer(connection.default_channel).publish(
                        envelope.to_bytes(), exchange="", routing_key=topology.consumer_queue("notifications"),
                        message_id=envelope.id, content_type="application/cloudevents+json", delivery_mode=2)
            eventually(lambda: handled(erased), message="the erasure handled while the model has not loaded")
            rounds = len(topology.RETRY_DELAYS_MS) + 2  # more than the attempts a message has
            eventually(lambda: network.log("notifications").count(f"message {sent.id} waits") >= rounds,
                       message=f"the event waited {rounds} times")
            assert f"message {erased.id} waits" not in network.log("notifications")
        finally:
            directory.send_signal(signal.SIGCONT)

        def told():
            with session_scope(engine) as session:
                return session.scalar(select(func.count()).select_from(InboxItem).where(
                    InboxItem.source_message_id == sent.id))

        eventually(told, message="the recipient's case workers told, once the model loaded")
        assert ops.dead_letters(network.amqp_uri, "notifications") == []
    finally:
        if engine is not None:
            engine.dispose()
        network.close()
