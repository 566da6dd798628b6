"""PartnerClient: how a partner association's software talks to Tansiq over AMQP (pika).

    client = PartnerClient("amqps://amal-safi:secret@broker.example:5671/", "amal-safi",
                           "amal-safi.key", "var/amal-safi-outbox.sqlite3")
    client.send("ma.tansiq.referral.sent.v1", {...})   # validated, signed, stored, then published
    client.listen(handle)                                # handle(envelope) for what is addressed to us
    client.open_sealed(envelope)                         # {field: value} of what was sealed to us

Referral data reaches a partner sealed to its encryption key (tansiq.sealing; the public half is
published in the directory by `tansiq partners add`): pass the private key as `encryption_key`.

Sending goes through a local SQLite outbox: `send` never loses a message when the
broker is unreachable, and `flush` (or `run_outbox`) publishes everything pending,
in order, with many messages in flight and publisher confirms.
"""

import logging
import random
import ssl
import threading
from pathlib import Path

import pika
import pika.exceptions

from tansiq import contracts, sealing, signing
from tansiq import envelope as envelopes
from tansiq.errors import BadMessage
from tansiq.messaging import topology
from tansiq.partner.store import LocalStore

log = logging.getLogger(__name__)

WINDOW = 256            # messages in flight before waiting for confirms
BATCH = 10_000          # pending rows loaded per connection
BACKOFF_MAX_S = 60.0


class PartnerError(Exception):
    """The broker refused something (it closed the channel or nacked); `reason` has its words."""


class PartnerRefused(PartnerError):
    """The broker refused our credentials: revoked, or wrong password. Retrying will not help."""


def _load_signing_key(signing_key):
    if hasattr(signing_key, "sign"):
        return signing_key
    if isinstance(signing_key, (bytes, str)) and b"-----BEGIN" in (
            signing_key if isinstance(signing_key, bytes) else signing_key.encode()):
        return signing.load_private_key(signing_key)
    return signing.load_private_key(Path(signing_key).read_bytes())


def _load_encryption_key(encryption_key):
    if encryption_key is None or hasattr(encryption_key, "exchange"):
        return encryption_key
    path = Path(encryption_key) if isinstance(encryption_key, (str, Path)) else None
    if path is not None and path.exists():
        return sealing.load_private_key(path.read_bytes())
    return sealing.load_private_key(encryption_key)


def backoff_delays(first=0.5, maximum=BACKOFF_MAX_S):
    """Exponential backoff with jitter, forever: 0.5, 1, 2, … capped at `maximum` seconds."""
    delay = first
    while True:
        yield delay * random.uniform(0.8, 1.2)
        delay = min(delay * 2, maximum)


