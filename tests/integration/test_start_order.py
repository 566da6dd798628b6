"""Services started in any order wait for the services they call, quietly; refusals are one log line.

Everything but the directory starts first: each says once that it waits for the directory,
then that it is up, and no log holds a traceback (before: UnknownService tracebacks, handler
retries, and the directory's first announcements dead-lettered by the services calling it).
"""

import pytest
from harness import eventually

from tansiq.errors import Forbidden
from tansiq.messaging import topology

CALLERS = ("gateway", "notifications", "events", "referrals", "intake")  # each calls the directory


@pytest.fixture(scope="module")
def network(broker_admin):
    from harness import Network

    network = Network()
    try:
        network.migrate()
        network.seed()  # the directory's outbox holds announcements the callers will consume
        network.start(*CALLERS, wait=False)
        for service in CALLERS:
            eventually(lambda service=service: "waiting for directory…" in network.log(service), timeout=60,
                       message=f"{service} did not say it waits for the directory")
        network.start("directory")
        for service in CALLERS:
            network.wait_healthy(service)
        yield network
    finally:
        network.close()


def test_services_started_before_the_directory_wait_for_it_without_a_traceback(network):
    for service in CALLERS:
        log = network.log(service)
        assert log.count("waiting for directory…") == 1, log
        assert log.count("directory is up") == 1, log
    # The directory's announcements were consumed, not dead-lettered for want of the directory.
    for service in ("events", "notifications", "referrals"):  # the services with consumers
        dlq = topology.dead_letter_queue(topology.consumer_queue(service))
        assert network.queue_depth(dlq) == 0, service
    for service in (*CALLERS, "directory"):
        assert "Traceback" not in network.log(service), f"{service}:\n{network.log(service)}"


def test_a_forbidden_request_is_one_warning_line_without_a_traceback(network):
    case_worker = network.login("fatima@amal-safi.example")  # may not edit the calendar
    event = {"title": "Foire", "kind": "fair", "organiser": "amal-safi", "city": "Safi",
             "start": "2027-04-17T09:00", "end": "2027-04-17T18:00"}
    response = case_worker.post(f"{network.web}/api/events", json=event)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    # The gateway refuses on the route's permission, so the events service is not asked; it refuses
    # the same case worker's genuine assertion itself when called directly (and logs it the same way).
    fatima = {"id": "s-safi-1", "association": "amal-safi", "roles": ["case_worker"]}
    with network.rpc() as rpc, pytest.raises(Forbidden):
        rpc.events.create_event(event, actor=network.assertion(fatima, "events"))
    for service, entrypoint in (("events", "events.create_event"), ("gateway", "gateway.events_create")):
        def refusal_lines(service=service, entrypoint=entrypoint):
            return [row for row in network.log(service).splitlines() if f"refused {entrypoint}" in row]

        line = eventually(refusal_lines, message=f"no refusal line in the {service} log")
        assert len(line) == 1 and " WARNING " in line[0], line
        assert "Traceback" not in network.log(service), network.log(service)
