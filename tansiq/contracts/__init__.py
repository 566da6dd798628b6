"""The one place every message type is defined: one marshmallow schema per type and version.

Services, the partner SDK and docs/asyncapi.yaml all read this registry.
Evolution rule: within a version only optional fields may be added (consumers
ignore what they do not know); anything else is a new type `...v<N+1>`,
published side by side with the old one until partners have moved.
"""

from dataclasses import dataclass, replace
from functools import cache

from marshmallow import EXCLUDE, Schema, ValidationError

from tansiq.envelope import Envelope
from tansiq.errors import BadMessage


class ContractSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # forward compatible: optional fields may be added within a version


@dataclass(frozen=True)
class Contract:
    type: str
    schema: type
    summary: str
    partners: str  # "none" | "send" | "receive" | "both": which way partners may use it
    example: dict


_REGISTRY: dict[str, Contract] = {}


def contract(*types, summary, partners="none", example=None):
    """Class decorator: register a schema for one or more message types."""

    def register(schema_cls):
        for type_ in types:
            if type_ in _REGISTRY:
                raise RuntimeError(f"contract {type_} registered twice")
            _REGISTRY[type_] = Contract(type_, schema_cls, summary, partners, example or {})
        return schema_cls

    return register


def get(type_):
    try:
        return _REGISTRY[type_]
    except KeyError:
        raise BadMessage("unknown_type", type_) from None


def all_contracts():
    return dict(sorted(_REGISTRY.items()))


@cache
def _instance(schema_cls):
    """One schema object per contract: building one deep-copies every field (and nested schema), which
    cost more than the load itself on a consumer's hot path. load and dump keep no state between calls."""
    return schema_cls()


def validate(envelope):
    """Check an incoming envelope's data against its contract; returns it with loaded data."""
    schema = _instance(get(envelope.type).schema)
    try:
        loaded = schema.load(envelope.data)
    except ValidationError as exc:
        raise BadMessage("schema_invalid", _first_errors(exc.messages)) from None
    except Exception as exc:  # noqa: BLE001 - a value no field foresaw: refused, never a crash
        raise BadMessage("schema_invalid", f"{type(exc).__name__} while reading the data") from None
    return replace(envelope, data=loaded)


def make(type_, source, data, correlationid=None):
    """Build an outgoing envelope; refuses data its own contract would refuse (a bug, not input)."""
    schema = _instance(get(type_).schema)
    try:
        loaded = schema.load(data)
    except ValidationError as exc:
        raise ValueError(f"{type_}: {exc.messages}") from None
    return Envelope(type=type_, source=source, data=schema.dump(loaded), correlationid=correlationid)


def _first_errors(messages, limit=300):
    return str(messages)[:limit]


# Importing the modules registers their contracts.
from tansiq.contracts import directory, events, intake, platform, referrals  # noqa: E402,F401
