"""The CloudEvents 1.0 envelope every Tansiq message travels in (JSON structured mode)."""

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from tansiq.errors import BadMessage

SPECVERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json"
MAX_BODY_BYTES = 256 * 1024
TYPE_PATTERN = re.compile(r"^ma\.tansiq\.[a-z_]+\.[a-z_]+\.v[0-9]+$")
SOURCE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
REQUIRED = ("specversion", "id", "source", "type")


def utcnow():
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Envelope:
    type: str
    source: str
    data: dict
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: str = field(default_factory=lambda: utcnow().isoformat(timespec="milliseconds"))
    correlationid: str | None = None
    signature: str | None = None  # base64 Ed25519 over signing_bytes(), set by partners
    # The JSON object as received: a signature covers what the sender sent, attributes we
    # do not model included, so it is checked against this rather than a rebuilt copy.
    raw: dict | None = field(default=None, compare=False, repr=False)

    @property
    def version(self):
        return int(self.type.rsplit(".v", 1)[1])

    def to_dict(self):
        body = {
            "specversion": SPECVERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
            "datacontenttype": "application/json",
            "dataschema": f"urn:tansiq:contract:{self.type}",
            "data": self.data,
        }
        if self.correlationid:
            body["correlationid"] = self.correlationid
        if self.signature:
            body["signature"] = self.signature
        return body

    def to_json(self):
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    def to_bytes(self):
        return self.to_json().encode("utf-8")

    def signing_bytes(self):
        """The canonical bytes a partner signs: everything but the signature itself."""
        unsigned = dict(self.raw) if self.raw is not None else self.to_dict()
        unsigned.pop("signature", None)
        return json.dumps(unsigned, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()

    def reply(self, type, data, source):
        """A message caused by this one, keeping the correlation chain."""
        return Envelope(type=type, source=source, data=data, correlationid=self.correlationid or self.id)


def parse(body):
    """Bytes (or str) from the wire -> Envelope, or BadMessage with a reason code.

    Only the envelope is checked here; the data is checked against its contract
    by `tansiq.contracts.validate`.
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    if len(body) > MAX_BODY_BYTES:
        raise BadMessage("oversized", f"{len(body)} bytes > {MAX_BODY_BYTES}")
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadMessage("malformed_json", str(exc)[:200]) from None
    if not isinstance(raw, dict):
        raise BadMessage("malformed_json", "the body must be a JSON object")
    missing = [key for key in REQUIRED if not raw.get(key)]
    if missing:
        raise BadMessage("invalid_envelope", f"missing {', '.join(missing)}")
    if raw["specversion"] != SPECVERSION:
        raise BadMessage("invalid_envelope", f"specversion must be {SPECVERSION}")
    for key in ("id", "source", "type"):
        if not isinstance(raw[key], str) or len(raw[key]) > 200:
            raise BadMessage("invalid_envelope", f"{key} must be a short string")
    if not TYPE_PATTERN.match(raw["type"]):
        raise BadMessage("invalid_envelope", "type must look like ma.tansiq.<aggregate>.<verb>.v<N>")
    if not SOURCE_PATTERN.match(raw["source"]):
        raise BadMessage("invalid_envelope", "source must be an association or service slug")
    data = raw.get("data")
    if not isinstance(data, dict):
        raise BadMessage("invalid_envelope", "data must be a JSON object")
    return Envelope(
        type=raw["type"],
        source=raw["source"],
        data=data,
        id=raw["id"],
        time=raw.get("time") or utcnow().isoformat(timespec="milliseconds"),
        correlationid=raw.get("correlationid"),
        signature=raw.get("signature"),
        raw=raw,
    )
