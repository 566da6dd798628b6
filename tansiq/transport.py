"""Internal RPC in ciphertext: every message body nameko puts on the broker is sealed (AES-256-GCM).

What staff type in the gateway (names, phones, listening notes) travels to intake and referrals as
nameko RPC arguments, and records come back as RPC replies. Without this, the broker (its disk, its
management UI, its firehose tracer, whoever administers it) sees them in clear. With it, a body is

    b"tq1." + key id + b"." + nonce (12 bytes) + AES-GCM(transport key, JSON body, aad)

under the network's transport key (`transport.keys` in the keys folder, one key per line
`<key id> <base64 of 32 bytes>`, the last one seals, every listed one opens: `tansiq transport
rotate|retire`; a process meeting a key id it does not hold reads the file again, so a rotation
needs no simultaneous restart). The associated data binds the body to where it was published: exchange, routing
key, reply_to and correlation_id. A request copied to another method, or a reply to another call,
does not open.

How it is wired: `install()` (by `tansiq run`, the `tansiq` command and the tests) wraps nameko's
one publisher (`nameko.amqp.publish.Publisher.publish`: RPC requests and replies, nameko events)
and the two places that receive RPC traffic (`RpcConsumer.handle_message` for requests,
`ReplyListener.handle_message` for replies, the standalone ClusterRpcProxy included). A request that
is not sealed, or does not open, is answered with the error `TransportRefused` (itself sealed) and
acked; a reply that does not open fails the waiting call with that error. Neither stops a consumer;
a body of a content type kombu cannot decode is rejected (dropped) instead of raising in the consumer
loop, which would end the service.

The CloudEvents messages of the outbox (tansiq.events, partners.outbound) are not nameko's: they go
through `tansiq.messaging.broker.ConfirmedPublisher` and keep their contract with partners.
"""

import base64
import functools
import logging
import os
import re
import threading
import time
from pathlib import Path

import kombu.serialization
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from kombu.utils import json as kombu_json

from tansiq.config import keys_dir

log = logging.getLogger(__name__)

SERIALIZER = "tansiq-sealed"
CONTENT_TYPE = "application/vnd.tansiq.sealed"
PREFIX = b"tq1"
KEY_BYTES = 32
NONCE_BYTES = 12
KEY_FILE_ENV = "TANSIQ_TRANSPORT_KEY_FILE"
KEY_FILE_NAME = "transport.keys"
KEY_ID_PATTERN = re.compile(r"^[0-9a-f]{8}$")


class TransportRefused(Exception):
    """A message body that is not sealed under a transport key this process holds, or was moved."""


class UnknownKey(TransportRefused):
    """Sealed under a key id this process does not hold (yet: a rotation it has not read)."""


# --- keys ----------------------------------------------------------------------------------------

def key_file_path(path=None):
    """The transport key file: `path`, else TANSIQ_TRANSPORT_KEY_FILE, else <keys folder>/transport.keys."""
    return Path(path or os.environ.get(KEY_FILE_ENV) or keys_dir() / KEY_FILE_NAME)


def _new_key_line():
    return f"{os.urandom(4).hex()} {base64.b64encode(os.urandom(KEY_BYTES)).decode()}\n"


def _create_if_absent(path):
    if path.exists():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:  # O_EXCL: services starting together must not each write their own key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(_new_key_line())


