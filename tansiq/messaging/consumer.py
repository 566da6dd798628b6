"""`@handles(type, ...)`: consume a service's queue without ever losing a message.

nameko's own event handler acks a message whose handler raised (it is lost).
Here each service has one queue, `<service>.events`, bound to the types its
handlers declare; every delivery is routed by type to its handler and:

- bad input (broken JSON, bad envelope, unknown type, schema failure) goes
  straight to the dead-letter queue with a reason code — no retry can fix it;
  so does a delivery that raises anything else while it is read, checked or
  routed (`unreadable`): nothing a message contains can end the container;
- a handler that raises is republished to a delay queue (1 s, 5 s, 25 s by
  default) that feeds back into the main queue, then dead-lettered with the
  error once the attempts are spent;
- a message that finds this process not ready (its read model of the directory has not
  loaded: its first moments, or a restart while the directory is down) is not handed to a
  worker that reads the model: it goes round the delay queues (the shortest first, then up to
  the longest) without spending an attempt, for as long as that lasts (with no delay queues
  configured it is dead-lettered at once, as any failure); a handler marked
  `reads_directory=False` (erasures) is not held back;
- the original is acked only after that republish is confirmed; if the
  republish fails the message is requeued, so it is never dropped.
Handlers must be idempotent (tansiq.messaging.inbox): a crash between the
republish and the ack delivers twice.

`@handles_batch(type, ...)` takes a list of envelopes instead: up to BATCH_SIZE deliveries
(waiting at most BATCH_WAIT_MS for a partial batch to fill) handed to one worker, which handles
them in one unit of work; they are acked together once it returns (one `multiple` ack when no
other delivery of the channel is outstanding below them). When the batch raises, each of its
messages is handled again alone, so a poison message is retried and dead-lettered as above while
the others commit. A crash between the commit and the ack redelivers the batch: the inbox absorbs it.
"""

import logging
import sys
import traceback
from datetime import datetime, timezone
from functools import partial

import eventlet
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import Entrypoint, ProviderCollector, SharedExtension
from nameko.messaging import QueueConsumer

from tansiq import contracts
from tansiq.envelope import parse
from tansiq.errors import REASON_CODES, BadMessage, DomainError, NotReady
from tansiq.messaging import topology
from tansiq.messaging.broker import ConfirmedPublisher, connect, declare_network, kombu_queue
from tansiq.messaging.robustness import HandlerBudget, budget_seconds
from tansiq.readmodel import DirectoryFeed, DirectoryNotLoaded, DirectoryView

log = logging.getLogger(__name__)

ATTEMPTS_HEADER = "x-tansiq-attempts"
REASON_HEADER = "x-tansiq-reason"
ERROR_HEADER = "x-tansiq-error"
QUEUE_HEADER = "x-tansiq-queue"
FAILED_AT_HEADER = "x-tansiq-failed-at"
WAITS_HEADER = "x-tansiq-waits"  # times a message went round a retry queue because this process was not ready
# Set by the kernel at ingress from partners.inbound (partner-supplied x-tansiq-* headers are removed
# there): the broker-validated AMQP user_id and routing key, which a republish to a retry or
# dead-letter queue would otherwise lose. Only the kernel can publish to those queues.
SENDER_HEADER = "x-tansiq-sender"
ROUTING_KEY_HEADER = "x-tansiq-routing-key"
KERNEL_HEADER_PREFIX = "x-tansiq-"
RETRY_DELAYS_KEY = "RETRY_DELAYS_MS"
BATCH_SIZE_KEY = "BATCH_SIZE"        # most deliveries a @handles_batch worker takes at once
BATCH_WAIT_KEY = "BATCH_WAIT_MS"     # how long a partial batch waits for more deliveries
DEFAULT_BATCH_SIZE = 100
DEFAULT_BATCH_WAIT_MS = 20


def retry_delays(config):
    value = config.get(RETRY_DELAYS_KEY, topology.RETRY_DELAYS_MS)
    if isinstance(value, str):
        value = [int(part) for part in value.split(",") if part.strip()]
    return tuple(int(delay) for delay in value)


