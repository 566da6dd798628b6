"""Canary values in every personal field and in every free text, through a real network: a full
referral loop, a withdraw, a decline, an override referral and an erasure. Afterwards no database
file (nor its WAL/journal; PostgreSQL through pg_dump), no log, no broker queue and no dead letter
holds any of them in clear, and the recipients can read nothing.
"""

import base64
import shutil
import subprocess
import uuid

import pytest
from fixtures.firehose import firehose
from fixtures.referral_network import MARRAKECH, RABAT, Api, referral_network
from harness import admin, eventually

SAFI_ADMIN = {"rachida": ("amal-safi", "admin")}  # the demo has no admin at Safi; only an admin erases (cases.erase)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def network(request, broker_admin):
    with referral_network(request.param, extra_staff=SAFI_ADMIN) as network:
        yield network


def canary(label):
    return f"Canary{label}{uuid.uuid4().hex[:10]}"


def queued_bodies(network):
    """Every message waiting in every queue of the network's vhost (dead letters included), left in place."""
    broker = admin(network.vhost)
    bodies = []
    for queue in broker._call("GET", f"/queues/{network.vhost}"):
        if queue.get("messages"):
            got = broker._call("POST", f"/queues/{network.vhost}/{queue['name']}/get",
                               {"count": 10_000, "ackmode": "ack_requeue_true", "encoding": "auto"})
            bodies += [(queue["name"], _payload(message)) for message in got]
    return bodies


def _payload(message):
    """A body as the management API gives it: text, or base64 when it is not UTF-8 (sealed RPC bodies)."""
    if message.get("payload_encoding") == "base64":
        return base64.b64decode(message["payload"]).decode("utf-8", "replace")
    return message["payload"]


def stored_bytes(network):
    """{where: bytes} of every database file with its WAL/journal, every log, and the PostgreSQL dumps."""
    found = {path.name: path.read_bytes() for path in network.var.rglob("*") if path.is_file()}
    for name in network.pg_databases:
        dump = subprocess.run([shutil.which("pg_dump") or "pg_dump", "-h", "127.0.0.1", "-U", "postgres", name],
                              capture_output=True, check=True, timeout=60).stdout
        found[f"pg_dump {name}"] = dump
    return found


