"""Run one service in the foreground: `tansiq run <service>`."""

import importlib
import inspect
import logging
import os
import sys

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def service_class(module_path, name):
    module = importlib.import_module(module_path)
    for _, member in inspect.getmembers(module, inspect.isclass):
        if member.__module__ == module.__name__ and getattr(member, "name", None) == name:
            return member
    raise LookupError(f"no nameko service named {name!r} in {module_path}")


def run(name, service_path=None):
    # eventlet must patch the standard library before nameko, kombu or the DB drivers
    # are imported; this is the only place that does it (no import-time side effects).
    import eventlet

    eventlet.monkey_patch()
    from nameko.cli.run import run as nameko_run

    from tansiq.messaging import robustness

    robustness.install()  # a reset while acking or replying must not end the container

    from tansiq import config as tansiq_config

    config = tansiq_config.load(name)
    logging.basicConfig(level=config.get("LOG_LEVEL", "INFO"), format=LOG_FORMAT, stream=sys.stdout)
    logging.getLogger("nameko").setLevel(logging.WARNING)
    logging.getLogger("kombu").setLevel(logging.WARNING)
    if service_path:  # tests and partners' own extensions: "module:ServiceName"
        module_path, _, cls_name = service_path.partition(":")
        cls = getattr(importlib.import_module(module_path), cls_name)
    else:
        cls = service_class(f"services.{name}.service", name)
    logging.getLogger("tansiq").info("starting %s (pid %d)", cls.name, os.getpid())
    nameko_run([cls], config)