class RawQueueConsumer(QueueConsumer):
    """nameko's QueueConsumer, but hands over the raw body: kombu would raise on broken JSON
    (or a content type it does not accept) before any handler could dead-letter it.

    It also knows which deliveries of its channel are not settled yet, so a batch can be acked with
    one `multiple` ack when that acks nothing else (`ack_messages`)."""

    def __init__(self):
        super().__init__()
        self._outstanding = {}  # channel -> delivery tags received and not yet acked or requeued

    @property
    def prefetch_count(self):
        # A batched handler needs a batch in hand and the next one arriving meanwhile.
        batch = max((getattr(provider, "prefetch_wanted", 0) for provider in self._providers), default=0)
        return max(self.container.max_workers, batch)

    def get_consumers(self, consumer_cls, channel):
        self._outstanding.clear()  # a (re)connection: the old channel's deliveries went back to the queue
        for provider in self._providers:
            consumer = consumer_cls(queues=[provider.queue], on_message=partial(self._on_raw_message, provider))
            consumer.qos(prefetch_count=self.prefetch_count)
            self._consumers[provider] = consumer
        return self._consumers.values()

    def _on_raw_message(self, provider, message):
        self._outstanding.setdefault(message.channel, set()).add(message.delivery_tag)
        self.handle_message(provider, message.body, message)

    def _settled(self, message):
        self._outstanding.get(message.channel, set()).discard(message.delivery_tag)

    def ack_message(self, message):
        self._settled(message)
        super().ack_message(message)

    def requeue_message(self, message):
        self._settled(message)
        super().requeue_message(message)

    def ack_messages(self, messages):
        """Ack every one of `messages`: one `multiple` ack per channel when no other outstanding delivery
        of that channel lies below the highest tag (it would be acked too), else one ack each."""
        by_channel = {}
        for message in messages:
            by_channel.setdefault(message.channel, []).append(message)
        for channel, group in by_channel.items():
            highest = max(group, key=lambda message: message.delivery_tag)
            tags = {message.delivery_tag for message in group}
            outstanding = self._outstanding.get(channel, set())
            others_below = any(tag <= highest.delivery_tag and tag not in tags for tag in outstanding)
            if len(group) == 1 or others_below:
                for message in group:
                    self.ack_message(message)
                continue
            outstanding -= tags
            if not channel.connection:  # gone: the broker has them back already and redelivers them
                continue
            try:
                highest.ack(multiple=True)
            except Exception as exc:  # noqa: BLE001 - a connection going away; the inbox absorbs the redelivery
                log.warning("could not ack a batch of %d (connection lost?): %r; the broker redelivers it",
                            len(group), exc)


