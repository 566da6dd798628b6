"""What a message from outside is checked for before anything acts on it, and how the kernel keeps
the partner's identity and id namespace: envelope attributes, strict contracts, inbox scoping,
ingress headers, replay headers, and the safety of the tests themselves on a shared broker."""

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from kombu.message import Message
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from tansiq import contracts, demo, ops, signing
from tansiq.envelope import MAX_DEPTH, nesting_depth, parse
from tansiq.errors import BadMessage, Conflict
from tansiq.messaging import inbox, topology
from tansiq.messaging.consumer import (
    ROUTING_KEY_HEADER,
    SENDER_HEADER,
    answer_address,
    ingress_of,
    previous_attempts,
    record_ingress,
)
from tansiq.messaging.store import messaging_metadata
from tansiq.partner.verify import check_inbound, rejection

SLUG = "nour-test"
TYPE = "ma.tansiq.referral.sent.v1"
KEY = signing.generate_key()


def body(**changes):
    raw = contracts.make(TYPE, SLUG, contracts.get(TYPE).example).to_dict()
    raw.update(changes)
    return json.dumps(raw).encode()


def reason_of(data):
    with pytest.raises(BadMessage) as refused:
        contracts.validate(parse(data))
    return refused.value.reason


# the envelope --------------------------------------------------------------------------------------
@pytest.mark.parametrize("changes, reason", [
    ({"signature": 5}, "bad_signature"),                       # a number once killed the events service
    ({"signature": ["x"]}, "bad_signature"),
    ({"signature": "c2ln"}, "bad_signature"),                  # base64, but not 64 bytes
    ({"signature": "!" * 88}, "bad_signature"),
    ({"time": 1700000000}, "invalid_envelope"),
    ({"time": "yesterday"}, "invalid_envelope"),
    ({"time": "2026-02-30T10:00:00Z"}, "invalid_envelope"),    # RFC 3339 shape, not a real date
    ({"datacontenttype": "text/plain"}, "invalid_envelope"),
    ({"datacontenttype": ["application/json"]}, "invalid_envelope"),
    ({"specversion": 1.0}, "invalid_envelope"),
    ({"id": 42}, "invalid_envelope"),
    ({"id": "has space"}, "invalid_envelope"),
    ({"id": "x" * 129}, "invalid_envelope"),
    ({"source": "Amal Safi"}, "invalid_envelope"),
    ({"source": "amal-safi\n"}, "invalid_envelope"),
    ({"type": "ma.tansiq.referral.sent.v1\n"}, "invalid_envelope"),
    ({"correlationid": {"a": 1}}, "invalid_envelope"),
    ({"dataschema": 7}, "invalid_envelope"),
    ({"Weird-Name": "x"}, "invalid_envelope"),
    ({"ext": {"nested": True}}, "invalid_envelope"),
    ({"data": [1]}, "invalid_envelope"),
])
def test_every_cloudevents_attribute_is_checked_for_type_and_value(changes, reason):
    assert reason_of(body(**changes)) == reason


def test_a_well_formed_envelope_with_a_short_extension_passes():
    envelope = parse(body(traceparent="00-abc-01", time="2026-11-30T10:00:00Z"))
    assert envelope.raw["traceparent"] == "00-abc-01"


@pytest.mark.parametrize("data, reason", [
    (b"[" * 1000 + b"]" * 1000, "malformed_json"),    # 2.6 KB once crashed referrals before any check
    (b'{"a":' * 40 + b"1" + b"}" * 40, "malformed_json"),
    (body().decode().encode("utf-16"), "malformed_json"),
    (b"\xff\xfe{}", "malformed_json"),
    (b"", "malformed_json"),
    (b'{"specversion": NaN}', "malformed_json"),
    (body().replace(b'"c-19"', b'"\\ud800"'), "malformed_json"),  # half a character
    (b'{"x": "' + b"a" * 300_000 + b'"}', "oversized"),
])
def test_size_encoding_and_nesting_are_bounded_before_parsing(data, reason):
    assert reason_of(data) == reason


def test_nesting_is_counted_outside_strings_only():
    assert nesting_depth(b'{"a": "[[[[{{{{", "b": [[1]]}') == 3
    assert nesting_depth(b'{"a": "\\"[["}') == 1
    assert nesting_depth(b"[" * (MAX_DEPTH + 5)) > MAX_DEPTH


# strict contracts ------------------------------------------------------------------------------------
EVENT = contracts.get("ma.tansiq.event.published.v1").example


@pytest.mark.parametrize("field, value", [
    ("sequence", "5"), ("sequence", 5.5), ("sequence", True), ("sequence", 2**40), ("sequence", -1),
    ("all_day", "false"), ("all_day", 0), ("starts_at", "9999-03-12T09:00:00+00:00"),
    ("starts_at", 1700000000), ("starts_at", "2027-03-12T09:00:00"), ("title", 5), ("co_organisers", ["a"] * 50),
])
def test_event_fields_are_strict_and_bounded(field, value):
    envelope = contracts.make("ma.tansiq.event.published.v1", "amal-safi", EVENT)
    assert reason_of(json.dumps({**envelope.to_dict(), "data": {**EVENT, field: value}}).encode()) == "schema_invalid"


@pytest.mark.parametrize("shared", [{"birth_year": "1990"}, {"birth_year": 3000}, {"first_name": {"x": 1}},
                                    {"password": "x"}, {"needs": ["world_peace"]}])
def test_shared_fields_of_a_referral_are_typed(shared):
    assert reason_of(body(data={**contracts.get(TYPE).example, "shared": shared})) == "schema_invalid"


