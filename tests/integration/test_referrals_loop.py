"""Closed-loop referrals through the real broker and real processes (issue 3).

One network for the module: directory, intake, referrals, notifications and the gateway,
plus a partner association that integrates by queue (its own software, the partner SDK).
Safi (amal-safi) refers women to Marrakech (wafae-marrakech, through the app), to Rabat
(insaf-rabat) and to the partner; every test registers its own beneficiary and follows
only its own referrals, so the tests share the network without seeing each other.
Deadlines (controlled clock) are covered by tests/unit/test_referrals_deadlines.py.
"""

import json
import uuid

import pytest
from fixtures.referral_network import MARRAKECH, RABAT, SAFI, SERVICES, TYPE, Api, referral_network
from harness import eventually

from tansiq import contracts, ops, signing
from tansiq.envelope import MAX_BODY_BYTES, Envelope
from tansiq.messaging import topology

SENT = contracts.get("ma.tansiq.referral.sent.v1").example
REJECTED = "ma.tansiq.message.rejected.v1"
SENT_TYPE = TYPE("sent")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def network(request, broker_admin):
    """One network for the module (network_factory's is per test): the tests follow only their own referrals."""
    with referral_network(request.param) as network:
        yield network


@pytest.fixture
def partner(network):
    return network.partner


def error_of(response, status):
    assert response.status_code == status, response.text
    return response.json()["error"]


def unique_phone():
    return "06" + str(uuid.uuid4().int)[:8]


# --- 1. the loop between two associations, through the API ---------------------------------------------

def test_a_full_referral_loop_between_safi_and_marrakech_through_the_api(network):
    fatima, hanane, naima, amina = (Api(network, who) for who in ("fatima", "hanane", "naima", "amina"))
    beneficiary = fatima.register("Khadija", "Bennani", "0661234567")
    fatima.consent(beneficiary, ["first_name", "phone", "needs"], recipient=MARRAKECH)

    sent = fatima.ok(fatima.refer(beneficiary, MARRAKECH, ["first_name", "needs"]), 201)
    referral_id, link = sent["id"], f"/referrals/{sent['id']}"
    assert (sent["state"], sent["direction"], sent["beneficiary_id"]) == ("sent", "sent", beneficiary)
    assert sent["shared_fields"] == ["first_name", "needs"] and sent["consent_id"]

    assert referral_id in [r["id"] for r in naima.received()]
    received = naima.referral(referral_id)
    assert received["direction"] == "received" and received["beneficiary_id"] is None
    assert received["shared"] == {"first_name": "Khadija", "needs": ["legal_orientation"]}
    naima.wait_inbox(link, {"referral.sent"})

    for action, state, body in [("acknowledge", "received", {}), ("accept", "accepted", {}),
                                ("start", "in_progress", {}),
                                ("complete", "completed", {"outcome": "Une avocate a été désignée; audience le 12."})]:
        assert naima.ok(naima.act(referral_id, action, **body))["state"] == state

    seen_by_sender = fatima.referral(referral_id)
    assert seen_by_sender["state"] == "completed"
    assert seen_by_sender["outcome"] == "Une avocate a été désignée; audience le 12."
    assert [(h["action"], h["by_association"]) for h in seen_by_sender["history"]] == [
        ("send", SAFI), ("acknowledge", MARRAKECH), ("accept", MARRAKECH), ("start", MARRAKECH),
        ("complete", MARRAKECH)]
    assert "shared" not in seen_by_sender or seen_by_sender["shared"] == {}

    steps = {"referral.acknowledged", "referral.accepted", "referral.started", "referral.completed"}
    fatima.wait_inbox(link, steps)
    hanane.wait_inbox(link, steps)
    assert "Khadija" not in json.dumps(fatima.ok(fatima.get("/api/inbox")))  # no name in a notification
    # A third association does not even learn that the referral exists.
    assert error_of(amina.get(f"/api/referrals/{referral_id}"), 404)["code"] == "not_found"


# --- 2. the same loop with a partner system, by queue ------------------------------------------------------

