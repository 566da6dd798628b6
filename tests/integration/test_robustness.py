"""One failure stays one failure (real broker, services as real processes): a handler over its
time budget is stopped, retried, then dead-lettered; a connection reset before an ack and a
broker lost while replying to an RPC do not end the container."""

import json

import faults
import pytest
from fixtures import probe_service
from harness import eventually
from kombu import Connection, Producer

from tansiq import contracts, ops
from tansiq.messaging import topology

STALL = "tests.fixtures.stall_service:StallService"


@pytest.fixture
def stall(network_factory):
    network = network_factory()
    network.env["TANSIQ_HANDLER_TIME_BUDGET_S"] = "1"
    probe_service.create_tables(f"sqlite:///{network.var}/events.sqlite3")
    network.start("events", service_class=STALL, rpc_name="stall")
    return network


def send(network, city):
    envelope = contracts.make(probe_service.REGISTERED, "amal-safi", probe_service.registered(city))
    with Connection(network.amqp_uri) as connection:
        Producer(connection.default_channel).publish(
            json.dumps(envelope.to_dict()), exchange="", routing_key=topology.consumer_queue("stall"),
            message_id=envelope.id, content_type="application/cloudevents+json", content_encoding="utf-8",
            delivery_mode=2)
    return envelope.id


def call(network, method, *args, timeout=30):
    with network.rpc(timeout=timeout) as cluster:
        return getattr(cluster.stall, method)(*args)


def alive_and_working(network):
    """The process runs, answers RPC, and applies a fresh message exactly once."""
    assert network.procs["events"].poll() is None, network.log("events")
    control = send(network, "Safi")
    eventually(lambda: [control, "Safi"] in call(network, "effects"), timeout=60, message="control applied")


def test_a_handler_over_its_time_budget_is_retried_then_dead_lettered(stall):
    stalled = send(stall, "stall")
    letters = eventually(lambda: ops.dead_letters(stall.amqp_uri, "stall"), timeout=90)
    assert [letter["message_id"] for letter in letters] == [stalled]
    assert letters[0]["reason"] == "handler_failed"
    assert "HandlerTimedOut" in letters[0]["error"] and "time budget" in letters[0]["error"]
    assert call(stall, "attempts", stalled) == 4  # first try and three retries, each stopped
    alive_and_working(stall)


def test_a_handler_that_swallows_the_budgets_stop_is_stopped_again(stall):
    """A broad `except Exception` in a handler's own code catches HandlerTimedOut: the budget throws it again
    each second until the worker is done. Before, the message stayed unacked for as long as the handler ran."""
    stalled = send(stall, "stall-swallowing")
    letters = eventually(lambda: ops.dead_letters(stall.amqp_uri, "stall"), timeout=90)
    assert [(letter["message_id"], letter["reason"]) for letter in letters] == [(stalled, "handler_failed")]
    assert "HandlerTimedOut" in letters[0]["error"]
    assert call(stall, "attempts", stalled) == 4
    alive_and_working(stall)


def test_a_connection_reset_before_the_ack_does_not_end_the_container(stall):
    message_id = send(stall, "reset-before-ack")
    eventually(lambda: [message_id, "reset-before-ack"] in call(stall, "effects"), timeout=90)
    alive_and_working(stall)
    assert [e[0] for e in call(stall, "effects")].count(message_id) == 1
    assert ops.dead_letters(stall.amqp_uri, "stall") == []


def test_losing_the_broker_while_replying_does_not_end_the_container(stall):
    try:
        with pytest.raises(Exception):  # noqa: B017 - the reply never comes (timeout or connection error)
            call(stall, "reply_without_broker", timeout=10)
        eventually(lambda: "could not send the reply" in stall.log("events"), timeout=60)
    finally:
        faults.refuse_connections(stall.vhost, refused=False)
    stall.wait_healthy("events")
    alive_and_working(stall)