def test_the_shared_fields_contract_lists_exactly_the_shareable_fields():
    from tansiq.contracts.referrals import SHAREABLE_FIELDS, SharedFields

    assert set(SharedFields().fields) == set(SHAREABLE_FIELDS)


# ids live in their sender's namespace ------------------------------------------------------------------
@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    messaging_metadata.create_all(engine)
    with Session(engine) as session:
        yield session


def partner_message(sender, message_id, reason="Needs a lawyer"):
    envelope = contracts.make(TYPE, sender, {**contracts.get(TYPE).example, "from_association": sender,
                                             "reason": reason})
    return replace(parse(envelope.to_bytes()), id=message_id, sender=sender)


def test_two_partners_may_use_the_same_message_id(session):
    assert inbox.first_time(session, "referrals", partner_message("nour-a", "m-1"))
    assert inbox.first_time(session, "referrals", partner_message("nour-b", "m-1"))
    assert not inbox.first_time(session, "referrals", partner_message("nour-a", "m-1"))  # a redelivery


def test_the_same_id_with_other_content_is_refused_as_duplicate(session):
    assert inbox.first_time(session, "referrals", partner_message("nour-a", "m-2"))
    with pytest.raises(Conflict) as refused:
        inbox.first_time(session, "referrals", partner_message("nour-a", "m-2", reason="Something else"))
    assert refused.value.code == "duplicate_id"


# identity at ingress and across retries -------------------------------------------------------------------
def delivery(exchange, headers=None, user_id=SLUG, routing_key=f"{SLUG}.{TYPE}"):
    return Message(body=b"{}", delivery_info={"exchange": exchange, "routing_key": routing_key},
                   properties={"user_id": user_id, "message_id": "m-9"}, headers=dict(headers or {}))


def test_partner_set_kernel_headers_are_stripped_and_the_validated_sender_recorded():
    message = delivery(topology.PARTNERS_INBOUND, {"x-tansiq-sender": "amal-safi", "X-Tansiq-Attempts": "many",
                                                   "x-trace": "kept"})
    record_ingress(message)
    assert message.headers == {SENDER_HEADER: SLUG, ROUTING_KEY_HEADER: f"{SLUG}.{TYPE}", "x-trace": "kept"}
    assert ingress_of(message) == (SLUG, f"{SLUG}.{TYPE}") and previous_attempts(message) == 0


def test_a_retry_is_still_the_partners_though_it_has_no_user_id():
    first = delivery(topology.PARTNERS_INBOUND)
    record_ingress(first)
    retried = delivery("", headers={**first.headers, "x-tansiq-attempts": 1}, user_id=None,
                       routing_key="referrals.partners")  # how it comes back from the retry queue
    record_ingress(retried)  # not from partners.inbound: the kernel's own headers stay
    assert ingress_of(retried) == (SLUG, f"{SLUG}.{TYPE}") and previous_attempts(retried) == 1
    signed = signing.sign(contracts.make(TYPE, SLUG, {**contracts.get(TYPE).example, "from_association": SLUG}), KEY)
    public = signing.public_key_b64(KEY)
    assert check_inbound(signed.to_bytes(), *ingress_of(retried), {SLUG: public}.get).sender == SLUG


def test_without_a_user_id_the_answer_goes_to_the_owner_of_the_routing_key():
    message = delivery(topology.PARTNERS_INBOUND, user_id=None)
    record_ingress(message)
    assert answer_address(message) == SLUG
    routing_key, answer = rejection(b"\x00", answer_address(message), BadMessage("malformed_json"), "referrals",
                                    message_id="m-9")
    assert routing_key == f"{SLUG}.ma.tansiq.message.rejected.v1" and answer.data["rejected_id"] == "m-9"


def test_a_replayed_dead_letter_keeps_the_kernels_record_of_its_sender():
    headers = ops.replay_headers({"application_headers": {
        SENDER_HEADER: SLUG, ROUTING_KEY_HEADER: f"{SLUG}.{TYPE}", "x-tansiq-reason": "handler_failed",
        "x-tansiq-attempts": 4, "x-death": [{"queue": "referrals.partners"}]}})
    assert headers == {SENDER_HEADER: SLUG, ROUTING_KEY_HEADER: f"{SLUG}.{TYPE}"}
    # dead-lettered by the broker itself (delivery limit): the original still has its AMQP user_id
    headers = ops.replay_headers({"user_id": SLUG, "application_headers": {
        SENDER_HEADER: "amal-safi", "x-death": [{"exchange": topology.PARTNERS_INBOUND,
                                                 "routing-keys": [f"{SLUG}.{TYPE}"]}]}})
    assert headers == {SENDER_HEADER: SLUG, ROUTING_KEY_HEADER: f"{SLUG}.{TYPE}"}


# the tests themselves on a shared broker -----------------------------------------------------------------
def test_no_test_provisions_or_revokes_a_real_association_on_the_broker():
    """Broker users are global: a test that adds or revokes a demo slug cuts off a live partner."""
    demo_slugs = {association["slug"] for association in demo.ASSOCIATIONS}
    offending = []
    for path in Path(__file__).resolve().parents[1].rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if not re.search(r'add_partner\(|revoke_partner\(|"partners",\s*"(add|revoke)"', text):
            continue  # talks to no broker user
        for slug in demo_slugs:
            quoted = re.escape(f'"{slug}"')
            if re.search(rf"(add_partner|revoke_partner|Partner)\([^)]*{quoted}", text) or re.search(
                    rf"^(SLUG|PARTNER)\s*=\s*{quoted}", text, re.M) or re.search(
                    rf'"partners",\s*"(add|revoke)",\s*{quoted}', text):
                offending.append(f"{path.name}: {slug}")
    assert not offending