def test_the_loop_with_a_partner_recipient_integrating_by_queue(network, partner):
    fatima, hanane = Api(network, "fatima"), Api(network, "hanane")
    beneficiary = fatima.register("Hafsa", "Lamrani", unique_phone())
    fatima.consent(beneficiary, ["first_name", "phone"], recipient=partner.slug)
    sent = fatima.ok(fatima.refer(beneficiary, partner.slug, ["first_name", "phone"]), 201)
    referral_id, link = sent["id"], f"/referrals/{sent['id']}"

    envelope, _ = partner.about(referral_id, "sent")
    assert envelope.source == SAFI and envelope.data["to_association"] == partner.slug
    assert (envelope.data["reason"], envelope.data["shared"]) == ("", {})  # sealed: only the partner opens them
    opened = partner.client.open_sealed(envelope)
    assert opened["reason"] == "Besoin d'une avocate"
    assert opened["shared"]["first_name"] == "Hafsa" and set(opened["shared"]) == {"first_name", "phone"}
    assert envelope.data["ack_due"] and envelope.data["consent_id"] == sent["consent_id"]

    ref = {"referral_id": referral_id, "from_association": SAFI, "to_association": partner.slug, "by": "nour-cw-1"}
    chain = envelope.correlationid or envelope.id
    partner.send("acknowledged", ref, chain)
    eventually(lambda: fatima.referral(referral_id)["state"] == "received", message="acknowledged by the partner")
    partner.send("accepted", ref, chain)
    partner.send("started", ref, chain)
    partner.send("completed", {**ref, "outcome": "Accompagnée au tribunal de première instance."}, chain)

    done = eventually(lambda: (r := fatima.referral(referral_id))["state"] == "completed" and r,
                      message="completed by the partner")
    assert done["outcome"] == "Accompagnée au tribunal de première instance."
    assert [(h["action"], h["by_association"], h["by"]) for h in done["history"][1:]] == [
        (action, partner.slug, "nour-cw-1") for action in ("acknowledge", "accept", "start", "complete")]
    steps = {"referral.acknowledged", "referral.accepted", "referral.started", "referral.completed"}
    fatima.wait_inbox(link, steps)
    hanane.wait_inbox(link, steps)
    # Nothing came back to the partner: no echo of its own steps, no rejection.
    partner.poll()
    assert [e.type for e, _ in partner.received if e.data.get("referral_id") == referral_id
            or e.correlationid == chain] == [TYPE("sent")]


def test_the_loop_with_a_partner_sender_and_a_recipient_using_the_app(network, partner):
    naima = Api(network, "naima")
    referral_id = f"nour-{uuid.uuid4().hex[:12]}"
    ref = {"referral_id": referral_id, "from_association": partner.slug, "to_association": MARRAKECH}
    partner.send("sent", {**ref, "service_category": "psychological_support", "urgency": "urgent",
                          "reason": "Suivi psychologique après hébergement", "consent_id": "nour-c-7",
                          "shared": {"first_name": "Zineb", "language": "fr"}})

    received = eventually(lambda: referral_id in [r["id"] for r in naima.received()] and naima.referral(referral_id),
                          message="the partner's referral in Marrakech's received list")
    assert (received["origin"], received["from_association"], received["state"]) == ("partner", partner.slug, "sent")
    assert received["shared"] == {"first_name": "Zineb", "language": "fr"}
    naima.wait_inbox(f"/referrals/{referral_id}", {"referral.sent"})

    for action, body in [("acknowledge", {}), ("accept", {}), ("start", {}),
                         ("complete", {"outcome": "Six séances; elle va mieux."})]:
        naima.ok(naima.act(referral_id, action, **body))
    for verb in ("acknowledged", "accepted", "started"):
        envelope, _ = partner.about(referral_id, verb)
        assert envelope.source == MARRAKECH and envelope.data["by"] == "s-mrk-1"
    completed, _ = partner.about(referral_id, "completed")
    assert partner.client.open_sealed(completed)["outcome"] == "Six séances; elle va mieux."


# --- 3. minimum data, consent, revocation -------------------------------------------------------------------

