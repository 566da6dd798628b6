"""Broker plumbing shared by the relay, the consumer and the CLI: connections, declarations, confirmed publishing."""

import logging
import threading
import time

from amqp.exceptions import AccessRefused, PreconditionFailed
from kombu import Connection, binding
from kombu import Exchange as KombuExchange
from kombu import Queue as KombuQueue

from tansiq.config import amqp_ssl
from tansiq.envelope import CONTENT_TYPE
from tansiq.messaging import topology

log = logging.getLogger(__name__)


class Unroutable(Exception):
    """The broker returned a mandatory message: no queue and no alternate exchange took it."""


def connect(amqp_uri, **kwargs):
    # confirm_publish: every publish waits for the broker's ack (py-amqp raises on nack).
    kwargs.setdefault("ssl", amqp_ssl(amqp_uri))  # amqps://: the broker's certificate is verified
    return Connection(amqp_uri, transport_options={"confirm_publish": True}, heartbeat=30, **kwargs)


def kombu_exchange(exchange):
    return KombuExchange(exchange.name, type=exchange.type, durable=True, arguments=exchange.arguments or None)


def kombu_queue(queue):
    exchanges = {exchange.name: kombu_exchange(exchange) for exchange in topology.exchanges()}
    bindings = [binding(exchanges[name], routing_key=key) for name, key in queue.bindings]
    return KombuQueue(queue.name, bindings=bindings or None, durable=True, auto_delete=False,
                      queue_arguments=queue.arguments or None)


class TopologyMismatch(RuntimeError):
    """The broker holds a queue or exchange of that name with other arguments."""


def declare(connection, queues=()):
    """Declare the shared exchanges, the unroutable queue and `queues` (idempotent)."""
    channel = connection.channel()
    try:
        for entity in [*(kombu_exchange(exchange) for exchange in topology.exchanges()),
                       *(kombu_queue(queue) for queue in [topology.unroutable_queue(), *queues])]:
            try:
                entity(channel).declare()
            except AccessRefused:
                # A per-service broker user (tansiq.broker_users) configures only its own queues: another
                # service's queue is declared by that service, or beforehand by the operator's definitions.
                channel = connection.channel()  # the broker closed the other one
                log.debug("%s left to its owner: this broker user may not declare it", entity.name)
            except PreconditionFailed as exc:
                channel = connection.channel()  # the broker closed the other one
                if entity.name == topology.UNROUTABLE_QUEUE:
                    _bound_unroutable_queue(connection, entity)
                    continue
                # RabbitMQ never changes the arguments of an existing queue: say what to do, not just 406.
                raise TopologyMismatch(
                    f"{entity.name!r} exists on the broker with other arguments than this version declares "
                    f"({exc}). Stop its consumers, move or drain its messages (tansiq dlq / the management UI), "
                    f"delete it, and start again: it is re-declared with the current arguments."
                ) from exc
    finally:
        try:
            channel.close()
        except Exception:  # noqa: BLE001 - closed with its connection
            pass


def declare_network(connection, retry_delays_ms=topology.RETRY_DELAYS_MS, queues=()):
    """Declare the whole topology (every queue and binding of tansiq.messaging.topology) and `queues`:
    called before a service consumes or publishes anything, so no start order leaves a message unroutable."""
    declare(connection, [*topology.network_queues(retry_delays_ms)[1:], *queues])


def _bound_unroutable_queue(connection, queue):
    """An unroutable queue from a version without a length bound: replaced when empty, else kept (warned)."""
    channel = connection.channel()
    try:
        _, ready, _ = channel.queue_declare(queue.name, passive=True)
        if ready:
            log.warning("%s holds %d message(s) and predates its length bound: kept as it is; drain it and "
                        "restart to bound it", queue.name, ready)
            return
        # Quorum queues have no delete-if-empty: checked just above (a message landing in between,
        # at start-up, would be one nobody consumes anyway).
        channel.queue_delete(queue.name)
        queue(channel).declare()
    finally:
        try:
            channel.close()
        except Exception:  # noqa: BLE001 - already closed by the broker
            pass


def persistent_message(channel, body, message_id, headers=None, content_type=CONTENT_TYPE):
    return channel.prepare_message(body, properties={"message_id": message_id, "delivery_mode": 2},
                                   content_type=content_type, content_encoding="utf-8", headers=headers or {})