class PartnerClient:
    def __init__(self, amqp_uri, slug, signing_key, outbox_path, tls=None, window=WINDOW, encryption_key=None):
        """`tls`: None (follow the URI), True (verify with the system CAs) or an ssl.SSLContext.
        `encryption_key`: the X25519 private key (file, base64 or key) that opens what is sealed to us."""
        self.slug = slug
        self.key = _load_signing_key(signing_key)
        self.encryption_key = _load_encryption_key(encryption_key)
        self.store = LocalStore(outbox_path)
        self.window = window
        self._flushing = threading.Lock()  # one publisher at a time, or rows would go out twice
        self.parameters = pika.URLParameters(amqp_uri)
        self.parameters.connection_attempts = 1
        self.parameters.socket_timeout = 10
        self.parameters.blocked_connection_timeout = 60
        if tls:
            context = tls if isinstance(tls, ssl.SSLContext) else ssl.create_default_context()
            self.parameters.ssl_options = pika.SSLOptions(context, self.parameters.host)

    # sending ------------------------------------------------------------------------
    def prepare(self, type_, data, correlationid=None):
        """A validated, signed envelope; refuses types partners may not send."""
        if contracts.get(type_).partners not in ("send", "both"):
            raise ValueError(f"partners may not send {type_}")
        envelope = contracts.make(type_, self.slug, data, correlationid)
        return signing.sign(envelope, self.key)

    def send(self, type_, data, correlationid=None, deliver=True):
        """Store the message in the outbox, then try to publish what is pending.

        Returns the envelope. If the broker is unreachable the message waits in the
        outbox for the next `flush`/`run_outbox`; refusals by the broker still raise.
        """
        envelope = self.prepare(type_, data, correlationid)
        self.store.add(envelope, f"{self.slug}.{envelope.type}")
        if deliver and self._flushing.acquire(blocking=False):
            # If another thread is flushing it will pick this row up: its loop runs until none is pending.
            self._flushing.release()
            try:
                self.flush()
            except (pika.exceptions.AMQPConnectionError, OSError, TimeoutError) as exc:
                log.warning("broker unreachable, %s kept in the outbox: %s", envelope.id, exc)
        return envelope

    # reading what was sealed to us ------------------------------------------------------------
    def open_sealed(self, envelope):
        """{field: value} of the message's `sealed` values addressed to us (a referral's shared values,
        reason, notes...). A value not sealed to us, or whose copy ended, is left out."""
        if self.encryption_key is None:
            raise ValueError("this client has no encryption key: pass encryption_key= to open sealed values")
        data = envelope.data if hasattr(envelope, "data") else envelope
        opened = {}
        for field, value in (data.get("sealed") or {}).items():
            try:
                opened[field] = sealing.open_sealed(value, self.slug, self.encryption_key,
                                                    f"referral:{data['referral_id']}:{field}")
            except sealing.NotSealedFor:
                continue
        return opened

    @staticmethod
    def seal(referral_id, field, value, readers):
        """`value` sealed for `readers` ({slug: public encryption key}) as a referral's `field`: what goes in
        a message's `sealed`. A hosted association's key comes from the operator (`tansiq keys public`)."""
        return sealing.seal(value, readers, f"referral:{referral_id}:{field}")

    def properties(self, message_id, type_):
        return pika.BasicProperties(
            content_type=envelopes.CONTENT_TYPE,
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message_id,
            user_id=self.slug,  # checked by RabbitMQ against the connection's user
            type=type_,
            app_id="tansiq-partner-sdk",
        )

    def flush(self, timeout=60.0):
        """Publish everything pending, in order; returns how many the broker confirmed."""
        total = 0
        with self._flushing:
            while True:
                rows = self.store.pending(BATCH)
                if not rows:
                    return total
                total += _Publisher(self, rows, timeout).run()

    def run_outbox(self, stop, poll_s=1.0):
        """Keep flushing until `stop` (threading.Event) is set, reconnecting with backoff."""
        delays = backoff_delays()
        while not stop.is_set():
            try:
                self.flush()
                delays = backoff_delays()
                stop.wait(poll_s)
            except PartnerRefused:
                raise
            except (pika.exceptions.AMQPError, OSError, TimeoutError, PartnerError) as exc:
                delay = next(delays)
                log.warning("outbox flush failed (%s); retrying in %.1fs", exc, delay)
                stop.wait(delay)

    # receiving ----------------------------------------------------------------------
    def listen(self, handler, stop=None, prefetch=50):
        """Call handler(envelope) for each message on our queue, once per message id.

        Manual acks: a message is acknowledged only after the handler returned and its
        id was recorded, so a crash means redelivery, and redelivery means no second call.
        Returns when `stop` (a threading.Event) is set; reconnects with backoff.
        """
        stop = stop or threading.Event()
        delays = backoff_delays()
        while not stop.is_set():
            try:
                connection = self._blocking_connection()
            except pika.exceptions.ProbableAuthenticationError as exc:
                raise PartnerRefused(str(exc)) from exc
            except (pika.exceptions.AMQPConnectionError, OSError) as exc:
                delay = next(delays)
                log.warning("cannot connect (%s); retrying in %.1fs", exc, delay)
                stop.wait(delay)
                continue
            delays = backoff_delays()
            try:
                self._consume(connection, handler, stop, prefetch)
            except pika.exceptions.ConnectionClosedByBroker as exc:
                log.warning("the broker closed the connection: %s", exc)
                stop.wait(next(delays))
            except pika.exceptions.AMQPConnectionError as exc:
                log.warning("connection lost: %s", exc)
            finally:
                if connection.is_open:
                    connection.close()

    def _blocking_connection(self):
        return pika.BlockingConnection(self.parameters)

    def _consume(self, connection, handler, stop, prefetch):
        channel = connection.channel()
        channel.basic_qos(prefetch_count=prefetch)
        queue = topology.partner_queue(self.slug)
        for method, _properties, body in channel.consume(queue, inactivity_timeout=0.5):
            if stop.is_set():
                break
            if method is None:
                continue
            envelope = self._incoming(body)
            if envelope is not None and not self.store.seen(envelope.id):
                try:
                    handler(envelope)
                except Exception:
                    log.exception("handler failed on %s; it will be redelivered", envelope.id)
                    channel.basic_nack(method.delivery_tag, requeue=True)
                    stop.wait(1.0)  # do not spin on a message the handler keeps failing
                    continue
                self.store.record_processed(envelope.id, envelope.type)
            channel.basic_ack(method.delivery_tag)
        channel.cancel()

    def _incoming(self, body):
        """Parse and, for types we know, validate; newer types pass through unvalidated."""
        try:
            envelope = envelopes.parse(body)
        except BadMessage as exc:
            log.error("dropping an unreadable message from Tansiq: %s", exc)
            return None
        try:
            return contracts.validate(envelope)
        except BadMessage as exc:
            if exc.reason == "unknown_type":
                return envelope
            # Still delivered: the handler sees the raw data rather than losing the message.
            log.error("message %s does not match its contract: %s", envelope.id, exc)
            return envelope


