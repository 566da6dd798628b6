"""The kernel's confirmed publisher against the real broker: pipelined confirms, returns, order."""

import json

from kombu import Connection

from tansiq.messaging import topology
from tansiq.messaging.broker import ConfirmedPublisher, connect, declare


def test_a_batch_is_confirmed_in_order_and_a_returned_message_is_not_counted_as_sent(network_factory):
    network = network_factory()
    with connect(network.amqp_uri) as connection:
        declare(connection, topology.service_queues("batch", ["ma.tansiq.beneficiary.registered.v1"]))
    publisher = ConfirmedPublisher(network.amqp_uri)
    batch = [(json.dumps({"n": n}).encode(), topology.EVENTS_EXCHANGE, "ma.tansiq.beneficiary.registered.v1",
              f"m-{n}") for n in range(300)]
    batch.insert(150, (b"{}", "", "no-such-queue", "lost-in-the-void"))  # no queue, no alternate exchange
    try:
        confirmed = publisher.publish_many(batch)
        # The next batches go out on the same confirm channel, its delivery tags counting on: each batch
        # is still judged on its own messages (a return in one is not a loss in another).
        later = [[(json.dumps({"n": n}).encode(), topology.EVENTS_EXCHANGE, "ma.tansiq.beneficiary.registered.v1",
                   f"m-{n}") for n in range(start, start + 7)] for start in (300, 307)]
        later[0].insert(3, (b"{}", "", "no-such-queue", "lost-again"))
        confirmed += publisher.publish_many(later[0]) + publisher.publish_many(later[1])
        publisher.close()  # a new connection and channel after a close: tags from 1 again
        confirmed += publisher.publish_many([(b'{"n": 314}', topology.EVENTS_EXCHANGE,
                                              "ma.tansiq.beneficiary.registered.v1", "m-314")])
    finally:
        publisher.close()
    assert confirmed == [f"m-{n}" for n in range(315)]
    received = []
    with Connection(network.amqp_uri) as connection:
        channel = connection.channel()
        while (message := channel.basic_get("batch.events", no_ack=True)) is not None:
            received.append(json.loads(message.body)["n"])
    assert received == list(range(315))
