"""Checks every message from a partner passes before a service acts on it.

Authentication first (broker user, routing key, signature), so an unauthenticated
sender learns nothing about our contracts; then the type and its schema.
"""

import json

from tansiq import contracts, envelope as envelopes, signing
from tansiq.errors import BadMessage

PARTNER_MAY_SEND = ("send", "both")


def check_inbound(body, user_id, routing_key, public_key_for):
    """Bytes from `partners.inbound` -> validated Envelope, or BadMessage(reason).

    `user_id` is the AMQP user_id property: RabbitMQ refuses any value other than
    the connection's user, so it names the sender. `public_key_for(slug)` returns
    the association's base64 Ed25519 public key, or None if it is not registered.
    """
    envelope = envelopes.parse(body)  # oversized, malformed_json, invalid_envelope
    if not user_id or envelope.source != user_id:
        raise BadMessage("forged_sender", f"source {envelope.source!r} but broker user {user_id!r}")
    if not (routing_key or "").startswith(f"{envelope.source}."):
        raise BadMessage("forged_sender", f"routing key {routing_key!r} is not under {envelope.source!r}")
    public_key = public_key_for(envelope.source)
    if public_key is None:
        raise BadMessage("unknown_association", envelope.source)
    signing.verify(envelope, public_key)
    if contracts.get(envelope.type).partners not in PARTNER_MAY_SEND:
        raise BadMessage("unknown_type", f"partners may not send {envelope.type}")
    return contracts.validate(envelope)


REJECTED = "ma.tansiq.message.rejected.v1"


def rejection(body, user_id, error, source):
    """-> (routing key on partners.outbound, Envelope) answering a refused message, or None.

    Addressed to the authenticated broker user, never to the envelope's claimed
    source (which may be forged); None when there is no broker user to answer.
    """
    if not user_id or not envelopes.SOURCE_PATTERN.match(user_id):
        return None
    rejected_id = rejected_type = None
    try:
        raw = json.loads(body) if len(body) <= envelopes.MAX_BODY_BYTES else None
        if isinstance(raw, dict):
            rejected_id, rejected_type = (str(raw[key])[:200] if raw.get(key) else None for key in ("id", "type"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        pass  # malformed: nothing to quote back
    data = {"rejected_id": rejected_id, "rejected_type": rejected_type, "reason": error.reason,
            "detail": error.detail[:500]}
    return f"{user_id}.{REJECTED}", contracts.make(REJECTED, source, data, correlationid=rejected_id)