class ServiceQueue(SharedExtension, ProviderCollector):
    """The one queue of a service; routes each delivery by type to its `@handles` entrypoint."""

    queue_consumer = RawQueueConsumer()

    def setup(self):
        self.service_name = self.container.service_name
        self.delays = retry_delays(self.container.config)
        self.publisher = ConfirmedPublisher(self.container.config["AMQP_URI"])
        self.budget = HandlerBudget(self.container, budget_seconds(self.container.config))
        # Found once, not per message: the feeds of this service's directory models (none for the directory).
        self.directory_feeds = [dependency.feed for dependency in self.container.dependencies
                                if isinstance(dependency, DirectoryView)]
        self.queue_consumer.register_provider(self)
        # In setup, not start: nameko starts extensions concurrently, and the queue consumer must not
        # receive a message before its retry and dead-letter queues exist.
        with connect(self.container.config["AMQP_URI"]) as connection:
            declare_network(connection, self.delays, self.definitions())

    @property
    def queue_name(self):
        return topology.consumer_queue(self.service_name)

    def types(self):
        return sorted({type_ for provider in self._providers for type_ in provider.types})

    def definitions(self):
        return topology.service_queues(self.service_name, self.types(), self.delays)

    @property
    def prefetch_wanted(self):  # read by the QueueConsumer: room for its batched handlers' batches
        return max((getattr(provider, "prefetch_wanted", 0) for provider in self._providers), default=0)

    @property
    def queue(self):  # read by the QueueConsumer when it (re)connects
        return kombu_queue(self.definitions()[0])

    def stop(self):
        self.queue_consumer.unregister_provider(self)
        super().stop()

    def kill(self):
        self.publisher.close()

    def route(self, envelope):
        for provider in self._providers:
            if envelope.type in provider.types:
                return provider
        raise BadMessage("unknown_type", f"{self.service_name} has no handler for {envelope.type}")

    def handle_message(self, body, message):
        try:
            envelope = self.accept(body, message)
            provider = self.route(envelope)
            self.check_ready(provider)
        except BadMessage as exc:
            self.refuse(message, exc)
            return
        except (Unavailable, NotReady):  # something the check needs is down: not the message's fault, retried
            self.handler_failed(message, sys.exc_info())
            return
        except Exception as exc:  # noqa: BLE001 - nothing a message contains may end the container
            log.exception("%s: could not read message %s", self.service_name, message.properties.get("message_id"))
            self.refuse(message, BadMessage("unreadable", f"{type(exc).__name__}: {exc}"[:300]))
            return
        try:
            provider.spawn(envelope, message)
        except ContainerBeingKilled:
            self.queue_consumer.requeue_message(message)

    def check_ready(self, provider):
        """DirectoryNotLoaded while this service's read model of the directory has not loaded and `provider`
        reads it: its worker would wait for it past its time budget, and spend the message's attempts so."""
        if getattr(provider, "reads_directory", True) and any(not feed.ready.ready() for feed in self.directory_feeds):
            raise DirectoryNotLoaded("the read model of the directory has not loaded yet")

    def accept(self, body, message):
        """Parse and validate a delivery (partner queues also check the sender)."""
        return contracts.validate(parse(body))

    def refuse(self, message, exc):
        """Dead-letter a delivery that can never be accepted, with its reason; then the `refused` hook."""
        log.warning("%s: refused message %s: %s", self.service_name, message.properties.get("message_id"), exc)
        self.settle(message, self.dead_letter, exc.reason, exc.detail)
        try:
            self.refused(message.body, message, exc)
        except Exception:  # noqa: BLE001 - the message is dead-lettered (kept) either way
            log.exception("%s: could not answer the refusal of %s", self.service_name,
                          message.properties.get("message_id"))

    def refused(self, body, message, exc):
        """Hook: what else to do with a refused delivery besides dead-lettering it."""

    def refuse_without_retry(self, message, exc):
        """Hook: True when a handler's error is a refusal no retry can change (then already settled)."""
        return False

    def handler_failed(self, message, exc_info):
        if isinstance(exc_info[1], NotReady) and self.delays:
            self.settle(message, self.wait, str(exc_info[1]))
            return
        if self.refuse_without_retry(message, exc_info[1]):
            return
        attempts = previous_attempts(message) + 1
        error = "".join(traceback.format_exception_only(exc_info[0], exc_info[1])).strip()[:1000]
        if attempts <= len(self.delays):
            log.warning("%s: handler failed (attempt %d of %d), retrying: %s", self.service_name,
                        attempts, len(self.delays) + 1, error)
            self.settle(message, self.retry, attempts, error)
        else:
            log.error("%s: handler failed %d times, dead-lettered: %s", self.service_name, attempts, error)
            self.give_up(message, error, attempts)

    def give_up(self, message, error, attempts):
        """Attempts spent: dead-letter with the last error."""
        self.settle(message, self.dead_letter, "handler_failed", error, attempts)

    def settle(self, message, republish, *args):
        """Republish (confirmed) then ack; if the republish fails, requeue: never dropped."""
        try:
            republish(message, *args)
        except Exception:  # noqa: BLE001 - any broker failure: keep the message where it is
            log.exception("%s: could not republish message; requeued", self.service_name)
            self.queue_consumer.requeue_message(message)
        else:
            self.queue_consumer.ack_message(message)

    def retry(self, message, attempts, error):
        headers = dict(message.headers or {}, **{ATTEMPTS_HEADER: attempts, ERROR_HEADER: error})
        self._republish(message, topology.retry_queue(self.queue_name, attempts), headers)

    def wait(self, message, error):
        """Back through a retry queue, its attempts unchanged: this process not being ready (its first moments,
        or a restart while the directory is down) is nothing the message did, and must not dead-letter it. The
        shortest delay first (the snapshot is usually a moment away), then longer ones, up to the longest."""
        waits = _count(message, WAITS_HEADER) + 1
        # A moment at start is routine; a message still waiting after the longest delay means the directory
        # has not answered for a while: loud enough to be seen.
        log.log(logging.WARNING if waits > len(self.delays) else logging.INFO, "%s: not ready, message %s waits "
                "(%d): %s", self.service_name, message.properties.get("message_id"), waits, error)
        headers = dict(message.headers or {}, **{WAITS_HEADER: waits, ERROR_HEADER: error})
        self._republish(message, topology.retry_queue(self.queue_name, min(waits, len(self.delays))), headers)

    def dead_letter(self, message, reason, error="", attempts=None):
        headers = dict(message.headers or {})
        headers.update({
            REASON_HEADER: reason,
            ERROR_HEADER: (error or "")[:1000],
            QUEUE_HEADER: self.queue_name,
            FAILED_AT_HEADER: datetime.now(timezone.utc).isoformat(),
        })
        if attempts is not None:
            headers[ATTEMPTS_HEADER] = attempts
        self._republish(message, topology.dead_letter_queue(self.queue_name), headers)

    def _republish(self, message, queue_name, headers):
        # headers from x-death are nested tables; keep them, they help the inspection.
        self.publisher.publish(
            message.body, exchange="", routing_key=queue_name,
            message_id=message.properties.get("message_id"), headers=headers,
            content_type=message.content_type or "application/octet-stream",
        )


