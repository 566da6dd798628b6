"""The first vertical slice, end to end through the real broker and real processes:
a beneficiary registered in intake becomes an inbox item for her association's case workers,
visible through the gateway's JSON API — and nothing personal travels in the event."""

import pytest
import requests
from harness import eventually

SLICE = ("directory", "intake", "notifications", "gateway")


def run_slice(network):
    network.migrate()
    network.seed()
    network.start(*SLICE)
    fatima = network.login("fatima@amal-safi.example")  # case worker, Safi
    hanane = network.login("hanane@amal-safi.example")  # case worker + coordinator, Safi
    naima = network.login("naima@wafae.example")        # case worker, Marrakech: not concerned

    response = fatima.post(f"{network.web}/api/beneficiaries", json={
        "kind": "survivor", "first_name": "Khadija", "last_name": "Bennani", "phone": "0661234567",
        "birth_year": 1991, "city": "Safi", "language": "ar",
        "needs": ["legal_orientation", "psychological_support"], "urgency": "urgent",
        "notes": "Orientée vers un accompagnement juridique.",
    }, timeout=30)
    assert response.status_code == 201, response.text
    beneficiary_id = response.json()["id"]

    def inbox(session):  # coordinators also hear of the demo's new associations: keep this slice's kind
        items = session.get(f"{network.web}/api/inbox", timeout=30).json()["items"]
        return [item for item in items if item["kind"] == "beneficiary.registered"]

    items = eventually(lambda: inbox(hanane), timeout=60, message="hanane's inbox item")
    assert len(items) == 1
    assert items[0]["kind"] == "beneficiary.registered"
    assert "Khadija" not in str(items) and "Bennani" not in str(items)
    assert len(eventually(lambda: inbox(fatima), timeout=30)) == 1
    assert inbox(naima) == []
    assert fatima.get(f"{network.web}/api/inbox/unread-count", timeout=30).json()["unread"] == 1

    # staff of another association cannot read her record
    refused = naima.get(f"{network.web}/api/beneficiaries/{beneficiary_id}", timeout=30)
    assert refused.status_code == 403
    assert requests.get(f"{network.web}/api/inbox", timeout=30).status_code == 401
    return beneficiary_id


def test_registration_reaches_the_case_workers_inbox_through_the_broker(network_factory):
    network = network_factory()
    run_slice(network)
    for service in ("intake", "notifications"):
        assert "Khadija" not in network.log(service)


@pytest.mark.postgres
def test_the_same_slice_on_postgresql(network_factory):
    network = network_factory(backend="postgres")
    run_slice(network)
