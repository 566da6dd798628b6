"""Errors that cross module boundaries, with stable machine-readable codes, and how they are logged."""

import logging


class BadMessage(Exception):
    """A message from outside that cannot be accepted.

    `reason` is a stable code partners and tools can act on (see REASON_CODES);
    `detail` is for humans.
    """

    def __init__(self, reason, detail=""):
        if reason not in REASON_CODES:
            raise ValueError(f"unknown rejection reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# Every reason a message can be refused for. Partners see these codes in
# rejection messages; keep them stable (add, never rename).
REASON_CODES = {
    "malformed_json": "the body is not a JSON object",
    "oversized": "the body is larger than the accepted maximum",
    "invalid_envelope": "a CloudEvents attribute is missing or wrong",
    "unknown_type": "no contract is registered for this message type",
    "schema_invalid": "the data does not match the contract of its type",
    "unknown_association": "the sender or recipient association is not in the directory",
    "forged_sender": "the envelope source does not match the authenticated broker user",
    "bad_signature": "the Ed25519 signature is missing or does not verify",
    "not_allowed": "the sender may not do this to this resource",
    "invalid_transition": "the change is not allowed in the current state",
    "handler_failed": "processing failed repeatedly; kept in the dead-letter queue",
    "duplicate_id": "this id was already used for a different message or resource",
    "invalid_rrule": "the recurrence rule is refused (unreadable, unbounded or too costly)",
    "unreadable": "the message could not be read or checked (kept for inspection)",
    "sealed_unreadable": "a sealed value does not open with the recipient's published encryption key",
}


class DomainError(Exception):
    """A rule of the domain refused a request. `code` maps to an HTTP status in the gateway.

    Registered with nameko so an RPC caller gets the same class back, code included
    (nameko rebuilds registered exceptions from their args).
    """

    default_code = "invalid_request"

    def __init__(self, message, code=None, details=None):
        super().__init__(message, code or type(self).default_code, details or {})

    @property
    def message(self):
        return self.args[0]

    @property
    def details(self):
        return self.args[2]

    def __str__(self):
        return self.args[0]

    @property
    def code(self):
        return self.args[1]


class NotFound(DomainError):
    default_code = "not_found"


class Conflict(DomainError):
    default_code = "conflict"


class Forbidden(DomainError):
    default_code = "forbidden"


class InvalidActor(DomainError):
    """An RPC's actor assertion is missing, expired, tampered with or meant for another service."""

    default_code = "unauthorized"


class NotReady(Exception):  # noqa: N818 - a state, as nameko's own ContainerBeingKilled
    """This process cannot handle anything yet (its read model of the directory has not loaded): a message
    waits for it without spending an attempt, however long the directory is down (tansiq.messaging.consumer)."""


class ServiceUnavailable(DomainError):
    """A called service did not answer in time (tansiq.calls); the gateway answers 503 with Retry-After."""

    default_code = "service_unavailable"


def load_request(schema, payload):
    """Validate an RPC argument with a marshmallow schema; a refusal crosses RPC as a DomainError
    (the gateway answers 400) with the field errors as details."""
    from marshmallow import ValidationError

    try:
        return schema.load(payload or {})
    except ValidationError as exc:
        raise DomainError("the request does not have the expected shape", code="invalid_request",
                          details=exc.messages) from None


# Errors that cross RPC as nameko RemoteError and are refusals, not failures, by class name.
_REFUSAL_NAMES = {"DomainError", "NotFound", "Conflict", "Forbidden", "InvalidActor", "ValidationError", "BadMessage"}


def is_refusal(exc):
    """True for an error that answers a request as designed (a rule said no, the input was wrong):
    logged as one line, without a traceback. Anything else is a failure and keeps its traceback."""
    from marshmallow import ValidationError
    from nameko.exceptions import RemoteError
    from werkzeug.exceptions import HTTPException

    if isinstance(exc, (DomainError, BadMessage, ValidationError)):
        return True
    if isinstance(exc, RemoteError):
        return exc.exc_type in _REFUSAL_NAMES
    return isinstance(exc, HTTPException) and (exc.code or 500) < 500


def is_service_missing(exc):
    """A call to a service that is not running (yet): an operational fact, not a bug here."""
    from nameko.exceptions import RemoteError, UnknownService

    return isinstance(exc, UnknownService) or (isinstance(exc, RemoteError) and exc.exc_type == "UnknownService")


class RefusalLogFilter(logging.Filter):
    """On a log handler: a record carrying an expected refusal (nameko logs every exception a worker
    raises, with its traceback, at ERROR) becomes one line without the traceback: WARNING for
    Forbidden and for a missing service, INFO for the other refusals. Other errors are untouched."""

    def filter(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not (is_refusal(exc) or is_service_missing(exc)):
            return True
        worker = record.args[0] if isinstance(record.args, tuple) and record.args else None
        entrypoint = getattr(worker, "entrypoint", None)
        where = f"{worker.service_name}.{entrypoint.method_name}" if entrypoint else record.getMessage()
        kind = "unavailable" if is_service_missing(exc) else "refused"
        record.msg, record.args = "%s %s: %s: %s", (kind, where, type(exc).__name__, _one_line(exc))
        record.exc_info, record.exc_text = None, None
        quiet = is_refusal(exc) and not _is_forbidden(exc)
        record.levelno = logging.INFO if quiet else logging.WARNING
        record.levelname = logging.getLevelName(record.levelno)
        return record.levelno >= logging.getLogger().getEffectiveLevel()  # the level the user asked for


def _is_forbidden(exc):
    """Someone tried what they may not do: worth a WARNING (werkzeug's Forbidden has code 403)."""
    return (isinstance(exc, Forbidden) or getattr(exc, "code", None) in ("forbidden", 403)
            or getattr(exc, "exc_type", None) == "Forbidden")


def _one_line(exc):
    return " ".join(str(exc).split())[:500]


def _register_with_nameko():
    from nameko.exceptions import deserialize_to_instance

    for cls in (DomainError, NotFound, Conflict, Forbidden, InvalidActor, ServiceUnavailable):
        deserialize_to_instance(cls)


_register_with_nameko()