class Unavailable(Exception):
    """Something a check needs (the directory, a key) cannot be reached now: retry the message later."""


def previous_attempts(message):
    return _count(message, ATTEMPTS_HEADER)


def _count(message, header):
    try:
        return max(0, int((message.headers or {}).get(header, 0)))
    except (TypeError, ValueError):
        return 0


class EventHandler(Entrypoint):
    """Entrypoint for one or more message types; see the module docstring."""

    service_queue = ServiceQueue()

    def __init__(self, *types, reads_directory=True, **kwargs):
        """`reads_directory=False`: the handler never reads the service's directory model, so its messages are
        handled before the model has loaded (an erasure must not wait for the directory)."""
        unknown = [type_ for type_ in types if type_ not in contracts.all_contracts()]
        if unknown:
            raise ValueError(f"no contract for {unknown}")
        self.types = frozenset(types)
        self.reads_directory = reads_directory
        super().__init__(**kwargs)

    def setup(self):
        self.service_queue.register_provider(self)

    def stop(self):
        self.service_queue.unregister_provider(self)
        super().stop()

    def spawn(self, envelope, message):
        worker_ctx = self.container.spawn_worker(
            self, (envelope,), {},
            context_data={"correlation_id": envelope.correlationid or envelope.id},
            handle_result=partial(self.handle_result, message),
        )
        self.service_queue.budget.start(worker_ctx)  # past it: HandlerTimedOut, then retries as any error

    def handle_result(self, message, worker_ctx, result=None, exc_info=None):
        self.service_queue.budget.stop(worker_ctx)
        if exc_info is None:
            self.service_queue.queue_consumer.ack_message(message)
        else:
            self.service_queue.handler_failed(message, exc_info)
        return result, exc_info


handles = EventHandler.decorator


