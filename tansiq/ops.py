"""Operations behind `tansiq status` and `tansiq dlq`: what is in the broker, and moving dead letters back."""

import json
from urllib.parse import unquote, urlparse

from kombu import Connection

from tansiq import config as tansiq_config
from tansiq.broker_admin import BrokerAdmin
from tansiq.config import amqp_ssl
from tansiq.messaging import topology
from tansiq.messaging.broker import ConfirmedPublisher
from tansiq.messaging.consumer import (
    ATTEMPTS_HEADER,
    ERROR_HEADER,
    KERNEL_HEADER_PREFIX,
    QUEUE_HEADER,
    REASON_HEADER,
    ROUTING_KEY_HEADER,
    SENDER_HEADER,
)

CONSUMING_SERVICES = ("intake", "referrals", "events", "notifications", "directory")


def vhost_of(amqp_uri):
    path = urlparse(amqp_uri).path
    return "/" if path in ("", "/") else unquote(path[1:])


def queue_depths(amqp_uri):
    """{queue name: (ready, consumers)} for every queue of the vhost, via the management API."""
    return BrokerAdmin(vhost=vhost_of(amqp_uri), timeout=5).queue_stats()


def queue_depths_passive(amqp_uri, names):
    """Fallback without the management plugin: passive declares of the queues we know."""
    depths = {}
    with Connection(amqp_uri) as connection:
        for name in names:
            channel = connection.channel()
            try:
                _, ready, consumers = channel.queue_declare(name, passive=True)
                depths[name] = (ready, consumers)
            except Exception:  # noqa: BLE001 - a queue not declared yet
                pass
            finally:
                try:
                    channel.close()
                except Exception:  # noqa: BLE001
                    pass
    return depths


def known_queues():
    names = [topology.UNROUTABLE_QUEUE]
    for service in CONSUMING_SERVICES:
        for main in (topology.consumer_queue(service), topology.partner_inbound_queue(service)):
            names += [main, topology.dead_letter_queue(main)]
    return names + [topology.PARTNERS_UNHANDLED, topology.dead_letter_queue(topology.PARTNERS_UNHANDLED)]


def main_queue(name):
    """`intake` -> its events queue; a queue name (`referrals.partners`) is taken as it is."""
    return name if "." in name else topology.consumer_queue(name)


def dead_letters(amqp_uri, service, limit=100):
    """Browse a dead-letter queue without removing anything (messages are requeued)."""
    queue = topology.dead_letter_queue(main_queue(service))
    found = []
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        held = []
        try:
            while len(held) < limit:
                message = channel.basic_get(queue, no_ack=False)
                if message is None:
                    break
                held.append(message)
                headers = message.properties.get("application_headers") or {}
                found.append({
                    "message_id": message.properties.get("message_id"),
                    "reason": headers.get(REASON_HEADER),
                    "error": headers.get(ERROR_HEADER),
                    "attempts": headers.get(ATTEMPTS_HEADER),
                    "queue": headers.get(QUEUE_HEADER),
                    "sender": headers.get(SENDER_HEADER),
                    "body": message.body.decode("utf-8", "replace") if isinstance(message.body, bytes)
                    else message.body,
                })
        finally:
            for message in held:
                channel.basic_reject(message.delivery_tag, requeue=True)
            channel.close()
    return found


def replay(amqp_uri, service, message_id=None):
    """Move dead letters (all, or one id) back to the service's queue with fresh attempts; returns how many."""
    queue = topology.dead_letter_queue(main_queue(service))
    publisher = ConfirmedPublisher(amqp_uri)
    moved = 0
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        skipped = []
        try:
            while True:
                message = channel.basic_get(queue, no_ack=False)
                if message is None:
                    break
                if message_id and message.properties.get("message_id") != message_id:
                    skipped.append(message)
                    continue
                headers = replay_headers(message.properties)
                publisher.publish(message.body, "", main_queue(service),
                                  message.properties.get("message_id"), headers=headers,
                                  content_type=message.properties.get("content_type") or "application/json")
                channel.basic_ack(message.delivery_tag)  # only after the broker confirmed the copy
                moved += 1
        finally:
            for message in skipped:
                channel.basic_reject(message.delivery_tag, requeue=True)
            channel.close()
            publisher.close()
    return moved


