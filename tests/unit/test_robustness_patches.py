"""nameko's settling of a message on a dead connection is logged, not raised (the container lives)."""

from tansiq.messaging.robustness import HandlerTimedOut, install


class DeadConnectionMessage:
    """At the edge: a message whose channel is gone the way amqp reports it."""

    properties = {"message_id": "m-1"}

    class channel:
        connection = object()

    def ack(self):
        from amqp.exceptions import RecoverableConnectionError

        raise RecoverableConnectionError("connection already closed")

    requeue = ack


def test_acking_on_a_dead_connection_is_logged_not_raised():
    from nameko.messaging import QueueConsumer

    install()
    consumer = QueueConsumer.__new__(QueueConsumer)
    consumer.ack_message(DeadConnectionMessage())
    consumer.requeue_message(DeadConnectionMessage())
    assert issubclass(HandlerTimedOut, Exception)  # nameko hands it to the consumer, never to the container
