"""docs/asyncapi.yaml stays in step with the contracts, and says what partners may send and receive."""

import json

import yaml
from documents import all_refs, resolve  # tests/documents.py

from tansiq import contracts
from tansiq.envelope import parse
from tansiq.partner import asyncapi


def committed():
    return asyncapi.OUTPUT.read_text(encoding="utf-8")


def test_the_committed_document_is_the_generator_output():
    assert committed() == asyncapi.render(), "run: python -m tansiq.partner.asyncapi --write"


def test_every_partner_contract_is_on_the_right_channel_and_nothing_else():
    document = yaml.safe_load(committed())
    inbound, outbound = document["channels"].values()
    sent = {resolve(document, ref["$ref"])["name"] for ref in inbound["publish"]["message"]["oneOf"]}
    received = {resolve(document, ref["$ref"])["name"] for ref in outbound["subscribe"]["message"]["oneOf"]}
    registry = contracts.all_contracts()
    assert sent == {t for t, c in registry.items() if c.partners in ("send", "both")}
    assert received == {t for t, c in registry.items() if c.partners in ("receive", "both")}
    assert "ma.tansiq.message.rejected.v1" in received - sent
    assert not any(c.partners == "none" for t, c in registry.items() if t in sent | received)


def test_every_reference_resolves_and_every_example_passes_its_contract():
    document = yaml.safe_load(committed())
    for ref in all_refs(document):
        assert resolve(document, ref)
    for message in document["components"]["messages"].values():
        for example in message["examples"]:
            payload = dict(example["payload"])
            payload.pop("signature", None)
            envelope = contracts.validate(parse(json.dumps(payload)))
            assert envelope.type == message["name"]