def replay_headers(properties):
    """Headers for a dead letter sent back: fresh attempts, but a partner message stays the partner's.

    The kernel's record of the sender (and routing key) is kept; a message the broker itself
    dead-lettered (delivery limit) still carries the AMQP user_id it was published with.
    """
    original = properties.get("application_headers") or {}
    headers = {key: value for key, value in original.items()
               if not str(key).startswith(KERNEL_HEADER_PREFIX) and key != "x-death"}
    for key in (SENDER_HEADER, ROUTING_KEY_HEADER):
        if key in original:
            headers[key] = original[key]
    ingress = next((death for death in original.get("x-death") or []
                    if death.get("exchange") == topology.PARTNERS_INBOUND), None)
    if properties.get("user_id") and ingress is not None:
        headers[SENDER_HEADER] = properties["user_id"]
        headers[ROUTING_KEY_HEADER] = (ingress.get("routing-keys") or [""])[0]
    return headers


def ping_service(amqp_uri, service, timeout=5):
    from tansiq.transport import cluster_rpc

    with cluster_rpc({"AMQP_URI": amqp_uri, "AMQP_SSL": amqp_ssl(amqp_uri)}, timeout=timeout) as cluster:
        return getattr(cluster, service).health()


def status(amqp_uri=None, out=print, check_services=True):
    """Print the state of the network; returns a process exit code (non-zero: broker unreachable)."""
    amqp_uri = amqp_uri or tansiq_config.amqp_uri()
    try:
        with Connection(amqp_uri, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:  # noqa: BLE001
        out(f"broker      UNREACHABLE at {urlparse(amqp_uri).hostname}: {exc}")
        return 2
    out(f"broker      ok ({urlparse(amqp_uri).hostname}:{urlparse(amqp_uri).port or 5672}, "
        f"vhost {vhost_of(amqp_uri)})")
    try:
        names = sorted(queue_depths(amqp_uri))
        source = "all queues of the vhost"
    except Exception:  # noqa: BLE001 - plugin not enabled: fall back to the queues we know
        names = known_queues()
        source = "known queues (management plugin not reachable)"
    # Depths from passive declares: exact now, where the management statistics lag by seconds.
    names = [name for name in names if not name.startswith(("amq.", "rpc-", "rpc.reply-"))]  # nameko's RPC plumbing
    depths = queue_depths_passive(amqp_uri, names)
    out(f"queues      ({source})")
    for name, (ready, consumers) in sorted(depths.items()):
        marker = "  <- dead letters" if name.endswith(".dlq") and ready else ""
        marker = "  <- unroutable" if name == topology.UNROUTABLE_QUEUE and ready else marker
        out(f"  {name:<40} {ready:>6} ready  {consumers:>3} consumers{marker}")
    dead = sum(ready for name, (ready, _) in depths.items() if name.endswith(".dlq"))
    unroutable = depths.get(topology.UNROUTABLE_QUEUE, (0, 0))[0]
    out(f"dead letters {dead}   unroutable {unroutable}")
    if unroutable:
        out(f"WARNING     {unroutable} message(s) reached no queue (in {topology.UNROUTABLE_QUEUE}): a type "
            f"nobody consumes, or a service declared after the publish; inspect them in the management UI")
    if check_services:
        from tansiq.transport import cluster_rpc

        # One connection for every ping.
        with cluster_rpc({"AMQP_URI": amqp_uri, "AMQP_SSL": amqp_ssl(amqp_uri)}, timeout=3) as cluster:
            for service in tansiq_config.SERVICES:
                if service == "gateway":
                    continue
                try:
                    getattr(cluster, service).health()
                    out(f"service     {service:<14} up")
                except Exception:  # noqa: BLE001
                    out(f"service     {service:<14} DOWN")
    return 0


def service_bindings():
    """({service: types its @handles consume}, {service: types its @handles_partner consume}), from the classes."""
    import inspect

    from tansiq.messaging.consumer import EventHandler, PartnerHandler
    from tansiq.runner import service_class

    events, partners = {}, {}
    for service in CONSUMING_SERVICES:
        cls = service_class(f"services.{service}.service", service)
        for _, method in inspect.getmembers(cls, inspect.isfunction):
            for extension in getattr(method, "nameko_entrypoints", ()):
                if isinstance(extension, PartnerHandler):
                    partners.setdefault(service, set()).update(extension.types)
                elif isinstance(extension, EventHandler):
                    events.setdefault(service, set()).update(extension.types)
    return ({name: sorted(types) for name, types in events.items()},
            {name: sorted(types) for name, types in partners.items()})


def export_definitions(path):
    """RabbitMQ definitions (exchanges, queues, bindings) generated from tansiq.messaging.topology."""
    definitions = topology.definitions()
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(definitions, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return definitions
