"""The shared calendar and partner systems, through the real broker and real provisioned users:
the network's changes reach a partner on its own queue; a partner publishes its own events; a
partner publishing someone else's event is refused with a reason on its queue."""

import threading
from urllib.parse import quote

import pytest
from harness import add_partner_association, eventually, random_slug

from tansiq import signing
from tansiq.broker_admin import BrokerAdmin
from tansiq.partner.client import PartnerClient

PARTNER = random_slug("tifawin")  # never a real association's broker user: broker users are global
COORDINATOR = {"id": "s-safi-2", "association": "amal-safi", "roles": ["coordinator"], "language": "fr",
               "name": "Hanane Benali"}


def event_data(organiser, event_id, title, city):
    return {"event_id": event_id, "organiser": organiser, "title": title, "kind": "fair", "city": city,
            "starts_at": "2027-04-10T09:00:00+00:00", "ends_at": "2027-04-10T17:00:00+00:00",
            "visibility": "public", "status": "published", "sequence": 0}


@pytest.fixture
def calendar_with_partner(network_factory, tmp_path):
    network = network_factory()
    network.migrate()
    network.seed()
    add_partner_association(network, PARTNER)
    admin = BrokerAdmin(vhost=network.vhost)
    admin.declare_topology()
    credentials = admin.add_partner(PARTNER)
    key = signing.generate_key()
    network.start("directory")
    with network.rpc() as rpc:
        rpc.directory.set_public_key(PARTNER, signing.public_key_b64(key))  # integrates by queue from now on
    network.start("events")
    uri = f"amqp://{PARTNER}:{quote(credentials['password'], safe='')}@127.0.0.1:5672/{quote(network.vhost, safe='')}"
    client = PartnerClient(uri, PARTNER, key, tmp_path / "partner-outbox.sqlite3")
    received = []
    stop = threading.Event()
    listener = threading.Thread(target=client.listen, args=(received.append, stop), daemon=True)
    listener.start()
    yield network, client, received
    stop.set()
    listener.join(timeout=10)
    admin.revoke_partner(PARTNER)


def test_network_calendar_changes_reach_the_partner_queue(calendar_with_partner):
    network, _, received = calendar_with_partner
    with network.rpc() as rpc:
        created = rpc.events.create_event({
            "title": "Foire des coopératives", "kind": "fair", "organiser": "amal-safi", "city": "Safi",
            "start": "2027-04-17T09:00", "end": "2027-04-17T18:00", "status": "published",
            "visibility": "public"}, actor=network.assertion(COORDINATOR, "events"))
        event_id = created["event"]["id"]
        rpc.events.cancel_event(event_id, actor=network.assertion(COORDINATOR, "events"))
    types = eventually(lambda: [m.type for m in received if m.data.get("event_id") == event_id] == [
        "ma.tansiq.event.published.v1", "ma.tansiq.event.cancelled.v1"] and received, timeout=60)
    assert types


def test_a_partner_publishes_its_own_event_and_is_refused_for_another(calendar_with_partner):
    network, client, received = calendar_with_partner
    client.send("ma.tansiq.event.published.v1", event_data(PARTNER, "tf-1", "Salon de l'arganier", "Agadir"))
    forged = client.send("ma.tansiq.event.published.v1",
                         event_data("amal-safi", "tf-2", "Pas le nôtre", "Safi"))
    client.flush(timeout=30)

    def listed():
        with network.rpc() as rpc:
            return [o["title"] for o in rpc.events.list_occurrences("2027-04-01", "2027-05-01")]

    eventually(lambda: "Salon de l'arganier" in listed(), timeout=60)
    rejection = eventually(lambda: next((m for m in received if m.type == "ma.tansiq.message.rejected.v1"), None),
                           timeout=60)
    assert rejection.data["rejected_id"] == forged.id
    assert rejection.data["reason"] == "not_allowed"
    assert "Pas le nôtre" not in listed()



def test_runaway_recurrence_rules_are_answered_invalid_rrule(calendar_with_partner):
    network, client, received = calendar_with_partner
    refused = {client.send("ma.tansiq.event.published.v1",
                           {**event_data(PARTNER, f"tf-r{n}", "Règle sans fin", "Agadir"), "rrule": rule}).id
               for n, rule in enumerate(["FREQ=DAILY;INTERVAL=0", "FREQ=MINUTELY", "FREQ=DAILY;COUNT=1000000"])}
    client.send("ma.tansiq.event.published.v1", event_data(PARTNER, "tf-ok", "Après la règle", "Agadir"))
    client.flush(timeout=30)
    rejections = eventually(lambda: (found := {m.data["rejected_id"]: m.data["reason"] for m in received
                                               if m.type == "ma.tansiq.message.rejected.v1"})
                            and set(found) >= refused and found, timeout=60)
    assert {rejections[message_id] for message_id in refused} == {"invalid_rrule"}

    def listed():  # the service is alive and applies the next message
        with network.rpc() as rpc:
            return [o["title"] for o in rpc.events.list_occurrences("2027-04-01", "2027-05-01")]

    eventually(lambda: "Après la règle" in listed(), timeout=60)
    assert "Règle sans fin" not in listed()
