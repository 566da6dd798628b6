"""The per-service broker users' permissions (tansiq.broker_users), without a broker (see
tests/integration/test_broker_users.py for the same users on the real one)."""

import json
import re
from pathlib import Path

from tansiq import broker_users

ROOT = Path(__file__).resolve().parents[2]


def rpc_write(definitions, user):
    return next(p["write"] for p in definitions["topic_permissions"]
                if p["user"] == user and p["exchange"] == broker_users.RPC_EXCHANGE)


def test_each_service_may_call_only_what_its_code_calls():
    passwords, definitions = broker_users.generate(prefix="x-")
    assert {user["name"] for user in definitions["users"]} == {f"x-{s}" for s in broker_users.SERVICES}
    assert all(password not in json.dumps(definitions) for password in passwords.values())  # hashes only
    assert re.match(rpc_write(definitions, "x-notifications"), "directory.get_staff")
    for forbidden in ("intake.get_beneficiary", "referrals.list_referrals", "intake.health"):
        assert not re.match(rpc_write(definitions, "x-notifications"), forbidden), forbidden
    assert re.match(rpc_write(definitions, "x-referrals"), "intake.prepare_referral_share")
    assert not re.match(rpc_write(definitions, "x-intake"), "referrals.list_referrals")
    assert re.match(rpc_write(definitions, "x-gateway"), "intake.get_beneficiary")
    assert broker_users.rpc_targets("referrals") == ["directory", "intake"]


def test_no_service_reads_another_services_queues():
    for service in broker_users.SERVICES:
        permissions, _ = broker_users.service_permissions(service)
        for other in set(broker_users.SERVICES) - {service}:
            for queue in (f"{other}.events", f"{other}.events.dlq", f"rpc-{other}"):
                assert not re.match(permissions["read"], queue), (service, queue)
                assert not re.match(permissions["configure"], queue), (service, queue)
        assert re.match(permissions["read"], f"{service}.events.dlq")


def test_the_committed_permissions_are_the_generated_ones():
    committed = json.loads((ROOT / "deploy" / "rabbitmq" / "service-users.json").read_text(encoding="utf-8"))
    assert committed == broker_users.permissions_only(), "run: tansiq broker users --permissions " \
                                                         "deploy/rabbitmq/service-users.json"


def test_env_lines_keep_passwords_and_speak_amqps(tmp_path):
    env = tmp_path / ".env"
    env.write_text("TANSIQ_INTAKE_AMQP_URI=amqp://intake:s%40me@rabbitmq:5672/\n")
    kept = broker_users.read_env(env)
    assert kept == {"intake": "s@me"}
    passwords, _ = broker_users.generate(kept)
    lines = broker_users.env_lines(passwords, "amqps://broker.example:5671/tansiq")
    assert "TANSIQ_INTAKE_AMQP_URI=amqps://intake:s%40me@broker.example:5671/tansiq" in lines