class TransportKeys:
    """The keys that open (every one listed) and the one that seals (the last)."""

    def __init__(self, keys):
        if not keys:
            raise ValueError("a transport key file holds at least one key")
        self.keys = dict(keys)
        self.current = keys[-1][0]

    @classmethod
    def load(cls, path=None, create=True):
        path = key_file_path(path)
        if create:
            _create_if_absent(path)
        keys = []
        for number, line in enumerate(path.read_text(encoding="ascii").splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            kid, _, encoded = line.strip().partition(" ")
            key = base64.b64decode(encoded.strip(), validate=True)
            if not KEY_ID_PATTERN.match(kid) or len(key) != KEY_BYTES:
                raise ValueError(f"{path}:{number}: expected '<8 hex digits> <base64 of {KEY_BYTES} bytes>'")
            keys.append((kid, key))
        return cls(keys)

    def seal(self, plaintext, binding):
        kid = self.current.encode()
        nonce = os.urandom(NONCE_BYTES)
        return PREFIX + b"." + kid + b"." + nonce + AESGCM(self.keys[self.current]).encrypt(
            nonce, plaintext, _aad(kid, binding))

    def open(self, token, binding):
        if not isinstance(token, (bytes, bytearray)):
            raise TransportRefused("the message body is not sealed")
        prefix, _, rest = bytes(token).partition(b".")
        kid, _, sealed = rest.partition(b".")
        key = self.keys.get(kid.decode("ascii", "replace"))
        if prefix != PREFIX or len(sealed) <= NONCE_BYTES:
            raise TransportRefused("the message body is not sealed")
        if key is None:
            raise UnknownKey(f"the message is sealed under an unknown transport key {kid[:8]!r}")
        try:
            return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _aad(kid, binding))
        except InvalidTag:
            raise TransportRefused("the sealed message does not open here (tampered, or moved to another "
                                   "queue or call)") from None


def _aad(kid, binding):
    return b"tansiq-transport:v1|" + kid + b"|" + binding.encode("utf-8")


def binding(exchange, routing_key, reply_to=None, correlation_id=None):
    """Where a body was published: what its associated data binds it to."""
    return "|".join([getattr(exchange, "name", exchange) or "", routing_key or "", reply_to or "",
                     correlation_id or ""])


def message_binding(message):
    info, properties = message.delivery_info, message.properties
    return binding(info.get("exchange"), info.get("routing_key"), properties.get("reply_to"),
                   properties.get("correlation_id"))


def rotate(path=None):
    """Append a new key, which seals from the next start on; the others still open. Returns its id."""
    path = key_file_path(path)
    TransportKeys.load(path)  # refuses a broken file before touching it
    line = _new_key_line()
    with open(path, "a", encoding="ascii") as handle:
        handle.write(line)
    return line.split()[0]


def retire(path=None):
    """Keep only the sealing key (once every process has restarted since `rotate`). Returns the ids dropped."""
    path = key_file_path(path)
    keys = TransportKeys.load(path, create=False)
    dropped = [kid for kid in keys.keys if kid != keys.current]
    temporary = path.with_name(path.name + ".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{keys.current} {base64.b64encode(keys.keys[keys.current]).decode()}\n")
    os.replace(temporary, path)
    return dropped


# --- the kombu serializer and the nameko wrapping -------------------------------------------------

_state = {"keys": None, "path": None, "reloaded_at": 0.0}
RELOAD_INTERVAL_S = 1.0  # at most one re-read of the key file per second, whatever arrives
_install_lock = threading.Lock()


def _encode(value):
    # Used by nameko's Responder only to check that a result serialises (as kombu's json does: dates,
    # UUIDs, decimals): the wrapped publish then seals that same JSON.
    return kombu_json.dumps(value)


def _decode(data):
    # Opened later, where the delivery's routing key is known (the associated data needs it).
    return bytes(data) if not isinstance(data, str) else data.encode("latin-1")


def register_serializer():
    kombu.serialization.register(SERIALIZER, encoder=_encode, decoder=_decode, content_type=CONTENT_TYPE,
                                 content_encoding="binary")


def keys():
    if _state["keys"] is None:
        _state["keys"] = TransportKeys.load(_state["path"])
    return _state["keys"]


def open_sealed(token, where):
    """The plaintext of `token`; a key id not held yet makes the key file be read again (a rotation other
    processes already use), then refuses if it is still unknown."""
    try:
        return keys().open(token, where)
    except UnknownKey:
        now = time.monotonic()
        if now - _state["reloaded_at"] < RELOAD_INTERVAL_S:
            raise
        _state["reloaded_at"] = now
        _state["keys"] = TransportKeys.load(_state["path"], create=False)
        return keys().open(token, where)


def use_key_file(path):
    """This process seals and opens with the keys of `path` from now on (tests run several networks)."""
    with _install_lock:
        _state["path"], _state["keys"] = path, None


