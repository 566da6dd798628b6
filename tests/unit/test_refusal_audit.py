"""The gateway writes a role or association refusal to the accountability log (intake), and never lets that
write change or hold up the refusal itself."""

import logging

import eventlet
import pytest
from actors import SIGNER, verifier  # tests/actors.py

from services.gateway import access
from tansiq.calls import TimedServiceProxy
from tansiq.errors import Forbidden

STAFF = {"id": "s-safi-3", "association": "amal-safi", "roles": ["events_manager"], "name": "Youssef",
         "language": "fr"}


class Intake:
    service_name = "intake"

    def __init__(self):
        self.calls = []

    def record_route_refusal(self, method, route, reason, actor):
        self.calls.append((method, route, reason, verifier("intake").actor(actor).id))


class Silent:
    service_name = "intake"

    def __getattr__(self, name):
        return lambda *args, **kwargs: eventlet.Event().wait()


class Gateway:
    identity = SIGNER

    def __init__(self, intake):
        self.intake_rpc = intake


def refused():
    return Forbidden("this needs the role of case worker", details={"reason": "role_required"})


def test_the_refused_staff_member_the_route_and_the_reason_are_recorded_signed_for_her():
    intake = Intake()
    access.record_refusal(Gateway(intake), STAFF, refused())
    assert intake.calls == [("?", "?", "role_required", "s-safi-3")]  # outside a worker: no route known


def test_an_intake_that_does_not_answer_delays_the_refusal_a_bounded_time_and_is_logged(monkeypatch, caplog):
    monkeypatch.setattr(access, "REFUSAL_AUDIT_TIMEOUT_S", 0.05)
    with caplog.at_level(logging.WARNING, logger="services.gateway.access"):
        access.record_refusal(Gateway(TimedServiceProxy(Silent(), timeout=30)), STAFF, refused())
    assert "could not record the refusal" in caplog.text and "s-safi-3" in caplog.text


@pytest.mark.parametrize(("code", "recorded"), [("forbidden", True), ("csrf_failed", False), ("no_consent", False),
                                              ("wrong_password", False)])
def test_only_role_and_association_refusals_are_recorded(monkeypatch, code, recorded):
    intake = Intake()

    def route():
        raise Forbidden("no", code=code, details={"reason": "other_association"})

    with pytest.raises(Forbidden):  # the refusal itself is unchanged
        access.refusals_recorded(Gateway(intake), STAFF, route)
    assert intake.calls == ([("?", "?", "other_association", "s-safi-3")] if recorded else [])
