"""A route the gateway refuses for role or association reasons is written to the accountability log (intake's
hash-chained audit trail: who, which route pattern, why, when; no personal data), and a burst shows in
`tansiq audit refusals`."""

import pytest


@pytest.fixture
def network(network_factory):
    network = network_factory()
    network.migrate()
    network.seed()
    network.start("directory", "intake", "gateway")
    return network


def test_role_refusals_are_audited_and_a_burst_is_flagged(network):
    fatima = network.login("fatima@amal-safi.example")  # case worker, Safi
    record = fatima.post(f"{network.web}/api/beneficiaries", json={
        "kind": "survivor", "first_name": "CanaryKhadija", "phone": "0661234567", "city": "Safi", "language": "ar",
        "needs": ["legal_orientation"], "urgency": "urgent"}, timeout=30)
    assert record.status_code == 201, record.text
    beneficiary = record.json()["id"]

    youssef = network.login("youssef@amal-safi.example")  # events manager: no case detail
    for _ in range(12):
        refused = youssef.get(f"{network.web}/api/beneficiaries/{beneficiary}", timeout=30)
        assert refused.status_code == 403 and refused.json()["error"]["details"]["reason"] == "role_required"
    naima = network.login("naima@wafae.example")  # case worker of another association: refused by intake
    assert naima.get(f"{network.web}/api/beneficiaries/{beneficiary}", timeout=30).status_code in (403, 404)

    report = network.tansiq("audit", "refusals").stdout
    lines = report.splitlines()
    youssef_line = next(line for line in lines if line.startswith("s-safi-3 "))
    assert "12 refused" in youssef_line and youssef_line.endswith("BURST"), report
    assert "GET /api/beneficiaries/<string:beneficiary_id> (role_required)" in report
    assert beneficiary not in report and "Canary" not in report  # the route's pattern, never its values
    assert "s-safi-1 " not in report  # her own allowed reads are not refusals

    quiet = network.tansiq("audit", "refusals", "--burst", "50").stdout
    assert "BURST" not in quiet and "12 refused" in quiet
    assert "audit chain intact" in network.tansiq("audit", "verify").stdout  # in the chain, which still holds