def install(path=None):
    """Seal every nameko message body this process publishes (transient: see below) and open every RPC
    message it receives.
    Idempotent; `path` names the key file (default: key_file_path())."""
    with _install_lock:
        if path is not None or _state["path"] is None:
            _state["path"], _state["keys"] = path, None
        if _state.get("installed"):
            return
        register_serializer()
        from kombu.entity import TRANSIENT_DELIVERY_MODE as TRANSIENT
        from nameko import serialization
        from nameko.amqp.publish import Publisher
        from nameko.messaging import QueueConsumer
        from nameko.rpc import ReplyListener, RpcConsumer

        Publisher.publish = _sealing_publish(Publisher.publish)
        # Transient, not persistent: a request or reply matters only while its caller waits (a timeout and an
        # expiration, tansiq.calls). Kept on disk, it cost the broker a write per message, and a request
        # surviving a broker restart could run after the user was told 503.
        Publisher.delivery_mode = TRANSIENT
        RpcConsumer.handle_message = _opening_request(RpcConsumer.handle_message)
        ReplyListener.handle_message = _opening_reply(ReplyListener.handle_message)
        QueueConsumer.get_consumers = _rejecting_undecodable(QueueConsumer.get_consumers)
        serialization.setup = _accepting_sealed(serialization.setup)
        _state["installed"] = True


def _sealing_publish(publish):
    @functools.wraps(publish)
    def sealed_publish(self, payload, **kwargs):
        body = kombu.serialization.dumps(payload, "json")[2]
        body = body.encode("utf-8") if isinstance(body, str) else body
        kwargs.pop("serializer", None)
        where = binding(kwargs.get("exchange"), kwargs.get("routing_key"), kwargs.get("reply_to"),
                        kwargs.get("correlation_id"))
        return publish(self, keys().seal(body, where), content_type=CONTENT_TYPE, content_encoding="binary",
                       **kwargs)

    return sealed_publish


def open_body(body, message):
    """The JSON body of a sealed delivery; TransportRefused if it is not one this process can open."""
    if message.content_type != CONTENT_TYPE:
        raise TransportRefused(f"internal messages must be sealed (got {message.content_type or 'no content type'})")
    return kombu_json.loads(open_sealed(body, message_binding(message)))


def _opening_request(handle_message):
    @functools.wraps(handle_message)
    def opened(self, body, message):
        try:
            body = open_body(body, message)
        except TransportRefused as exc:
            log.warning("refused RPC request %s: %s", message.delivery_info.get("routing_key"), exc)
            if message.properties.get("reply_to") and message.content_type == CONTENT_TYPE:
                # A sealed error: a caller holding the key learns why; a stranger learns nothing.
                self.handle_result(message, None, (TransportRefused, exc, None))
            else:
                self.queue_consumer.ack_message(message)
            return
        handle_message(self, body, message)

    return opened


def _opening_reply(handle_message):
    @functools.wraps(handle_message)
    def opened(self, body, message):
        try:
            body = open_body(body, message)
        except TransportRefused as exc:
            from nameko.exceptions import serialize

            log.warning("refused an RPC reply (correlation id %s): %s", message.properties.get("correlation_id"), exc)
            body = {"result": None, "error": serialize(exc)}
        handle_message(self, body, message)

    return opened


def _rejecting_undecodable(get_consumers):
    @functools.wraps(get_consumers)
    def consumers(self, consumer_cls, channel):
        made = get_consumers(self, consumer_cls, channel)
        for consumer in made:
            consumer.on_decode_error = _reject_undecodable
        return made

    return consumers


def _reject_undecodable(message, exc):
    # kombu would raise out of the consumer loop, ending the service: a body is never worth that.
    log.warning("rejected a message kombu cannot decode (content type %r): %s", message.content_type,
                type(exc).__name__)
    try:
        message.reject(requeue=False)
    except Exception as error:  # noqa: BLE001 - connection gone: the broker gives it back, rejected again
        log.warning("could not reject it: %r", error)


def _accepting_sealed(setup):
    @functools.wraps(setup)
    def with_sealed(config):
        serializer, accept = setup(config)
        return serializer, [*accept, *([SERIALIZER] if SERIALIZER not in accept else [])]

    return with_sealed


def installed():
    return bool(_state.get("installed"))



def cluster_rpc(config, timeout=None):
    """nameko's standalone ClusterRpcProxy, sealing like the services (for the CLI, the kernel, the tests)."""
    install()
    from nameko.standalone.rpc import ClusterRpcProxy

    return ClusterRpcProxy(config, timeout=timeout)
