"""The messaging kernel through the real broker: nothing lost, nothing done twice, bad input contained."""

import json
import uuid

import pytest
from fixtures import probe_service
from harness import eventually
from kombu import Connection, Producer

from tansiq import contracts, ops
from tansiq.messaging import topology

PROBE = "tests.fixtures.probe_service:ProbeService"


@pytest.fixture
def probe(network_factory):
    network = network_factory()
    probe_service.create_tables(f"sqlite:///{network.var}/events.sqlite3")
    network.start("events", service_class=PROBE, rpc_name="probe")
    network.probe = "events"
    return network


def send_raw(network, body, message_id=None, content_type="application/cloudevents+json"):
    with Connection(network.amqp_uri) as connection:
        producer = Producer(connection.default_channel)
        producer.publish(body, exchange="", routing_key=topology.consumer_queue("probe"),
                         message_id=message_id or str(uuid.uuid4()), content_type=content_type,
                         content_encoding="utf-8", delivery_mode=2)


def registered(city, **overrides):
    envelope = contracts.make(probe_service.REGISTERED, "amal-safi", probe_service.registered(city))
    body = envelope.to_dict()
    body.update(overrides)
    return envelope, json.dumps(body)


def effects(network):
    with network.rpc() as cluster:
        return cluster.probe.effects()


def dead_letters(network):
    return ops.dead_letters(network.amqp_uri, "probe")


def test_bad_input_is_dead_lettered_with_a_reason_and_the_service_keeps_working(probe):
    send_raw(probe, b"{not json", message_id="broken")
    send_raw(probe, registered("Safi", type="ma.tansiq.unheard_of.thing.v1")[1], message_id="unknown-type")
    bad_schema = registered("Safi")[1].replace('"urgency": "normal"', '"urgency": "whenever"')
    send_raw(probe, bad_schema, message_id="bad-schema")
    send_raw(probe, b"[1, 2]", message_id="not-an-object", content_type="text/plain")
    good, body = registered("Safi")
    send_raw(probe, body, message_id=good.id)

    eventually(lambda: (good.id, "Safi") in map(tuple, effects(probe)), message="good message after bad ones")
    letters = eventually(lambda: len(dead_letters(probe)) == 4 and dead_letters(probe))
    reasons = {letter["message_id"]: letter["reason"] for letter in letters}
    assert reasons == {"broken": "malformed_json", "unknown-type": "unknown_type",
                       "bad-schema": "schema_invalid", "not-an-object": "malformed_json"}
    assert letters[0]["body"] == "{not json"  # kept as received, for inspection


def test_the_same_message_delivered_twice_has_one_effect(probe):
    envelope, body = registered("Marrakech")
    send_raw(probe, body, message_id=envelope.id)
    send_raw(probe, body, message_id=envelope.id)
    later, later_body = registered("Agadir")
    send_raw(probe, later_body, message_id=later.id)  # processed after both copies
    eventually(lambda: (later.id, "Agadir") in map(tuple, effects(probe)))
    assert [tuple(e) for e in effects(probe)].count((envelope.id, "Marrakech")) == 1


def test_a_failing_handler_is_retried_then_dead_lettered_and_the_message_kept(probe):
    envelope, body = registered("fail-always")
    send_raw(probe, body, message_id=envelope.id)
    letters = eventually(lambda: dead_letters(probe), timeout=60)
    assert letters[0]["message_id"] == envelope.id
    assert letters[0]["reason"] == "handler_failed"
    assert "probe failure for fail-always" in letters[0]["error"]
    assert letters[0]["attempts"] == 4  # the first try and three retries
    with probe.rpc() as cluster:
        assert cluster.probe.attempts(envelope.id) == 4
    assert json.loads(letters[0]["body"])["id"] == envelope.id