def test_only_chosen_fields_leave_the_sender_consent_is_required_and_revocation_reaches_recipients(network, partner):
    fatima, naima, amina = Api(network, "fatima"), Api(network, "naima"), Api(network, "amina")
    phone = unique_phone()
    story = "Frappée par son mari, réfugiée chez sa soeur."
    beneficiary = fatima.register("Meriem", "Ouazzani", phone, notes=story)
    secrets = ("Ouazzani", phone, story)

    # Refused without a consent covering recipient, purpose and fields; nothing reaches anyone.
    rabat_before = len(amina.received())
    assert error_of(fatima.refer(beneficiary, RABAT, ["first_name"]), 403)["code"] == "no_consent"
    consent_id = fatima.consent(beneficiary, ["first_name", "needs", "phone"], category="legal_orientation")
    assert error_of(fatima.refer(beneficiary, MARRAKECH, ["first_name", "last_name"]), 403)["code"] == "no_consent"
    assert error_of(fatima.refer(beneficiary, MARRAKECH, ["first_name"], category="psychological_support"),
                    403)["code"] == "no_consent"
    assert len(amina.received()) == rabat_before

    # "Any partner offering legal orientation": Marrakech (app) and the partner (queue), each its own choice.
    to_marrakech = fatima.ok(fatima.refer(beneficiary, MARRAKECH, ["first_name", "needs"]), 201)["id"]
    to_partner = fatima.ok(fatima.refer(beneficiary, partner.slug, ["first_name"]), 201)["id"]

    seen = naima.get(f"/api/referrals/{to_marrakech}")
    assert naima.ok(seen)["shared"] == {"first_name": "Meriem", "needs": ["legal_orientation"]}
    assert not [value for value in secrets if value in seen.text]
    envelope, body = partner.about(to_partner, "sent")
    assert partner.client.open_sealed(envelope)["shared"] == {"first_name": "Meriem"}
    assert not [value for value in secrets if value in body.decode()]

    # Revocation reaches both recipients: erased on the Tansiq side, told to the partner.
    def revocations():  # their link is the referrals list (where the erased data shows), the same for each
        return [item["id"] for item in naima.inbox_items("/referrals") if item["kind"] == "consent.revoked"]

    revocations_before = revocations()
    revoked = fatima.ok(fatima.post(f"/api/consents/{consent_id}/revoke"))
    assert revoked["revoked_at"] and revoked["valid"] is False
    erased = eventually(lambda: (r := naima.referral(to_marrakech))["shared_erased_at"] and r,
                        message="shared values erased in Marrakech")
    assert erased["shared"] == {} and "Meriem" not in json.dumps(erased)
    assert erased["history"][-1]["action"] == "erase_shared"
    eventually(lambda: len(revocations()) > len(revocations_before), timeout=60,
               message="the consent.revoked item in Naima's inbox")
    notice, _ = partner.about(to_partner, "data_erased")
    assert notice.source == SAFI and notice.data["from_association"] == SAFI
    # The consent no longer covers anything.
    assert error_of(fatima.refer(beneficiary, MARRAKECH, ["first_name"]), 403)["code"] == "no_consent"

    for service in ("referrals", "notifications", "gateway"):
        assert not [value for value in secrets if value in network.log(service)], service


# --- 4. decline and re-route, withdraw, invalid transitions ----------------------------------------------

