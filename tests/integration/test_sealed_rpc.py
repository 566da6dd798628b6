"""Internal RPC on the real broker is ciphertext (tansiq.transport), and what is not sealed, or sealed
for another call, is refused without stopping the service."""

import json
import pickle
import uuid

import pytest
from fixtures.firehose import firehose
from kombu import Connection, Exchange, Queue

from tansiq import transport
from tansiq.errors import NotFound

RPC_EXCHANGE = Exchange("nameko-rpc", type="topic", passive=True)


@pytest.fixture
def directory(network_factory):
    network = network_factory()
    network.migrate()
    network.start("directory")
    return network


def raw_call(network, routing_key, body, content_type, correlation_id=None, content_encoding="binary"):
    """Publish a request as a broker client would, to a reply queue of ours; the reply's message or None."""
    reply_key = uuid.uuid4().hex
    with Connection(network.amqp_uri) as connection:
        channel = connection.default_channel
        replies = Queue(f"test-replies-{reply_key}", exchange=RPC_EXCHANGE, routing_key=reply_key, exclusive=True,
                        channel=channel)
        replies.declare()
        connection.Producer(channel).publish(
            body, exchange=RPC_EXCHANGE, routing_key=routing_key, reply_to=reply_key,
            correlation_id=correlation_id or uuid.uuid4().hex, content_type=content_type,
            content_encoding=content_encoding)
        with network.rpc(timeout=30) as cluster:  # the service answered, or refused and lived on: it answers this
            assert cluster.directory.health() == "ok"
        return replies.get(no_ack=True)


def test_rpc_requests_and_replies_are_ciphertext_on_the_broker(directory):
    slug = f"Canary{uuid.uuid4().hex[:10]}"
    with firehose(directory) as trace:
        with directory.rpc() as cluster:
            with pytest.raises(NotFound):  # the reply names it: still nobody on the broker reads it
                cluster.directory.get_association(slug)
        if not trace.enabled:
            pytest.skip("rabbitmqctl is needed to trace the broker")
        rpc = [message for message in trace.messages() if "nameko-rpc" in message.routing_key
               or message.headers.get("exchange_name") == "nameko-rpc"]
    assert len(rpc) >= 4, "request and reply, each published and delivered"
    assert {message.headers["properties"].get("content_type") for message in rpc} == {transport.CONTENT_TYPE}
    assert [message.routing_key for message in trace.seen if slug in message.text()] == []


def test_rpc_requests_and_replies_are_transient_on_the_broker(directory):
    """Neither is written to the broker's disk: a request outliving a broker restart would run after its
    caller was told 503 (tansiq.calls), and each write cost the broker CPU on every call."""
    with Connection(directory.amqp_uri) as connection:
        spy = Queue(f"test-spy-{uuid.uuid4().hex}", exchange=RPC_EXCHANGE, routing_key="#", exclusive=True,
                    channel=connection.default_channel)
        spy.declare()
        with directory.rpc() as cluster:
            assert cluster.directory.health() == "ok"
        seen = [message for message in iter(lambda: spy.get(no_ack=True), None)]
    assert [m.delivery_info["routing_key"] for m in seen][0] == "directory.health" and len(seen) == 2  # and reply
    assert [m.properties["delivery_mode"] for m in seen] == [1, 1]


def test_a_request_in_clear_is_refused_and_the_service_lives_on(directory):
    clear = json.dumps({"args": [], "kwargs": {}}).encode()
    assert raw_call(directory, "directory.health", clear, "application/json", content_encoding="utf-8") is None
    undecodable = pickle.dumps({"args": [], "kwargs": {}})  # kombu refuses the content type before nameko sees it
    assert raw_call(directory, "directory.health", undecodable, "application/x-python-serialize") is None
    assert raw_call(directory, "directory.health", b"tq1.00000000.garbage-garbage", transport.CONTENT_TYPE) \
        is not None  # sealed-looking: answered with a (sealed) refusal


def test_a_sealed_request_sent_to_another_method_does_not_open(directory):
    transport.use_key_file(directory.transport_key_file)
    keys = transport.keys()
    correlation_id = uuid.uuid4().hex
    captured = keys.seal(json.dumps({"args": [], "kwargs": {}}).encode(),
                         transport.binding("nameko-rpc", "directory.health", "someone-else", correlation_id))
    reply = raw_call(directory, "directory.list_associations", captured, transport.CONTENT_TYPE,
                     correlation_id=correlation_id)
    assert reply.content_type == transport.CONTENT_TYPE
    answer = json.loads(keys.open(reply.body, transport.binding("nameko-rpc", reply.delivery_info["routing_key"],
                                                                None, correlation_id)))
    assert answer["result"] is None and answer["error"]["exc_type"] == "TransportRefused"


def test_a_rotated_transport_key_is_taken_up_by_a_running_service(directory):
    with directory.rpc() as cluster:  # the service holds the first key
        assert cluster.directory.health() == "ok"
    new_kid = transport.rotate(directory.transport_key_file)
    transport.use_key_file(directory.transport_key_file)  # this client now seals with the new key
    assert transport.keys().current == new_kid
    with directory.rpc() as cluster:  # the running service reads the file again, opens it, answers
        assert cluster.directory.health() == "ok"
    assert "refused RPC request" not in directory.log("directory")