def test_a_handler_that_recovers_succeeds_on_retry_with_one_effect(probe):
    envelope, body = registered("fail-twice")
    send_raw(probe, body, message_id=envelope.id)
    eventually(lambda: (envelope.id, "fail-twice") in map(tuple, effects(probe)), timeout=60)
    with probe.rpc() as cluster:
        assert cluster.probe.attempts(envelope.id) == 3
    assert dead_letters(probe) == []


def test_dead_letters_can_be_replayed(probe):
    envelope, body = registered("fail-always")
    send_raw(probe, body, message_id=envelope.id)
    eventually(lambda: dead_letters(probe), timeout=60)
    assert ops.replay(probe.amqp_uri, "probe") == 1
    eventually(lambda: probe_attempts(probe, envelope.id) == 8, timeout=60, message="replayed and retried again")
    eventually(lambda: len(dead_letters(probe)) == 1, timeout=60)


def probe_attempts(network, message_id):
    with network.rpc() as cluster:
        return cluster.probe.attempts(message_id)


def test_a_service_killed_between_commit_and_publish_publishes_after_restart(probe):
    with pytest.raises(Exception):  # noqa: B017 - the worker dies: a timeout or a lost reply, either will do
        with probe.rpc(timeout=5) as cluster:
            cluster.probe.commit_then_die("Essaouira")
    probe.procs["events"].wait(timeout=30)
    assert probe.procs["events"].returncode == -9
    probe.procs.pop("events")
    import sqlite3

    rows = sqlite3.connect(probe.var / "events.sqlite3").execute("select state from outbox").fetchall()
    assert rows == [("pending",)], "the message was committed but not published before the kill"

    # nameko acks an RPC request only after replying: the fatal request is still queued and
    # would kill the new process too. Drop it, as an operator would drop a poison request.
    with probe.connection() as connection:
        connection.default_channel.queue_purge("rpc-probe")
    probe.start("events", service_class=PROBE, rpc_name="probe")
    eventually(lambda: any(city == "Essaouira" for _, city in effects(probe)), timeout=60)
    rows = sqlite3.connect(probe.var / "events.sqlite3").execute("select state from outbox").fetchall()
    assert rows == [("sent",)]


def test_an_unroutable_message_goes_to_the_alternate_exchange_and_is_counted(probe):
    with Connection(probe.amqp_uri) as connection:  # a type no service of the network consumes
        Producer(connection.default_channel).publish(b"{}", exchange=topology.EVENTS_EXCHANGE,
                                                     routing_key="ma.tansiq.nobody.listens.v1", delivery_mode=2)
    eventually(lambda: probe.queue_depth(topology.UNROUTABLE_QUEUE) == 1)
    status = probe.tansiq("status", "--broker-only")
    assert "unroutable 1" in status.stdout and "WARNING" in status.stdout


def test_the_whole_topology_exists_before_the_first_publish(probe):
    # Only the probe runs, yet every service's queue is there: what the relay publishes for a
    # service that starts later waits in its queue instead of going unroutable.
    with probe.rpc() as cluster:
        cluster.probe.publish("Rabat", "ma.tansiq.event.overlap_detected.v1")  # consumed by notifications
    eventually(lambda: probe.queue_depth(topology.consumer_queue("notifications")) == 1)
    for queue in topology.network_queues():
        probe.queue_depth(queue.name)  # raises if it was not declared
    assert probe.queue_depth(topology.UNROUTABLE_QUEUE) == 0


def test_a_first_start_leaves_nothing_unroutable_whatever_starts_first(network_factory):
    # The demo's association.registered and event.published are relayed as soon as directory and
    # events start; notifications, which consumes them, is not running yet.
    network = network_factory()
    network.migrate()
    network.seed()
    network.start("directory", "events")
    eventually(lambda: network.queue_depth(topology.consumer_queue("notifications")) >= 2, timeout=60,
               message="the demo's messages wait in the queue of the service that starts later")
    status = network.tansiq("status", "--broker-only")
    assert "unroutable 0" in status.stdout and "WARNING" not in status.stdout