class _Publisher:
    """One SelectConnection that publishes `rows` with up to `window` unconfirmed at a time."""

    def __init__(self, client, rows, timeout):
        self.client = client
        self.rows = list(rows)
        self.timeout = timeout
        self.next_row = 0
        self.next_tag = 1
        self.in_flight = {}      # delivery tag -> seq
        self.seq_by_id = {row[1]: row[0] for row in self.rows}
        self.returned = set()    # seqs the broker could not route
        self.confirmed = 0
        self.error = None
        self.connection = None
        self.channel = None

    def run(self):
        self.connection = pika.SelectConnection(
            self.client.parameters,
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_connection_closed,
        )
        self.connection.ioloop.call_later(self.timeout, self._on_timeout)
        self.connection.ioloop.start()
        if self.error:
            raise self.error
        return self.confirmed

    def _fail(self, error):
        if self.error is None:
            self.error = error
        self._close()

    def _close(self):
        if self.connection.is_closed:
            self.connection.ioloop.stop()
        elif not self.connection.is_closing:
            self.connection.close()

    def _on_open_error(self, connection, exc):
        if isinstance(exc, pika.exceptions.ProbableAuthenticationError):
            self.error = PartnerRefused(str(exc))
        else:
            self.error = exc if isinstance(exc, Exception) else pika.exceptions.AMQPConnectionError(exc)
        connection.ioloop.stop()

    def _on_connection_closed(self, connection, reason):
        if self.error is None and not self._done():
            self.error = reason if isinstance(reason, Exception) else pika.exceptions.AMQPConnectionError(reason)
        connection.ioloop.stop()

    def _on_timeout(self):
        self._fail(TimeoutError(f"{len(self.in_flight)} messages still unconfirmed after {self.timeout}s"))

    def _on_connection_open(self, connection):
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_channel_open(self, channel):
        self.channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=lambda frame: self._publish_more())

    def _on_channel_closed(self, channel, reason):
        if self.error is None and not self._done():
            # e.g. 403 ACCESS_REFUSED (routing key) or 406 PRECONDITION_FAILED (user_id)
            self.error = PartnerError(str(reason))
        self._close()

    def _publish_more(self):
        while len(self.in_flight) < self.client.window and self.next_row < len(self.rows):
            seq, message_id, routing_key, body = self.rows[self.next_row]
            self.next_row += 1
            self.in_flight[self.next_tag] = seq
            self.next_tag += 1
            self.channel.basic_publish(
                topology.PARTNERS_INBOUND, routing_key, body,
                self.client.properties(message_id, routing_key[len(self.client.slug) + 1:]),
                mandatory=True,
            )
        if self._done():
            self.channel.close()

    def _done(self):
        return not self.in_flight and self.next_row >= len(self.rows)

    def _on_return(self, channel, method, properties, body):
        seq = self.seq_by_id.get(properties.message_id)
        log.error("broker could not route %s (%s)", properties.message_id, method.reply_text)
        if seq is not None:
            self.returned.add(seq)

    def _on_confirm(self, frame):
        method = frame.method
        tags = [tag for tag in self.in_flight if tag <= method.delivery_tag] if method.multiple \
            else [method.delivery_tag]
        seqs = [self.in_flight.pop(tag) for tag in tags if tag in self.in_flight]
        if isinstance(method, pika.spec.Basic.Nack):
            self._fail(PartnerError(f"the broker nacked {len(seqs)} message(s); they stay in the outbox"))
            return
        self.client.store.mark([seq for seq in seqs if seq in self.returned], "returned")
        self.client.store.mark([seq for seq in seqs if seq not in self.returned], "confirmed")
        self.confirmed += len(seqs)
        self._publish_more()
