"""Ed25519 signing of envelopes, and every reason check_inbound refuses a partner's message for."""

import json
from dataclasses import replace

import pytest

from tansiq import contracts, signing
from tansiq.envelope import MAX_BODY_BYTES, parse
from tansiq.errors import BadMessage
from tansiq.partner.verify import check_inbound, rejection

SLUG = "amal-safi"
TYPE = "ma.tansiq.referral.sent.v1"
REFERRAL = contracts.get(TYPE).example
KEY = signing.generate_key()
PUBLIC = signing.public_key_b64(KEY)


def envelope(**changes):
    return replace(contracts.make(TYPE, SLUG, REFERRAL), **changes)


def signed_body(env=None, key=KEY):
    return signing.sign(env or envelope(), key).to_bytes()


def check(body, user_id=SLUG, routing_key=f"{SLUG}.{TYPE}", keys=None):
    keys = {SLUG: PUBLIC} if keys is None else keys
    return check_inbound(body, user_id, routing_key, keys.get)


def reason(body, **kwargs):
    with pytest.raises(BadMessage) as refused:
        check(body, **kwargs)
    return refused.value.reason


# signing --------------------------------------------------------------------------------------
def test_sign_then_verify_survives_the_wire():
    sent = signing.sign(envelope(), KEY)
    received = parse(sent.to_bytes())
    assert signing.verify(received, PUBLIC) == received


def test_any_change_breaks_the_signature():
    sent = signing.sign(envelope(), KEY)
    for tampered in (replace(sent, data={**sent.data, "urgency": "low"}), replace(sent, source="other-assoc"),
                     replace(sent, correlationid="c-1"), replace(sent, time="2020-01-01T00:00:00.000+00:00")):
        with pytest.raises(BadMessage) as refused:
            signing.verify(tampered, PUBLIC)
        assert refused.value.reason == "bad_signature"


def test_keys_round_trip_as_pem_and_base64():
    pem, public_b64 = signing.generate_keypair()
    key = signing.load_private_key(pem)
    assert signing.public_key_b64(key) == public_b64
    signing.verify(signing.sign(envelope(), key), signing.load_public_key(public_b64))
    with pytest.raises(ValueError):
        signing.load_public_key("not base64!")


def test_a_signature_that_is_not_base64_or_an_unusable_key_is_a_bad_signature():
    with pytest.raises(BadMessage, match="bad_signature"):
        signing.verify(envelope(signature="%%%"), PUBLIC)
    with pytest.raises(BadMessage, match="bad_signature"):
        signing.verify(signing.sign(envelope(), KEY), "AAAA")


# check_inbound ----------------------------------------------------------------------------------
def test_a_good_message_comes_back_validated():
    checked = check(signed_body())
    assert checked.source == SLUG
    assert checked.data["ack_due"].tzinfo is not None  # loaded by the contract schema


def test_oversized():
    assert reason(b"{" + b" " * MAX_BODY_BYTES + b"}") == "oversized"


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe", b"[1, 2]", b'"text"'])
def test_malformed_json(body):
    assert reason(body) == "malformed_json"


@pytest.mark.parametrize("drop_or_change", [
    {"specversion": "0.3"}, {"type": "referral.sent"}, {"source": "Not A Slug"}, {"data": "x"}, {"id": None},
])
def test_invalid_envelope(drop_or_change):
    raw = json.loads(signed_body())
    raw.update(drop_or_change)
    assert reason(json.dumps(raw).encode()) == "invalid_envelope"


def test_unknown_type():
    body = signed_body(envelope(type="ma.tansiq.referral.teleported.v1"))
    assert reason(body, routing_key=f"{SLUG}.ma.tansiq.referral.teleported.v1") == "unknown_type"


def test_a_routing_key_naming_another_type_is_refused():
    assert reason(signed_body(), routing_key=f"{SLUG}.ma.tansiq.event.published.v1") == "invalid_envelope"


def test_a_type_partners_may_only_receive_is_refused_as_unknown_type():
    rejected = contracts.make("ma.tansiq.message.rejected.v1", SLUG, contracts.get(
        "ma.tansiq.message.rejected.v1").example)
    assert reason(signed_body(rejected), routing_key=f"{SLUG}.{rejected.type}") == "unknown_type"


def test_schema_invalid():
    body = signed_body(envelope(data={**REFERRAL, "urgency": "whenever"}))
    assert reason(body) == "schema_invalid"


def test_unknown_association():
    assert reason(signed_body(), keys={}) == "unknown_association"


@pytest.mark.parametrize("user_id, routing_key", [
    ("other-assoc", f"{SLUG}.{TYPE}"),       # the broker user is someone else
    (None, f"{SLUG}.{TYPE}"),                # no validated user at all
    (SLUG, f"other-assoc.{TYPE}"),           # routed under another slug
    (SLUG, f"{SLUG}x.{TYPE}"),               # a slug that only starts the same
])
def test_forged_sender(user_id, routing_key):
    assert reason(signed_body(), user_id=user_id, routing_key=routing_key) == "forged_sender"


def test_unsigned_and_wrongly_signed():
    assert reason(envelope().to_bytes()) == "bad_signature"
    assert reason(signed_body(key=signing.generate_key())) == "bad_signature"


# the answer to a refused message ------------------------------------------------------------------
def test_a_rejection_goes_to_the_authenticated_user_not_the_claimed_source():
    body = signed_body(envelope(source="other-assoc"))
    with pytest.raises(BadMessage) as refused:
        check(body)
    routing_key, answer = rejection(body, SLUG, refused.value, "referrals")
    assert routing_key == f"{SLUG}.ma.tansiq.message.rejected.v1"
    assert answer.data["reason"] == "forged_sender"
    assert answer.data["rejected_id"] == json.loads(body)["id"] == answer.correlationid
    assert answer.data["rejected_type"] == TYPE


@pytest.mark.parametrize("body", [b"not json", b"[]", b"{" + b" " * MAX_BODY_BYTES + b"}"])
def test_a_rejection_of_an_unreadable_body_quotes_nothing(body):
    with pytest.raises(BadMessage) as refused:
        check(body)
    _, answer = rejection(body, SLUG, refused.value, "referrals")
    assert answer.data["rejected_id"] is None and answer.data["reason"] == refused.value.reason


def test_no_rejection_without_a_broker_user():
    assert rejection(b"{}", None, BadMessage("malformed_json"), "referrals") is None