class _Batch:
    """What the broker said about the batch being confirmed: tags from `first` on (a late confirm of an
    earlier batch, given up after its timeout, counts for nothing)."""

    def __init__(self):
        self.first, self.acked, self.nacked, self.returned = 1, set(), set(), set()

    def settle(self, into):
        def on_confirm(delivery_tag, multiple):
            into.update(range(self.first, delivery_tag + 1) if multiple else
                        (delivery_tag,) if delivery_tag >= self.first else ())
        return on_confirm


class ConfirmedPublisher:
    """Publishes with publisher confirms and `mandatory`; raises Unroutable on basic.return.

    One connection per publisher, guarded by a lock: green threads share it.
    """

    def __init__(self, amqp_uri):
        self.amqp_uri = amqp_uri
        self._lock = threading.Lock()
        self._connection = None
        self._returned = []
        self._confirms, self._batch, self._published = None, None, 0

    def _channel(self):
        if self._connection is None or not self._connection.connected:
            self._connection = connect(self.amqp_uri)
            self._connection.ensure_connection(max_retries=3)
            channel = self._connection.default_channel
            channel.events["basic_return"].add(self._on_return)
        return self._connection.default_channel

    def _on_return(self, exc, exchange, routing_key, message):
        self._returned.append((exchange, routing_key, getattr(message, "properties", {}).get("message_id")))

    def publish(self, body, exchange, routing_key, message_id, headers=None,
                content_type=CONTENT_TYPE):
        with self._lock:
            try:
                channel = self._channel()
                self._returned.clear()
                message = persistent_message(channel, body, message_id, headers, content_type)
                # py-amqp with confirm_publish blocks until basic.ack; a basic.return comes first.
                channel.basic_publish(message, exchange=exchange, routing_key=routing_key, mandatory=True)
            except Exception:
                self.close()
                raise
            if self._returned:
                raise Unroutable(f"{exchange}/{routing_key}: no queue took message {message_id}")

    def publish_many(self, messages, timeout=30):
        """Publish `(body, exchange, routing_key, message_id)` tuples with their confirms in flight
        (pipelined: one wait for the batch, not a round trip each), all `mandatory`.

        Returns the message ids the broker confirmed and routed; anything nacked, returned or
        not confirmed within `timeout` is left out, for the caller to publish again.
        """
        messages = list(messages)
        if not messages:
            return []
        with self._lock:
            try:
                channel = self._confirm_channel()
            except Exception:
                self.close()
                raise
            # This batch's delivery tags: the channel's count goes on from the batches before it.
            first = self._batch.first = self._published + 1
            for settled in (self._batch.acked, self._batch.nacked, self._batch.returned):
                settled.clear()
            try:
                for body, exchange, routing_key, message_id in messages:
                    message = persistent_message(channel, body, message_id)
                    channel._basic_publish(message, exchange=exchange, routing_key=routing_key, mandatory=True)
                    self._published += 1
                deadline = time.monotonic() + timeout
                while len(self._batch.acked | self._batch.nacked) < len(messages) and time.monotonic() < deadline:
                    try:
                        self._connection.drain_events(timeout=max(0.05, deadline - time.monotonic()))
                    except TimeoutError:
                        break
            except Exception:
                self.close()
                raise
            # A basic.return precedes the ack of its message: returned ids are never counted as sent.
            return [message_id for tag, (_, _, _, message_id) in enumerate(messages, start=first)
                    if tag in self._batch.acked and tag not in self._batch.nacked
                    and message_id not in self._batch.returned]

    def _confirm_channel(self):
        """The channel batches go out on, in confirm mode: opened once per connection, not once per batch
        (an open, a confirm.select and a close are three round trips to the broker)."""
        connection_lost = self._connection is None or not self._connection.connected
        if connection_lost or self._confirms is None or not self._confirms.is_open:
            self._channel()  # (re)connects if needed
            channel = self._connection.channel()
            batch = self._batch = _Batch()
            channel.events["basic_ack"].add(batch.settle(batch.acked))
            channel.events["basic_nack"].add(batch.settle(batch.nacked))
            channel.events["basic_return"].add(
                lambda exc, exchange, routing_key, message: batch.returned.add(message.properties.get("message_id")))
            channel.confirm_select()
            self._confirms, self._published = channel, 0
        return self._confirms

    def close(self):
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
            self._connection = None
        self._confirms = None