def test_decline_with_reason_then_reroute_withdraw_and_invalid_transitions(network):
    fatima, naima, amina = Api(network, "fatima"), Api(network, "naima"), Api(network, "amina")
    beneficiary = fatima.register("Samira", "Tahiri", unique_phone())
    fatima.consent(beneficiary, ["first_name"], category="legal_orientation")
    first = fatima.ok(fatima.refer(beneficiary, MARRAKECH, ["first_name"]), 201)["id"]

    # Every invalid transition is refused with a clear error, and changes nothing.
    refusal = error_of(naima.act(first, "complete", outcome="done"), 409)
    assert refusal["code"] == "invalid_transition"
    assert "cannot complete a referral that is 'sent'" in refusal["message"] and "accept" in refusal["message"]
    assert refusal["details"] == {"state": "sent", "action": "complete"}
    assert "acknowledge it first" in error_of(naima.act(first, "accept"), 409)["message"]
    assert error_of(fatima.act(first, "acknowledge"), 403)["code"] == "forbidden"  # the sender cannot
    assert error_of(naima.act(first, "withdraw"), 403)["code"] == "forbidden"  # nor the recipient withdraw
    assert error_of(naima.act(first, "explode"), 422)["code"] == "validation_error"
    naima.ok(naima.act(first, "acknowledge"))
    assert "already past" in error_of(naima.act(first, "acknowledge"), 409)["message"]
    assert error_of(naima.act(first, "start"), 409)["code"] == "invalid_transition"
    assert error_of(naima.act(first, "decline"), 400)["code"] == "reason_required"
    assert error_of(fatima.act(first, "reroute", to_association=RABAT), 409)["code"] == "invalid_transition"
    assert naima.referral(first)["state"] == "received"

    # Decline with a reason; the sender sees why and is told.
    declined = naima.ok(naima.act(first, "decline", reason="Pas de place avant janvier"))
    assert declined["state"] == "declined"
    assert fatima.referral(first)["decline_reason"] == "Pas de place avant janvier"
    fatima.wait_inbox(f"/referrals/{first}", {"referral.declined"})
    assert error_of(naima.act(first, "accept"), 409)["code"] == "invalid_transition"

    # Re-route in one step, to another association (not the one that declined).
    # Refused before intake hands anything out: no disclosure is recorded for these.
    disclosures = fatima.ok(fatima.get(f"/api/beneficiaries/{beneficiary}/disclosures"))
    assert error_of(fatima.act(first, "reroute", to_association=MARRAKECH), 400)["code"] == "same_recipient"
    assert error_of(fatima.act(first, "reroute", to_association="tifawin-agadir"), 400)["code"] == \
        "service_not_offered"
    assert fatima.ok(fatima.get(f"/api/beneficiaries/{beneficiary}/disclosures")) == disclosures
    second = fatima.ok(fatima.act(first, "reroute", to_association=RABAT), 201)
    assert (second["to_association"], second["rerouted_from"], second["state"]) == (RABAT, first, "sent")
    old = fatima.referral(first)
    assert (old["state"], old["rerouted_to"]) == ("rerouted", second["id"])
    assert amina.referral(second["id"])["shared"] == {"first_name": "Samira"}
    amina.wait_inbox(f"/referrals/{second['id']}", {"referral.sent"})
    assert "'rerouted' is final" in error_of(fatima.act(first, "reroute", to_association=RABAT), 409)["message"]
    assert error_of(naima.get(f"/api/referrals/{second['id']}"), 404)["code"] == "not_found"

    # The sender withdraws; the recipient is told and can no longer act on it.
    assert fatima.ok(fatima.act(second["id"], "withdraw"))["state"] == "withdrawn"
    amina.wait_inbox(f"/referrals/{second['id']}", {"referral.withdrawn"})
    assert "'withdrawn' is final" in error_of(amina.act(second["id"], "acknowledge"), 409)["message"]
    assert error_of(fatima.act(second["id"], "withdraw"), 409)["code"] == "invalid_transition"


# --- 5. malformed partner messages ---------------------------------------------------------------------------

def raw(partner, type_=SENT_TYPE, source=None, data=None, key="own", **changes):
    """An envelope as bytes, signed (or not) without the contract check a well-behaved client makes."""
    data = data if data is not None else {**SENT, "referral_id": f"bad-{uuid.uuid4().hex[:8]}",
                                          "from_association": partner.slug, "to_association": MARRAKECH}
    envelope = Envelope(type=type_, source=source or partner.slug, data=data)
    if key == "own":
        envelope = signing.sign(envelope, partner.key)
    elif key is not None:
        envelope = signing.sign(envelope, key)
    body = envelope.to_dict()
    body.update(changes)
    return envelope.id, json.dumps(body).encode()