class BatchEventHandler(EventHandler):
    """Entrypoint taking a list of envelopes, handled in one unit of work; see the module docstring.

    The method must be correct for any sublist of a batch (a list of one in the fallback) and
    idempotent per message (`inbox.first_times`)."""

    def setup(self):
        super().setup()
        config = self.container.config
        self.batch_size = max(1, int(config.get(BATCH_SIZE_KEY) or DEFAULT_BATCH_SIZE))
        self.batch_wait = max(0.0, float(config.get(BATCH_WAIT_KEY, DEFAULT_BATCH_WAIT_MS))) / 1000
        self.prefetch_wanted = 2 * self.batch_size
        self._pending = []
        self._filling = 0  # which partial batch a waiting flush belongs to

    def stop(self):
        pending, self._pending = self._pending, []
        for _, message in pending:  # not handed to a worker yet: back to the queue
            self.service_queue.queue_consumer.requeue_message(message)
        super().stop()

    def spawn(self, envelope, message):
        self._pending.append((envelope, message))
        if len(self._pending) >= self.batch_size:
            self._flush()
        elif len(self._pending) == 1:
            self.container.spawn_managed_thread(partial(self._flush_after_wait, self._filling),
                                                identifier=f"{self}.flush_after_wait")

    def _flush_after_wait(self, filling):
        eventlet.sleep(self.batch_wait)
        if filling == self._filling and self._pending:
            self._flush()

    def _flush(self):
        batch, self._pending = self._pending, []
        self._filling += 1
        self._spawn_batch(batch)

    def _spawn_batch(self, batch):
        envelopes = [envelope for envelope, _ in batch]
        try:
            worker_ctx = self.container.spawn_worker(
                self, (envelopes,), {},
                context_data={"correlation_id": envelopes[0].correlationid or envelopes[0].id},
                handle_result=partial(self.handle_batch_result, batch),
            )
        except ContainerBeingKilled:
            for _, message in batch:
                self.service_queue.queue_consumer.requeue_message(message)
            return
        self.service_queue.budget.start(worker_ctx)

    def handle_batch_result(self, batch, worker_ctx, result=None, exc_info=None):
        queue = self.service_queue
        queue.budget.stop(worker_ctx)
        if exc_info is None:
            queue.queue_consumer.ack_messages([message for _, message in batch])
        elif len(batch) == 1 or isinstance(exc_info[1], NotReady):  # not ready: each would fail alike, alone
            for _, message in batch:
                queue.handler_failed(message, exc_info)
        else:
            log.warning("%s: a batch of %d failed (%s: %s); handling its messages one at a time",
                        queue.service_name, len(batch), exc_info[0].__name__, exc_info[1])
            # From a managed thread: this worker's pool slot must be free for the ones it spawns.
            self.container.spawn_managed_thread(partial(self._one_at_a_time, batch),
                                                identifier=f"{self}.one_at_a_time")
        return result, exc_info

    def _one_at_a_time(self, batch):
        for item in batch:
            self._spawn_batch([item])


handles_batch = BatchEventHandler.decorator


class PartnerQueue(ServiceQueue):
    """Messages from partner systems (`partners.inbound`): the sender is checked before anything else.

    At ingress the kernel removes any `x-tansiq-*` header the partner set and records the
    broker-validated sender (AMQP user_id) and routing key in its own headers, so a retry or a
    replay from the dead-letter queue is still the partner's. The sender must equal the envelope's
    source and the routing key be `<source>.<type>`; the Ed25519 signature must verify with the key
    the directory holds, read from this process's read model of the directory (tansiq.readmodel: no
    partner message asks the directory, and a rotated key counts from the moment its change arrives).
    A refused message is dead-lettered (kept) and answered on the sender's queue: one refusal path for
    every service, domain refusals and spent retries included.
    """

    queue_consumer = RawQueueConsumer()
    feed = DirectoryFeed()  # the process's one feed, shared with its DirectoryView

    @property
    def queue_name(self):
        return topology.partner_inbound_queue(self.service_name)

    def definitions(self):
        return topology.partner_inbound_queues(self.service_name, self.types(), self.delays)

    def handle_message(self, body, message):
        record_ingress(message)
        super().handle_message(body, message)

    def public_key_for(self, slug, first_attempt=False):
        """The association's signing key as the read model holds it; None for an association it does not know.

        On a message's first attempt an unknown association is not refused yet but retried once (the
        message waits in its retry queue): its registration may be a few milliseconds behind in the feed."""
        if not self.feed.ready.ready():  # no snapshot yet (the directory is not up): the message waits
            raise DirectoryNotLoaded("the read model of the directory has not loaded yet")
        key = self.feed.model.public_key(slug)
        if key is None and first_attempt:
            raise Unavailable(f"{slug!r} has no signing key in the read model of the directory (yet)")
        return key

    def accept(self, body, message):
        from tansiq.partner.verify import check_inbound

        sender, routing_key = ingress_of(message)
        return check_inbound(body, sender, routing_key,
                             partial(self.public_key_for, first_attempt=previous_attempts(message) == 0))

    def refused(self, body, message, exc):
        from tansiq.partner.verify import rejection

        answer = rejection(body, answer_address(message), exc, self.service_name, message.properties.get("message_id"))
        if answer is None:  # no authenticated sender to answer
            return
        routing_key, envelope = answer
        try:
            self.publisher.publish(envelope.to_bytes(), topology.PARTNERS_OUTBOUND, routing_key, envelope.id)
        except Exception:  # noqa: BLE001 - the refused message is kept in the DLQ either way
            log.exception("%s: could not send the rejection of %s", self.service_name, envelope.data)

    def refuse_without_retry(self, message, exc):
        # A partner asking for something the domain refuses (not its event, a transition not
        # allowed now, an id already used…) is told at once; retrying would only refuse again.
        if not isinstance(exc, DomainError):
            return False
        reason = exc.code if exc.code in REASON_CODES else "not_allowed"
        self.refuse(message, BadMessage(reason, str(exc)[:500]))
        return True

    def give_up(self, message, error, attempts):
        super().give_up(message, error, attempts)
        try:  # the partner hears of it too: no message of theirs ends without an answer
            self.refused(message.body, message, BadMessage("handler_failed", error[:500]))
        except Exception:  # noqa: BLE001 - dead-lettered (kept) either way
            log.exception("%s: could not answer a message that failed repeatedly", self.service_name)