def test_no_canary_survives_in_clear_and_recipients_read_nothing(network):
    fatima, hanane, naima, amina, rachida = (Api(network, who)
                                             for who in ("fatima", "hanane", "naima", "amina", "rachida"))
    partner = network.partner
    first, last, notes = canary("First"), canary("Last"), canary("Notes")
    phone = "06" + str(uuid.uuid4().int)[:8]
    texts = {name: canary(name) for name in ("Reason", "Note", "Outcome", "Decline", "Withdrawn", "Override",
                                             "OverrideReason")}
    canaries = (first, last, notes, phone, *texts.values())
    everything = ["first_name", "last_name", "phone", "needs", "notes"]

    # RabbitMQ's firehose keeps a copy of every message published and delivered meanwhile: RPC requests and
    # replies, events, retries, dead letters.
    with firehose(network) as trace:
        beneficiary = fatima.register(first, last, phone, notes=notes)
        fatima.consent(beneficiary, everything, recipient=MARRAKECH)
        fatima.consent(beneficiary, everything, recipient=partner.slug)

        def refer(to, reason, who=fatima, **extra):
            return who.ok(who.post("/api/referrals", {
                "beneficiary_id": beneficiary, "to_association": to, "service_category": "legal_orientation",
                "reason": reason, "urgency": "normal", "fields": everything, "note": texts["Note"], **extra}),
                201)["id"]

        # 1. A full loop with Marrakech, which reads everything while it works on it.
        loop = refer(MARRAKECH, texts["Reason"])
        while_open = naima.referral(loop)
        assert (while_open["shared"]["first_name"], while_open["reason"]) == (first, texts["Reason"])
        for action, body in [("acknowledge", {}), ("accept", {}), ("start", {}),
                             ("complete", {"outcome": texts["Outcome"]})]:
            naima.ok(naima.act(loop, action, **body))
        # 2. A decline, with the recipient's own words.
        declined = refer(MARRAKECH, texts["Decline"])
        naima.ok(naima.act(declined, "acknowledge"))
        naima.ok(naima.act(declined, "decline", reason=texts["Decline"]))
        assert fatima.referral(declined)["decline_reason"] == texts["Decline"]
        # 3. A withdraw, to the partner (sealed to its key: it opens them, nobody on the way does).
        withdrawn = refer(partner.slug, texts["Withdrawn"])
        envelope, _ = partner.about(withdrawn, "sent")
        assert partner.client.open_sealed(envelope)["shared"]["first_name"] == first
        fatima.ok(fatima.act(withdrawn, "withdraw"))
        partner.about(withdrawn, "withdrawn")
        # 4. An override (no consent covers Rabat): a coordinator shares anyway, with a reason.
        override = refer(RABAT, texts["Override"], who=hanane, override_reason=texts["OverrideReason"])
        assert amina.referral(override)["shared"]["phone"] == phone
        # 5. She is erased (by an admin of her association: cases.erase).
        rachida.ok(rachida.http.delete(f"{network.web}/api/beneficiaries/{beneficiary}", timeout=30))

        # The recipients read nothing any more: closed-loop, declined, override (erasure), and withdrawn.
        for api, referral_id in ((naima, loop), (naima, declined), (amina, override)):
            # Her consents are revoked first (their own copies end), then the erasure itself reaches every referral.
            seen = eventually(lambda api=api, referral_id=referral_id: (r := api.referral(referral_id)) and any(
                h["action"] == "erase_shared" and "beneficiary erased" in h["note"] for h in r["history"]) and r,
                message=f"the erasure reached {referral_id}")
            assert (seen["shared"], seen["reason"], seen["decline_reason"], seen["outcome"]) == ({}, "", None, None)
            assert not [value for value in canaries if value in str(seen)], referral_id
        partner.about(withdrawn, "data_erased")  # the partner is told to erase its own copy too
        # The sender keeps what it must (state, who, when), not her words: she was erased.
        assert fatima.referral(loop)["state"] == "completed" and fatima.referral(loop)["reason"] == ""

        # Let every service finish with the messages in flight, then look everywhere.
        eventually(lambda: all(depth == 0 for name, depth in
                               ((name, stats[0]) for name, stats in admin(network.vhost).queue_stats().items())
                               if name.endswith(".events") or name.endswith(".partners")),
                   message="the services consumed every event")
    network.stop()  # SQLite checkpoints, logs flushed: what is on disk is what stays
    stored = stored_bytes(network)
    # The scan does see the data: her id (not personal) is in the databases it reads.
    assert any(beneficiary.encode() in content for where, content in stored.items() if ".sqlite3" in where
               or where.startswith("pg_dump"))
    leaks = {where: [value for value in canaries if value.encode() in content] for where, content in stored.items()}
    leaks.update({f"queue {queue}": [value for value in canaries if value in body]
                  for queue, body in queued_bodies(network)})
    traced = trace.messages()
    leaks.update({f"traced {message.routing_key} #{number}": [value for value in canaries if value in message.text()]
                  for number, message in enumerate(traced)})
    assert {where: found for where, found in leaks.items() if found} == {}
    assert any(path.suffix == ".log" for path in network.var.iterdir())  # the scan did see the logs
    # ... and the firehose saw the traffic: RPC both ways (sealed), events, and the partner's messages.
    if trace.enabled:
        routes = {message.routing_key for message in traced}
        assert {"publish.nameko-rpc", "deliver.rpc-intake", "deliver.rpc-referrals"} <= routes, sorted(routes)
        assert any(route.startswith("deliver.partner.") for route in routes), sorted(routes)
