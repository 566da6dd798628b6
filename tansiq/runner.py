"""Run one service in the foreground: `tansiq run <service>`."""

import gc
import importlib
import inspect
import logging
import os
import sys
import time

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def service_class(module_path, name):
    module = importlib.import_module(module_path)
    for _, member in inspect.getmembers(module, inspect.isclass):
        if member.__module__ == module.__name__ and getattr(member, "name", None) == name:
            return member
    raise LookupError(f"no nameko service named {name!r} in {module_path}")


def called_services(cls):
    """The services `cls` calls by RPC: its dependencies naming a `target_service` (nameko's RpcProxy, and
    tansiq.readmodel's DirectoryView, which asks the directory for a snapshot), mixins included."""
    from nameko.extensions import DependencyProvider

    providers = (getattr(cls, attribute, None) for attribute in dir(cls) if not attribute.startswith("__"))
    return sorted({provider.target_service for provider in providers
                   if isinstance(provider, DependencyProvider) and getattr(provider, "target_service", None)})


def _has_consumer(connection, queue):
    from amqp.exceptions import NotFound

    channel = connection.channel()
    try:
        _, _, consumers = channel.queue_declare(queue, passive=True)
        return consumers > 0
    except NotFound:  # the broker closes the channel: a fresh one for the next look
        return False
    finally:
        try:
            channel.close()
        except Exception:  # noqa: BLE001 - already closed by the broker
            pass


def wait_for_services(amqp_uri, services, poll_seconds=0.5):
    """Return once each of `services` listens on its RPC queue.

    A service whose handlers call the directory would otherwise start consuming before the
    directory is up: UnknownService tracebacks, retries, and at worst messages dead-lettered.
    Messages for this service wait in its durable queue meanwhile. One line while waiting
    and one once the service is up; no timeout (the user sees what it waits for)."""
    from kombu import Connection
    from nameko.rpc import RPC_QUEUE_TEMPLATE

    log = logging.getLogger("tansiq")
    with Connection(amqp_uri) as connection:
        for service in services:
            waited = False
            while not _has_consumer(connection, RPC_QUEUE_TEMPLATE.format(service)):
                if not waited:
                    log.info("waiting for %s…", service)
                    waited = True
                time.sleep(poll_seconds)
            if waited:
                log.info("%s is up", service)


def configure_logging(level):
    from tansiq.errors import RefusalLogFilter

    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stdout)
    logging.getLogger("nameko").setLevel(logging.WARNING)
    logging.getLogger("kombu").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:  # on the handler: sees records of every logger
        handler.addFilter(RefusalLogFilter())


def run(name, service_path=None):
    # eventlet must patch the standard library before nameko, kombu or the DB drivers
    # are imported; this is the only place that does it (no import-time side effects).
    import eventlet

    eventlet.monkey_patch()
    from nameko.cli.run import run as nameko_run

    from tansiq.messaging import robustness

    robustness.install()  # a reset while acking or replying must not end the container

    from tansiq import config as tansiq_config
    from tansiq import transport

    config = tansiq_config.load(name)
    transport.install(config.get("TRANSPORT_KEY_FILE"))  # every RPC body on the broker sealed
    transport.keys()  # made (local runs) or refused now, not at the first call
    configure_logging(config.get("LOG_LEVEL", "INFO"))
    if service_path:  # tests and partners' own extensions: "module:ServiceName"
        module_path, _, cls_name = service_path.partition(":")
        cls = getattr(importlib.import_module(module_path), cls_name)
    else:
        cls = service_class(f"services.{name}.service", name)
    logging.getLogger("tansiq").info("starting %s (pid %d)", cls.name, os.getpid())
    wait_for_services(config["AMQP_URI"], getattr(cls, "waits_for", called_services(cls)))
    # What is loaded by now (modules, the service class) lives as long as the process: moved out of the
    # collector's sight, so that a full collection walks only what the work made (docs/benchmarks.md).
    gc.freeze()
    nameko_run([cls], config)
