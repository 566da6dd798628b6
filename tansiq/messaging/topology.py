"""Broker topology as code: every exchange and queue name, and their arguments.

Services declare what they use from here; `tansiq topology export` writes the
same thing as RabbitMQ definitions into deploy/rabbitmq/ (a test keeps them in step).
"""

from dataclasses import dataclass, field

EVENTS_EXCHANGE = "tansiq.events"          # topic; routing key = CloudEvents type
UNROUTABLE_EXCHANGE = "tansiq.unroutable"  # fanout; alternate exchange of every topic exchange
UNROUTABLE_QUEUE = "tansiq.unroutable"     # counted by `tansiq status`; bounded, full = publish refused
UNROUTABLE_MAX_LENGTH = 10000
PARTNERS_INBOUND = "partners.inbound"      # topic; routing key = "<slug>.<type>"
PARTNERS_OUTBOUND = "partners.outbound"    # topic; routing key = "<slug>.<type>"
# Every partner message also lands here (binding "#"): the kernel answers those no service
# consumes (unknown or receive-only types, malformed routing keys) with `unknown_type`.
PARTNERS_UNHANDLED = "partners.unhandled"

_REFERRAL_STEPS = ("accepted", "acknowledged", "closed", "completed", "declined", "sent", "started", "withdrawn")
_CALENDAR = tuple(f"ma.tansiq.event.{verb}.v1" for verb in ("cancelled", "published", "updated"))
_REFERRAL = tuple(f"ma.tansiq.referral.{verb}.v1" for verb in _REFERRAL_STEPS)
# What each service consumes, by type. The whole topology is declared from these tables before
# anything is published, whatever starts first (tests/unit/test_topology.py keeps them equal to the
# services' @handles / @handles_partner declarations).
EVENT_BINDINGS = {
    "events": _CALENDAR,
    "notifications": tuple(sorted((
        "ma.tansiq.association.registered.v1", "ma.tansiq.beneficiary.erased.v1",
        "ma.tansiq.beneficiary.registered.v1", "ma.tansiq.consent.revoked.v1",
        "ma.tansiq.event.overlap_detected.v1", "ma.tansiq.event.overlap_detected.v2", "ma.tansiq.event.published.v1",
        "ma.tansiq.event.reminder_due.v1", *_REFERRAL,
        *(f"ma.tansiq.referral.{verb}.v1" for verb in ("dismissed", "escalated", "expired", "reminder_due"))))),
    "referrals": ("ma.tansiq.beneficiary.erased.v1", "ma.tansiq.consent.revoked.v1"),
}
PARTNER_BINDINGS = {
    "events": _CALENDAR,
    "referrals": _REFERRAL,
}

# The directory's change feed (tansiq.readmodel): every process keeping a read model of the directory
# binds its own exclusive queue `<service>.readmodel.<random>` to these types on the events exchange, so
# each replica sees every change. The durable sink below keeps such messages routable while no process
# listens (the directory alone, `tansiq demo`): they expire there; a read model starts from a snapshot.
DIRECTORY_CHANGES = tuple(f"ma.tansiq.directory.{change}.v1" for change in (
    "association_changed", "session_opened", "sessions_revoked", "staff_changed"))
DIRECTORY_CHANGES_SINK = "directory.changes"
DIRECTORY_CHANGES_SINK_TTL_MS = 60000


def read_model_queue_prefix(service):
    return f"{service}.readmodel."


# Backoff before each retry of a failed handler, then the dead-letter queue.
RETRY_DELAYS_MS = (1000, 5000, 25000)


def consumer_queue(service):
    return f"{service}.events"


def retry_queue(main_queue, attempt):
    return f"{main_queue}.retry.{attempt}"


def dead_letter_queue(main_queue):
    return f"{main_queue}.dlq"


def partner_queue(slug):
    return f"partner.{slug}"


def partner_inbound_queue(service):
    return f"{service}.partners"


@dataclass
class Queue:
    name: str
    arguments: dict = field(default_factory=dict)
    bindings: list = field(default_factory=list)  # (exchange, routing_key)


@dataclass
class Exchange:
    name: str
    type: str
    arguments: dict = field(default_factory=dict)


def exchanges():
    with_alternate = {"alternate-exchange": UNROUTABLE_EXCHANGE}
    return [
        Exchange(UNROUTABLE_EXCHANGE, "fanout"),
        Exchange(EVENTS_EXCHANGE, "topic", with_alternate),
        Exchange(PARTNERS_INBOUND, "topic", with_alternate),
        Exchange(PARTNERS_OUTBOUND, "topic", with_alternate),
    ]


