"""`tansiq partners add|list|revoke` and `tansiq partner send|listen` against the real broker."""

import argparse
import json
import stat
import uuid
from urllib.parse import quote

import pika
import pytest

from tansiq import contracts, signing
from tansiq.broker_admin import BrokerAdmin
from tansiq.messaging import topology
from tansiq.partner import check_inbound
from tansiq.partner.cli import register

REFERRAL = contracts.get("ma.tansiq.referral.sent.v1").example


def run(*argv):
    parser = argparse.ArgumentParser(prog="tansiq")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(arg) for arg in argv])
    return args.func(args)


@pytest.fixture
def vhost():
    admin = BrokerAdmin(vhost=f"tansiq-cli-{uuid.uuid4().hex[:8]}")
    admin.add_vhost()
    admin.declare_topology()
    admin.declare_queue(topology.Queue("tansiq.partners.cli", {}, [(topology.PARTNERS_INBOUND, "#")]))
    admin.slugs = []
    yield admin
    for slug in admin.slugs:
        admin.revoke_partner(slug)
    admin.delete_vhost()


def test_from_provisioning_to_a_first_referral_and_back(vhost, tmp_path, capsys):
    slug = f"cli-{uuid.uuid4().hex[:8]}"
    vhost.slugs.append(slug)
    amqp = f"amqp://guest:guest@127.0.0.1:5672/{quote(vhost.vhost, safe='')}"
    # No directory service runs in this vhost: the command must say so, clearly, and keep the key.
    assert run("partners", "add", slug, "--vhost", vhost.vhost, "--key-dir", tmp_path, "--amqp-uri", amqp) == 2
    out, err = capsys.readouterr()
    assert "NOT registered in the directory" in err
    password = next(line.split()[-1] for line in out.splitlines() if line.startswith("password:"))
    key_file = tmp_path / f"{slug}.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    public_key = next(line.split()[-1] for line in out.splitlines() if line.startswith("public key:"))
    assert signing.public_key_b64(signing.load_private_key(key_file.read_bytes())) == public_key

    partner = ["partner", "--uri", f"amqp://{slug}:{password}@127.0.0.1:5672/{quote(vhost.vhost, safe='')}",
               "--slug", slug, "--key", key_file, "--outbox", tmp_path / "outbox.sqlite3"]
    assert run(*partner, "send", "ma.tansiq.referral.sent.v1", "--data", json.dumps(REFERRAL)) == 0
    sent = json.loads(capsys.readouterr().out)
    assert sent["waiting_in_outbox"] == 0
    assert run(*partner, "send", "ma.tansiq.message.rejected.v1", "--data", "{}") == 1  # receive-only type

    connection = pika.BlockingConnection(pika.URLParameters(amqp))
    channel = connection.channel()
    method, properties, body = channel.basic_get("tansiq.partners.cli", auto_ack=True)
    assert check_inbound(body, properties.user_id, method.routing_key, {slug: public_key}.get).id == sent["id"]
    ack = contracts.make("ma.tansiq.referral.acknowledged.v1", "referrals", {
        "referral_id": "r-41", "from_association": slug, "to_association": "wafae-marrakech"},
        correlationid=sent["id"])
    channel.confirm_delivery()
    channel.basic_publish(topology.PARTNERS_OUTBOUND, f"{slug}.{ack.type}", ack.to_bytes(), mandatory=True)
    connection.close()

    assert run(*partner, "listen", "--count", "1") == 0
    received = json.loads(capsys.readouterr().out)
    assert received["type"] == "ma.tansiq.referral.acknowledged.v1" and received["correlationid"] == sent["id"]

    assert run("partners", "list", "--vhost", vhost.vhost) == 0
    assert f"{slug}" in capsys.readouterr().out
    assert run("partners", "revoke", slug, "--vhost", vhost.vhost) == 0
    capsys.readouterr()
    assert run("partners", "list", "--vhost", vhost.vhost) == 0
    assert "revoked" in capsys.readouterr().out
