"""A batch is acked with one `multiple` ack only when that acks nothing but the batch."""

from kombu.message import Message

from tansiq.messaging.consumer import RawQueueConsumer


class RecordingChannel:
    """The edge of the broker: records the acks a channel would send."""

    connection = True
    no_ack_consumers = None

    def __init__(self):
        self.acks = []

    def basic_ack(self, delivery_tag, multiple=False):
        self.acks.append((delivery_tag, multiple))


def delivered(consumer, channel, *tags):
    messages = [Message(body=b"{}", delivery_tag=tag, channel=channel) for tag in tags]
    for message in messages:  # what _on_raw_message records for each delivery
        consumer._outstanding.setdefault(channel, set()).add(message.delivery_tag)
    return messages


def test_a_batch_holding_every_outstanding_delivery_is_acked_once_with_multiple():
    consumer, channel = RawQueueConsumer(), RecordingChannel()
    batch = delivered(consumer, channel, 1, 2, 3, 4)
    consumer.ack_messages(batch)
    assert channel.acks == [(4, True)]
    assert consumer._outstanding[channel] == set()


def test_another_outstanding_delivery_below_the_batch_is_not_acked_with_it():
    consumer, channel = RawQueueConsumer(), RecordingChannel()
    first, other, *rest = delivered(consumer, channel, 1, 2, 3, 4)  # 2 is still being handled elsewhere
    consumer.ack_messages([first, *rest])
    assert channel.acks == [(1, False), (3, False), (4, False)]
    assert consumer._outstanding[channel] == {2}


def test_deliveries_above_the_batch_do_not_stop_the_multiple_ack():
    consumer, channel = RawQueueConsumer(), RecordingChannel()
    *batch, _later = delivered(consumer, channel, 1, 2, 3)
    consumer.ack_messages(batch)
    assert channel.acks == [(2, True)]
    assert consumer._outstanding[channel] == {3}
