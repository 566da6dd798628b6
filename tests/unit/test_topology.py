"""The broker topology exists once, in code; the committed RabbitMQ definitions must match it."""

import json

from tansiq import ops
from tansiq.config import ROOT
from tansiq.messaging import topology


def test_committed_definitions_match_the_code(tmp_path):
    generated = ops.export_definitions(tmp_path / "definitions.json")
    committed = json.loads((ROOT / "deploy" / "rabbitmq" / "definitions.json").read_text())
    assert committed == json.loads(json.dumps(generated)), "run `tansiq topology export` and commit the result"


def test_every_consumed_queue_has_retries_and_a_dead_letter_queue():
    queues = {queue.name: queue for queue in topology.service_queues("intake", ["ma.tansiq.x.y.v1"])}
    main = queues["intake.events"]
    assert main.arguments["x-queue-type"] == "quorum"
    assert main.arguments["x-dead-letter-routing-key"] == "intake.events.dlq"  # poison guard of the broker
    for attempt, delay in enumerate(topology.RETRY_DELAYS_MS, start=1):
        retry = queues[f"intake.events.retry.{attempt}"]
        assert retry.arguments == {"x-message-ttl": delay, "x-dead-letter-exchange": "",
                                   "x-dead-letter-routing-key": "intake.events"}
    assert "intake.events.dlq" in queues


def test_every_topic_exchange_has_the_alternate_exchange():
    for exchange in topology.exchanges():
        if exchange.type == "topic":
            assert exchange.arguments["alternate-exchange"] == topology.UNROUTABLE_EXCHANGE


def test_the_topology_tables_are_what_the_services_consume():
    events, partners = ops.service_bindings()
    assert {service: sorted(types) for service, types in topology.EVENT_BINDINGS.items()} == events
    assert {service: sorted(types) for service, types in topology.PARTNER_BINDINGS.items()} == partners


def test_every_partner_message_has_a_queue_and_the_unroutable_queue_is_bounded():
    queues = {queue.name: queue for queue in topology.network_queues()}
    assert (topology.PARTNERS_INBOUND, "#") in queues[topology.PARTNERS_UNHANDLED].bindings
    assert f"{topology.PARTNERS_UNHANDLED}.dlq" in queues
    unroutable = queues[topology.UNROUTABLE_QUEUE].arguments
    assert unroutable["x-max-length"] == topology.UNROUTABLE_MAX_LENGTH
    assert unroutable["x-overflow"] == "reject-publish"  # full: the publisher is nacked and keeps the message
