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


def test_replies_go_without_a_confirm_and_requests_keep_theirs():
    """A reply's confirm was a broker round trip per RPC; a lost reply is a timeout the idempotency key covers.
    A request still waits for its confirm: that is how a caller learns at once that no such service runs."""
    from nameko.amqp.publish import Publisher
    from nameko.rpc import Responder

    install()
    install()  # idempotent: not a subclass of a subclass
    assert Responder.publisher_cls.use_confirms is False
    assert Responder.publisher_cls.__bases__ == (Publisher,)
    assert Publisher.use_confirms is True  # RpcProxy's requests, nameko's events
    publisher = Responder.publisher_cls("memory://")
    assert publisher.use_confirms is False and isinstance(publisher, Publisher)