QUORUM = {"x-queue-type": "quorum"}
DELIVERY_LIMIT = 10


def queue_set(main, exchange, routing_keys, retry_delays_ms=RETRY_DELAYS_MS):
    """A consumed queue, its delayed-retry queues and its dead-letter queue."""
    # The broker's own guard against poison messages that kill the consumer before it can
    # dead-letter them itself (it never sees the failure): after DELIVERY_LIMIT deliveries the
    # quorum queue dead-letters the message — at least once — into the same DLQ.
    guarded = dict(QUORUM, **{
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue(main),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    })
    queues = [Queue(main, guarded, [(exchange, key) for key in routing_keys])]
    for attempt, delay in enumerate(retry_delays_ms, start=1):
        # A retry waits out its delay here, then dead-letters straight back to the main queue.
        queues.append(Queue(retry_queue(main, attempt), {
            "x-message-ttl": delay,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": main,
        }))
    queues.append(Queue(dead_letter_queue(main), dict(QUORUM)))
    return queues


def service_queues(service, types, retry_delays_ms=RETRY_DELAYS_MS):
    """What a service consumes from the network's events exchange (routing key = type)."""
    return queue_set(consumer_queue(service), EVENTS_EXCHANGE, types, retry_delays_ms)


def partner_inbound_queues(service, types, retry_delays_ms=RETRY_DELAYS_MS):
    """What a service consumes from partner systems (routing key = "<slug>.<type>")."""
    return queue_set(partner_inbound_queue(service), PARTNERS_INBOUND, [f"*.{type_}" for type_ in types],
                     retry_delays_ms)


def unroutable_queue():
    # Bounded; when full the broker refuses (nacks) the publish, so the outbox keeps the message.
    return Queue(UNROUTABLE_QUEUE, dict(QUORUM, **{"x-max-length": UNROUTABLE_MAX_LENGTH,
                                                   "x-overflow": "reject-publish"}),
                 [(UNROUTABLE_EXCHANGE, "")])


def directory_changes_sink():
    """Where the directory's changes go when no read model listens: bounded, and each expires within a minute."""
    return Queue(DIRECTORY_CHANGES_SINK, {"x-message-ttl": DIRECTORY_CHANGES_SINK_TTL_MS,
                                          "x-max-length": UNROUTABLE_MAX_LENGTH, "x-overflow": "drop-head"},
                 [(EVENTS_EXCHANGE, type_) for type_ in DIRECTORY_CHANGES])


def partner_unhandled_queues(retry_delays_ms=RETRY_DELAYS_MS):
    """The kernel's catch-all on partners.inbound: answers what no service consumes."""
    return queue_set(PARTNERS_UNHANDLED, PARTNERS_INBOUND, ["#"], retry_delays_ms)


def routed_partner_types():
    """Partner message types some service consumes from partners.inbound."""
    return frozenset(type_ for types in PARTNER_BINDINGS.values() for type_ in types)


def network_queues(retry_delays_ms=RETRY_DELAYS_MS, bindings_by_service=None, partner_bindings_by_service=None):
    """Every queue of the network with its bindings (the unroutable queue first)."""
    queues = [unroutable_queue()]
    for service, types in sorted((bindings_by_service or EVENT_BINDINGS).items()):
        queues += service_queues(service, types, retry_delays_ms)
    for service, types in sorted((partner_bindings_by_service or PARTNER_BINDINGS).items()):
        queues += partner_inbound_queues(service, types, retry_delays_ms)
    return queues + partner_unhandled_queues(retry_delays_ms) + [directory_changes_sink()]


def definitions(bindings_by_service=None, partner_bindings_by_service=None, vhost="/",
                retry_delays_ms=RETRY_DELAYS_MS):
    """RabbitMQ definitions JSON (as loaded by `management.load_definitions`) for the whole network."""
    queues = network_queues(retry_delays_ms, bindings_by_service, partner_bindings_by_service)
    return {
        "vhosts": [{"name": vhost}],
        "exchanges": [
            {"name": exchange.name, "vhost": vhost, "type": exchange.type, "durable": True,
             "auto_delete": False, "internal": False, "arguments": exchange.arguments}
            for exchange in exchanges()
        ],
        "queues": [
            {"name": queue.name, "vhost": vhost, "durable": True, "auto_delete": False, "arguments": queue.arguments}
            for queue in queues
        ],
        "bindings": [
            {"source": source, "vhost": vhost, "destination": queue.name, "destination_type": "queue",
             "routing_key": key, "arguments": {}}
            for queue in queues for source, key in queue.bindings
        ],
    }