def test_malformed_partner_messages_are_each_rejected_kept_and_the_services_keep_running(network, partner):
    naima = Api(network, "naima")
    tampered_id, tampered = raw(partner)
    tampered = tampered.replace(b'"urgent"', b'"low"')  # changed after signing
    cases = {  # message id -> (body, expected reason); unreadable bodies are answered under their AMQP message_id
        "broken-json": (b"{not json", "malformed_json"),
        "not-an-object": (b"[1, 2, 3]", "malformed_json"),
        "oversized": (b'{"pad": "' + b" " * MAX_BODY_BYTES + b'"}', "oversized"),
        "too-deep": (b"[" * 1000 + b"]" * 1000, "malformed_json"),  # once killed the service
    }
    unhandled = {}  # types no service consumes: the kernel's catch-all answers them
    for reason, (message_id, body) in [
        ("invalid_envelope", raw(partner, specversion=None)),
        ("schema_invalid", raw(partner, data={**SENT, "from_association": partner.slug, "urgency": "whenever"})),
        ("bad_signature", raw(partner, key=None)),  # unsigned
        ("bad_signature", raw(partner, key=signing.generate_key())),  # someone else's key
        ("bad_signature", (tampered_id, tampered)),
        ("bad_signature", raw(partner, signature=5)),  # a number: once killed the service
        ("forged_sender", raw(partner, source=SAFI, data={**SENT, "from_association": SAFI})),
    ]:
        cases[message_id] = (body, reason)
    for type_, data in [("ma.tansiq.unheard_of.thing.v1", {"x": 1}),
                        (TYPE("expired"), {"referral_id": "r-1", "from_association": partner.slug,  # receive-only
                                           "to_association": MARRAKECH})]:
        message_id, body = raw(partner, type_=type_, data=data)
        unhandled[message_id] = (body, "unknown_type", f"{partner.slug}.{type_}")
    for message_id, (body, _) in cases.items():
        partner.publish_raw(body, message_id=message_id)
    for message_id, (body, _, routing_key) in unhandled.items():
        partner.publish_raw(body, routing_key=routing_key, message_id=message_id)
    expected = {message_id: reason for message_id, (_, reason, *_) in {**cases, **unhandled}.items()}

    # Each gets its rejection on the sender's own queue ...
    rejections = [e for e, _ in partner.wait_for(lambda e: e.type == REJECTED and e.data["rejected_id"] in expected,
                                                 "the rejections", count=len(expected))]
    assert {e.data["rejected_id"]: e.data["reason"] for e in rejections} == expected
    assert all(e.source in ("referrals", "events") for e in rejections)

    # ... is kept in the dead-letter queue with its reason, as received ...
    def letters():
        return (ops.dead_letters(network.amqp_uri, "referrals.partners")
                + ops.dead_letters(network.amqp_uri, topology.PARTNERS_UNHANDLED))

    kept = eventually(lambda: len(d := [x for x in letters() if x["message_id"] in expected]) >= len(expected) and d,
                      message="every refused message dead-lettered")
    assert {letter["message_id"]: letter["reason"] for letter in kept} == expected
    assert next(letter for letter in kept if letter["message_id"] == "broken-json")["body"] == "{not json"

    # ... and the services keep running: a good message afterwards works.
    assert all(network.procs[service].poll() is None for service in SERVICES)
    good_id = f"nour-{uuid.uuid4().hex[:12]}"
    partner.send("sent", {"referral_id": good_id, "from_association": partner.slug, "to_association": MARRAKECH,
                          "service_category": "legal_orientation", "urgency": "normal", "reason": "Divorce",
                          "shared": {"first_name": "Loubna"}})
    eventually(lambda: good_id in [r["id"] for r in naima.received()], message="the good message after the bad ones")


def test_partner_messages_the_domain_refuses_are_answered_with_a_reason(network, partner):
    """Well-formed and signed, but not allowed: answered on the sender's queue, the referral unchanged."""
    fatima = Api(network, "fatima")
    beneficiary = fatima.register("Nadia", "Sebti", unique_phone())
    fatima.consent(beneficiary, ["first_name"], recipient=partner.slug)
    referral_id = fatima.ok(fatima.refer(beneficiary, partner.slug, ["first_name"]), 201)["id"]
    partner.about(referral_id, "sent")
    ref = {"referral_id": referral_id, "from_association": SAFI, "to_association": partner.slug}

    refused = {
        partner.send("completed", {**ref, "outcome": "trop tôt"}).id: "invalid_transition",  # before accept
        partner.send("withdrawn", ref).id: "not_allowed",  # only the sender withdraws
        partner.send("sent", {**SENT, "referral_id": f"nour-{uuid.uuid4().hex[:8]}",  # nobody by that name
                              "from_association": partner.slug, "to_association": "nobody-here"}).id:
            "unknown_association",
    }
    rejections = partner.wait_for(lambda e: e.type == REJECTED and e.data["rejected_id"] in refused,
                                  "the domain's rejections", count=len(refused))
    assert {e.data["rejected_id"]: e.data["reason"] for e, _ in rejections} == refused
    assert fatima.referral(referral_id)["state"] == "sent"
    partner.send("acknowledged", ref)  # the right next step still works
    eventually(lambda: fatima.referral(referral_id)["state"] == "received", message="acknowledged after refusals")
