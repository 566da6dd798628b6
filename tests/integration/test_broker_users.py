"""Per-service broker users (`tansiq broker users`) on the real broker, in a test vhost with test-only names:
the services run with nothing more than their own user's permissions, and a broker client without the
right user cannot call a service."""

import pytest
from amqp.exceptions import AccessRefused
from harness import admin

from tansiq import broker_users
from tansiq.transport import cluster_rpc, use_key_file


def client(uri):
    return cluster_rpc({"AMQP_URI": uri}, timeout=20)


@pytest.fixture
def users(network_factory):
    network = network_factory()
    prefix = f"test-{network.id}-"  # users are global on a broker: names of this test only
    passwords, _ = broker_users.generate(prefix=prefix)
    vhost_admin = admin(network.vhost)
    broker_users.apply(vhost_admin, passwords, prefix)
    uris = {service: broker_users.amqp_uri(network.amqp_uri, prefix + service, password)
            for service, password in passwords.items()}
    use_key_file(network.transport_key_file)  # the services' transport keys, for this test's clients
    yield network, uris
    for service in broker_users.SERVICES:
        vhost_admin.delete_user(prefix + service)


def test_services_run_on_their_own_user_and_only_their_callers_reach_them(users):
    network, uris = users
    for service in ("directory", "intake"):
        network.env[f"TANSIQ_{service.upper()}_AMQP_URI"] = uris[service]
    network.migrate()
    network.start("directory", "intake")  # declared their queues and consume with least privilege

    staff = {"id": "s-safi-1", "association": "amal-safi", "roles": ["case_worker"]}
    with client(uris["gateway"]) as gateway:  # the gateway may call intake, and intake may call directory
        registered = gateway.intake.register_beneficiary({"first_name": "Khadija"}, network.assertion(staff))
        assert gateway.intake.get_beneficiary(registered["id"], network.assertion(staff))["first_name"] == "Khadija"

    for stranger in ("notifications", "events", "directory"):  # none of them calls intake
        with pytest.raises(AccessRefused, match="intake.get_beneficiary"):
            with client(uris[stranger]) as rpc:
                rpc.intake.get_beneficiary(registered["id"], network.assertion(staff))

    with client(uris["intake"]) as intake:  # intake may call the directory, not referrals
        assert intake.directory.list_associations() == []  # allowed (an empty directory here)
        with pytest.raises(AccessRefused):
            intake.referrals.list_referrals(network.assertion(staff))

    wrong = uris["gateway"].replace("@", "x@", 1)  # the gateway's name with a wrong password
    with pytest.raises(Exception, match="ACCESS_REFUSED|Login was refused|403"):
        with client(wrong) as rpc:
            rpc.intake.health()

