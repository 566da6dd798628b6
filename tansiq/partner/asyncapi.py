"""Generate docs/asyncapi.yaml (AsyncAPI 2.6) from the contract registry.

    python -m tansiq.partner.asyncapi --write     # after changing a contract

The payload schemas come from the marshmallow contracts through apispec's converter
(JSON Schema as in OpenAPI 3.1), so the document cannot drift from the code;
tests/unit/test_asyncapi.py regenerates it and compares it with the committed file.
"""

from pathlib import Path

import yaml
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from tansiq import contracts, generated
from tansiq import envelope as envelopes
from tansiq.errors import REASON_CODES
from tansiq.messaging import topology

OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
SENDS = ("send", "both")
RECEIVES = ("receive", "both")
EXAMPLE_SOURCE = "amal-safi"
EXAMPLE_TIME = "2026-11-29T09:30:00.000+00:00"
EXAMPLE_ID = "0b6f7c52-5a1e-4d4e-9a57-3c3e4a1f2b10"

DESCRIPTION = f"""\
How a partner association's own software exchanges messages with Tansiq over AMQP 0-9-1 (RabbitMQ).

Every message is a CloudEvents 1.0 envelope in JSON structured mode
(content type `{envelopes.CONTENT_TYPE}`, UTF-8, at most {envelopes.MAX_BODY_BYTES} bytes, JSON nested
at most {envelopes.MAX_DEPTH} levels; at most {envelopes.MAX_EXTENSIONS} extension attributes, each a short
string, integer or boolean). Data is strict: no string for a number, `true`/`false` for booleans.
`source` is your association's slug; `type` is `ma.tansiq.<aggregate>.<verb>.v<N>`.

Publish to the exchange `{topology.PARTNERS_INBOUND}` with routing key `<your slug>.<type>`, the AMQP
property `user_id` set to your broker user (= your slug; RabbitMQ refuses any other value),
`message_id` = the envelope id, `delivery_mode` 2, `mandatory` set, and publisher confirms on.
Every envelope you send carries `signature`: base64 Ed25519 over the canonical JSON of the
envelope without `signature` (keys sorted, separators `,` and `:`, UTF-8, not ASCII-escaped).
Send exactly the attributes of the examples: `time`, `datacontenttype` and `dataschema` included,
`correlationid` only when it has a value, no other attributes.

Read your queue `partner.<your slug>` with manual acknowledgements; deduplicate on the envelope `id`
(delivery is at least once). Every message you send is applied or answered: a message of yours
that is refused (unknown and receive-only types included) comes back there as
`ma.tansiq.message.rejected.v1` with one of the reason codes:
{chr(10).join(f"- `{code}`: {text}" for code, text in REASON_CODES.items())}

Versioning: {contracts.__doc__.split("Evolution rule:", 1)[1].strip()}
"""


def _ecma(regex):
    """A Python pattern as JSON Schema (ECMA 262) writes it: `\\Z` (end, no newline before) is `$` there."""
    return regex.pattern.replace("\\Z", "$")


def _converter():
    spec = APISpec("tansiq", "1", "3.1.0", plugins=[MarshmallowPlugin(schema_name_resolver=lambda schema: None)])
    return spec.plugins[0].converter


ENVELOPE_SCHEMA = {
    "type": "object",
    "description": "CloudEvents 1.0 attributes shared by every message",
    "required": ["specversion", "id", "source", "type", "data"],
    "properties": {
        "specversion": {"type": "string", "const": envelopes.SPECVERSION},
        "id": {"type": "string", "minLength": 1, "maxLength": envelopes.MAX_ID_LENGTH,
               "pattern": _ecma(envelopes.PRINTABLE),
               "description": "unique per message within your namespace; the same id with other content is "
                              "refused (duplicate_id)"},
        "source": {"type": "string", "pattern": _ecma(envelopes.SOURCE_PATTERN),
                   "description": "the sending association's slug (or Tansiq service name)"},
        "type": {"type": "string", "pattern": _ecma(envelopes.TYPE_PATTERN)},
        "time": {"type": "string", "format": "date-time", "description": "RFC 3339"},
        "datacontenttype": {"type": "string", "const": envelopes.DATA_CONTENT_TYPE},
        "dataschema": {"type": "string", "maxLength": envelopes.MAX_ATTRIBUTE_LENGTH,
                       "description": "urn:tansiq:contract:<type>"},
        "correlationid": {"type": "string", "maxLength": envelopes.MAX_ID_LENGTH,
                          "pattern": _ecma(envelopes.PRINTABLE),
                          "description": "id of the first message of the conversation"},
        "signature": {"type": "string", "contentEncoding": "base64", "minLength": envelopes.SIGNATURE_LENGTH,
                      "maxLength": envelopes.SIGNATURE_LENGTH,
                      "description": "Ed25519 signature (64 bytes); required on everything partners send"},
        "data": {"type": "object"},
    },
}


