"""How errors raised in workers are logged: refusals are one line, failures keep their traceback;
and the start-up wait for called services cannot deadlock."""

import importlib
import io
import logging

import pytest
from marshmallow import ValidationError
from nameko.exceptions import RemoteError, UnknownService

from tansiq import config as tansiq_config
from tansiq.errors import DomainError, Forbidden, NotFound, RefusalLogFilter
from tansiq.runner import called_services, service_class


class FakeEntrypoint:
    method_name = "create_event"


class FakeWorker:
    service_name = "events"
    entrypoint = FakeEntrypoint()


@pytest.fixture(autouse=True)
def root_level():
    """The root logger's level is what `tansiq run` sets from LOG_LEVEL (INFO by default)."""
    root = logging.getLogger()
    saved = root.level
    root.setLevel(logging.INFO)
    yield root
    root.setLevel(saved)


def logged(exc):
    """What nameko's container writes when a worker raises `exc`, through our handler filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RefusalLogFilter())
    logger = logging.getLogger(f"test.refusals.{id(stream)}")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        raise exc
    except Exception as raised:  # noqa: BLE001 - logged like nameko does
        logger.exception("error handling worker %s: %s", FakeWorker(), raised)
    return stream.getvalue()


@pytest.mark.parametrize("exc, level", [
    (Forbidden("only coordinators edit the calendar"), "WARNING"),
    (DomainError("not in this state", code="forbidden"), "WARNING"),
    (NotFound("no such event"), "INFO"),
    (DomainError("the request does not have the expected shape", details={"title": ["missing"]}), "INFO"),
    (ValidationError({"start": ["Not a valid datetime."]}), "INFO"),
    (RemoteError("ValidationError", "bad"), "INFO"),
    (UnknownService("directory"), "WARNING"),
])
def test_a_refusal_is_one_line_without_a_traceback(exc, level):
    text = logged(exc)
    assert text.count("\n") == 1, text
    assert text.startswith(f"{level} "), text
    assert "Traceback" not in text
    assert "events.create_event" in text and type(exc).__name__ in text


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyError("staff"), RemoteError("TypeError", "bad")])
def test_a_failure_keeps_its_traceback_at_error(exc):
    text = logged(exc)
    assert text.startswith("ERROR error handling worker"), text
    assert "Traceback (most recent call last)" in text


def test_at_log_level_warning_only_forbidden_refusals_are_kept(root_level):
    root_level.setLevel(logging.WARNING)
    assert logged(NotFound("no such event")) == ""
    assert logged(Forbidden("not yours")).startswith("WARNING refused events.create_event: Forbidden")


def waits(service):
    cls = service_class(f"services.{service}.service", service)
    return set(getattr(cls, "waits_for", called_services(cls)))


def test_services_wait_for_what_they_call_and_never_for_each_other():
    graph = {service: waits(service) for service in tansiq_config.SERVICES}
    assert graph["referrals"] == {"directory", "intake"}
    assert graph["directory"] == set()
    assert graph["gateway"] == {"directory"}  # other services' absence is answered 503, per request

    def reaches(start, target, seen=()):
        return any(nxt == target or (nxt not in seen and reaches(nxt, target, (*seen, nxt)))
                   for nxt in graph.get(start, ()))

    cycles = [service for service in graph if reaches(service, service)]
    assert cycles == [], f"services waiting for each other would never start: {cycles}"


def test_called_services_sees_the_proxies_of_mixins():
    gateway = importlib.import_module("services.gateway.service").GatewayService
    assert {"directory", "intake", "referrals", "events", "notifications"} <= set(called_services(gateway))