def record_ingress(message):
    """First delivery from partners.inbound: drop partner-set kernel headers, record the sender.

    Partners may write only to partners.inbound (broker permissions), so a delivery from any other
    exchange (a retry queue, a replay) was published by the kernel and its headers are ours.
    """
    if message.delivery_info.get("exchange") != topology.PARTNERS_INBOUND:
        return
    original = message.headers if isinstance(message.headers, dict) else {}
    headers = {key: value for key, value in original.items()
               if not str(key).lower().startswith(KERNEL_HEADER_PREFIX)}
    headers[SENDER_HEADER] = message.properties.get("user_id") or ""
    headers[ROUTING_KEY_HEADER] = message.delivery_info.get("routing_key") or ""
    message.headers = headers
    message.properties["application_headers"] = headers


def ingress_of(message):
    """(broker-validated sender, routing key at ingress) of a partner message, or (None, "")."""
    headers = message.headers if isinstance(message.headers, dict) else {}
    sender, routing_key = headers.get(SENDER_HEADER), headers.get(ROUTING_KEY_HEADER)
    return (sender if isinstance(sender, str) and sender else None,
            routing_key if isinstance(routing_key, str) else "")


def answer_address(message):
    """Whom to answer: the broker user; without one, the owner of the routing key (a partner's topic
    permission pins its routing keys to `<slug>.`, so that too was checked by the broker)."""
    sender, routing_key = ingress_of(message)
    return sender or routing_key.partition(".")[0] or None


class PartnerUnhandledQueue(PartnerQueue):
    """The kernel's catch-all on partners.inbound (`#`): every partner message also lands here.

    Those a service consumes are acked and forgotten (that service answers them); the others —
    unknown or receive-only types, routing keys no service matches — are checked like any partner
    message and answered `unknown_type` (or the earlier reason), never left unroutable.
    """

    @property
    def queue_name(self):
        return topology.PARTNERS_UNHANDLED

    def definitions(self):
        return topology.partner_unhandled_queues(self.delays)

    def route(self, envelope):
        raise BadMessage("unknown_type", f"no service consumes {envelope.type} from partners")

    def handle_message(self, body, message):
        record_ingress(message)
        _, routing_key = ingress_of(message)
        slug, _, type_ = routing_key.partition(".")
        if slug and type_ in topology.routed_partner_types():
            self.queue_consumer.ack_message(message)  # a service's own queue has this one
            return
        ServiceQueue.handle_message(self, body, message)


class PartnerHandler(EventHandler):
    service_queue = PartnerQueue()
    unhandled = PartnerUnhandledQueue()  # hosted by every service with partner handlers (competing)


handles_partner = PartnerHandler.decorator