def envelope_schema(type_, schema_name, signed):
    specific = {"properties": {"type": {"const": type_}, "data": {"$ref": f"#/components/schemas/{schema_name}"}}}
    if signed:
        specific["required"] = ["signature"]
    return {"allOf": [{"$ref": "#/components/schemas/Envelope"}, specific]}


def example_envelope(contract, signed):
    example = envelopes.Envelope(type=contract.type, source=EXAMPLE_SOURCE, data=contract.example,
                                 id=EXAMPLE_ID, time=EXAMPLE_TIME,
                                 signature="<base64 Ed25519 signature>" if signed else None)
    return example.to_dict()


def message_name(type_):
    return type_.removeprefix("ma.tansiq.")


def build():
    converter = _converter()
    partner_contracts = {type_: c for type_, c in contracts.all_contracts().items() if c.partners != "none"}
    schemas, messages = {}, {}
    for type_, contract in partner_contracts.items():
        schema_name = contract.schema.__name__
        schemas.setdefault(schema_name, converter.schema2jsonschema(contract.schema))
        signed = contract.partners in SENDS
        messages[message_name(type_)] = {
            "name": type_,
            "title": type_,
            "summary": contract.summary,
            "contentType": envelopes.CONTENT_TYPE,
            "payload": envelope_schema(type_, schema_name, signed),
            "examples": [{"name": "example", "payload": example_envelope(contract, signed)}],
            "bindings": {"amqp": {"messageType": type_, "bindingVersion": "0.2.0"}},
            "x-partners": contract.partners,
        }

    def refs(direction):
        return {"oneOf": [{"$ref": f"#/components/messages/{message_name(type_)}"}
                          for type_, contract in partner_contracts.items() if contract.partners in direction]}

    slug_parameter = {"description": "the association's slug (its broker user name)",
                      "schema": {"type": "string", "pattern": _ecma(envelopes.SOURCE_PATTERN)}}
    return {
        "asyncapi": "2.6.0",
        "id": "urn:ma:tansiq:partners",
        "info": {"title": "Tansiq partner messaging", "version": "1.0.0", "description": DESCRIPTION,
                 "license": {"name": "AGPL-3.0-or-later"}},
        "servers": {
            "production": {"url": "{host}:5671", "protocol": "amqps", "protocolVersion": "0.9.1",
                           "description": "the network's RabbitMQ, TLS; one broker user per association",
                           "variables": {"host": {"default": "broker.tansiq.example"}},
                           "security": [{"partnerUser": []}]},
            "local": {"url": "127.0.0.1:5672", "protocol": "amqp", "protocolVersion": "0.9.1",
                      "security": [{"partnerUser": []}]},
        },
        "defaultContentType": envelopes.CONTENT_TYPE,
        "channels": {
            f"{topology.PARTNERS_INBOUND}/{{slug}}.{{type}}": {
                "description": f"Messages a partner sends: exchange `{topology.PARTNERS_INBOUND}`, "
                               "routing key `<slug>.<type>` (the broker refuses any other slug).",
                "parameters": {"slug": slug_parameter,
                               "type": {"description": "the message type", "schema": {"type": "string"}}},
                "publish": {
                    "operationId": "sendToTansiq",
                    "summary": "Publish a signed message.",
                    "bindings": {"amqp": {"deliveryMode": 2, "mandatory": True, "userId": "<your slug>",
                                          "bindingVersion": "0.2.0"}},
                    "message": refs(SENDS),
                },
                "bindings": {"amqp": {"is": "routingKey", "bindingVersion": "0.2.0", "exchange": {
                    "name": topology.PARTNERS_INBOUND, "type": "topic", "durable": True, "autoDelete": False,
                    "vhost": "/"}}},
            },
            f"{topology.partner_queue('{slug}')}": {
                "description": f"A partner's own queue (quorum, durable), bound to `{topology.PARTNERS_OUTBOUND}` "
                               "with `<slug>.#`; only that partner may read it.",
                "parameters": {"slug": slug_parameter},
                "subscribe": {
                    "operationId": "receiveFromTansiq",
                    "summary": "Consume with manual acks; deduplicate on the envelope id.",
                    "bindings": {"amqp": {"ack": True, "bindingVersion": "0.2.0"}},
                    "message": refs(RECEIVES),
                },
                "bindings": {"amqp": {"is": "queue", "bindingVersion": "0.2.0", "queue": {
                    "name": topology.partner_queue("{slug}"), "durable": True, "exclusive": False,
                    "autoDelete": False, "vhost": "/"}}},
            },
        },
        "components": {
            "securitySchemes": {"partnerUser": {
                "type": "userPassword",
                "description": "broker user = your slug, password from `tansiq partners add`"}},
            "messages": messages,
            "schemas": {"Envelope": ENVELOPE_SCHEMA, **dict(sorted(schemas.items()))},
        },
    }


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper, value):
    # Multi-line text as a readable literal block.
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def render():
    header = "# Generated by `python -m tansiq.partner.asyncapi --write` from tansiq/contracts; do not edit.\n"
    return header + yaml.dump(build(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def main(argv=None):
    generated.main(render, OUTPUT, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    main()
