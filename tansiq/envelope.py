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
TYPE_PATTERN = re.compile(r"^ma\.tansiq\.[a-z_]{1,40}\.[a-z_]{1,40}\.v[0-9]{1,3}\Z")
SOURCE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}\Z")
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
    # The broker-validated sender of a partner message (AMQP user_id at ingress), set by the kernel.
    sender: str | None = field(default=None, compare=False)

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


MAX_DEPTH = 32           # JSON nesting accepted, checked before parsing (deeper bodies crash parsers)
MAX_ID_LENGTH = 128
MAX_ATTRIBUTE_LENGTH = 200
MAX_EXTENSIONS = 8       # CloudEvents extension attributes beyond the ones we know
DATA_CONTENT_TYPE = "application/json"
SIGNATURE_LENGTH = 88    # base64 of the 64 bytes of an Ed25519 signature
EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}\Z")
PRINTABLE = re.compile(r"^[\x21-\x7e]+\Z")  # visible ASCII: no spaces, no control characters
SIGNATURE_PATTERN = re.compile(r"^[A-Za-z0-9+/]{86}==\Z")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})\Z")
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')  # strings (skipped) and brackets
KNOWN = {"specversion", "id", "source", "type", "time", "datacontenttype", "dataschema", "correlationid",
         "signature", "data"}


def nesting_depth(body):
    """The deepest nesting of arrays/objects in JSON bytes, counted without parsing them."""
    depth = deepest = 0
    for token in _JSON_TOKENS.finditer(body):
        char = token.group()[:1]
        if char in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    break
        elif char in (b"]", b"}"):
            depth -= 1
    return deepest


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def _short_string(raw, key, max_length=MAX_ATTRIBUTE_LENGTH, pattern=None, required=True):
    value = raw.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise BadMessage("invalid_envelope", f"{key} must be a non-empty string of at most {max_length} characters")
    if pattern is not None and not pattern.match(value):
        raise BadMessage("invalid_envelope", f"{key} has the wrong form")
    return value


def _check_time(value):
    if not isinstance(value, str) or not RFC3339.match(value):
        raise BadMessage("invalid_envelope", "time must be an RFC 3339 timestamp")
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise BadMessage("invalid_envelope", "time is not a real date and time") from None


def _check_signature(value):
    if value is None:
        return
    if not isinstance(value, str) or len(value) != SIGNATURE_LENGTH or not SIGNATURE_PATTERN.match(value):
        raise BadMessage("bad_signature", f"signature must be the base64 of 64 bytes ({SIGNATURE_LENGTH} characters)")


def _check_extensions(raw):
    extensions = [key for key in raw if key not in KNOWN]
    if len(extensions) > MAX_EXTENSIONS:
        raise BadMessage("invalid_envelope", f"more than {MAX_EXTENSIONS} extension attributes")
    for key in extensions:
        value = raw[key]
        if not EXTENSION_NAME.match(key):
            raise BadMessage("invalid_envelope", "attribute names are 1 to 20 lowercase letters or digits")
        if not (value is None or isinstance(value, (bool, int, str))) or (
                isinstance(value, str) and len(value) > MAX_ATTRIBUTE_LENGTH) or (
                isinstance(value, int) and not -2**31 <= value < 2**31):
            raise BadMessage("invalid_envelope", f"extension {key} must be a short string, an integer or a boolean")


def _has_lone_surrogate(raw):
    try:
        json.dumps(raw, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse(body):
    """Bytes (or str) from the wire -> Envelope, or BadMessage with a reason code.

    Size, encoding and nesting are bounded before the JSON parser sees the bytes; every
    CloudEvents attribute is checked for type and value. Only the envelope is checked here;
    the data is checked against its contract by `tansiq.contracts.validate`.
    """
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise BadMessage("malformed_json", "the body must be bytes")
    body = bytes(body)
    if len(body) > MAX_BODY_BYTES:
        raise BadMessage("oversized", f"{len(body)} bytes > {MAX_BODY_BYTES}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadMessage("malformed_json", "the body must be UTF-8") from None
    if nesting_depth(body) > MAX_DEPTH:
        raise BadMessage("malformed_json", f"nested deeper than {MAX_DEPTH} levels")
    try:
        raw = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise BadMessage("malformed_json", str(exc)[:200]) from None
    if not isinstance(raw, dict):
        raise BadMessage("malformed_json", "the body must be a JSON object")
    if "\\u" in text and _has_lone_surrogate(raw):
        raise BadMessage("malformed_json", "a \\u escape names half a character (lone surrogate)")
    missing = [key for key in REQUIRED if key not in raw]
    if missing:
        raise BadMessage("invalid_envelope", f"missing {', '.join(missing)}")
    if raw["specversion"] != SPECVERSION or not isinstance(raw["specversion"], str):
        raise BadMessage("invalid_envelope", f"specversion must be the string {SPECVERSION!r}")
    _short_string(raw, "id", MAX_ID_LENGTH, PRINTABLE)
    _short_string(raw, "type", pattern=TYPE_PATTERN)
    _short_string(raw, "source", pattern=SOURCE_PATTERN)
    if "time" in raw:
        _check_time(raw["time"])
    if "datacontenttype" in raw and raw["datacontenttype"] != DATA_CONTENT_TYPE:
        raise BadMessage("invalid_envelope", f"datacontenttype must be {DATA_CONTENT_TYPE}")
    _short_string(raw, "dataschema", required=False)
    _short_string(raw, "correlationid", MAX_ID_LENGTH, PRINTABLE, required=False)
    _check_signature(raw.get("signature"))
    _check_extensions(raw)
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
