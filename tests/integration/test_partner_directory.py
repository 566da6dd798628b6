"""`tansiq partners add` registers the partner's public keys (signature, encryption) in the real directory."""

import re

from harness import add_partner_association, random_slug

from tansiq import sealing, signing
from tansiq.broker_admin import BrokerAdmin

SLUG = random_slug("mogador")  # never a real association's broker user: broker users are global


def test_partners_add_registers_the_public_key_in_the_directory(network_factory):
    network = network_factory()
    network.migrate()
    network.seed()
    add_partner_association(network, SLUG)
    network.start("directory")
    admin = BrokerAdmin(vhost=network.vhost)
    admin.declare_topology()
    try:
        result = network.tansiq("partners", "add", SLUG, "--vhost", network.vhost, check=False)
        assert result.returncode == 0, result.stderr
        assert "public key registered in the directory" in result.stdout
        key_path = re.search(r"^private key:\s+(\S+)", result.stdout, re.M).group(1)
        assert key_path.startswith(str(network.var))
        with open(key_path, "rb") as key_file:
            public_key = signing.public_key_b64(signing.load_private_key(key_file.read()))
        enc_path = re.search(r"^encryption:\s+(\S+)", result.stdout, re.M).group(1)
        with open(enc_path, "rb") as key_file:
            encryption_key = sealing.public_key_b64(sealing.load_private_key(key_file.read()))
        with network.rpc() as rpc:
            published = rpc.directory.get_association(SLUG)
        assert (published["public_key"], published["encryption_key"]) == (public_key, encryption_key)
        assert [p["slug"] for p in admin.list_partners()] == [SLUG]
    finally:
        admin.revoke_partner(SLUG)
