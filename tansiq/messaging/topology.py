"""Broker topology as code: every exchange and queue name, and their arguments.

Services declare what they use from here; `tansiq topology export` writes the
same thing as RabbitMQ definitions into deploy/rabbitmq/ (a test keeps them in step).
"""

from dataclasses import dataclass, field

EVENTS_EXCHANGE = "tansiq.events"          # topic; routing key = CloudEvents type
UNROUTABLE_EXCHANGE = "tansiq.unroutable"  # fanout; alternate exchange of every topic exchange
UNROUTABLE_QUEUE = "tansiq.unroutable"     # counted by `tansiq status`, never dropped
PARTNERS_INBOUND = "partners.inbound"      # topic; routing key = "<slug>.<type>"
PARTNERS_OUTBOUND = "partners.outbound"    # topic; routing key = "<slug>.<type>"

# Backoff before each retry of a failed handler, then the dead-letter queue.
RETRY_DELAYS_MS = (1000, 5000, 25000)


def consumer_queue(service):
    return f"{service}.events"


def retry_queue(service, attempt):
    return f"{consumer_queue(service)}.retry.{attempt}"


def dead_letter_queue(service):
    return f"{consumer_queue(service)}.dlq"


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


def service_queues(service, bindings, retry_delays_ms=RETRY_DELAYS_MS):
    """The main queue of a consuming service, its delayed-retry queues and its dead-letter queue."""
    main = consumer_queue(service)
    queues = [Queue(main, dict(QUORUM), [(EVENTS_EXCHANGE, key) for key in bindings])]
    for attempt, delay in enumerate(retry_delays_ms, start=1):
        # A retry waits out its delay here, then dead-letters straight back to the main queue.
        queues.append(Queue(retry_queue(service, attempt), {
            "x-message-ttl": delay,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": main,
        }))
    queues.append(Queue(dead_letter_queue(service), dict(QUORUM)))
    return queues


def unroutable_queue():
    return Queue(UNROUTABLE_QUEUE, dict(QUORUM), [(UNROUTABLE_EXCHANGE, "")])


def definitions(bindings_by_service, vhost="/", retry_delays_ms=RETRY_DELAYS_MS):
    """RabbitMQ definitions JSON (as loaded by `management.load_definitions`) for the whole network."""
    queues = [unroutable_queue()]
    for service, bindings in sorted(bindings_by_service.items()):
        queues += service_queues(service, bindings, retry_delays_ms)
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
