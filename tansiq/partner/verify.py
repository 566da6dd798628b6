"""Checks every message from a partner passes before a service acts on it.

Authentication first (broker user, routing key, signature), so an unauthenticated
sender learns nothing about our contracts; then the type and its schema.
"""

import json
from dataclasses import replace

from tansiq import contracts, signing
from tansiq import envelope as envelopes
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
    if routing_key != f"{envelope.source}.{envelope.type}":
        raise BadMessage("invalid_envelope", "the routing key must be <your slug>.<the envelope's type>")
    public_key = public_key_for(envelope.source)
    if public_key is None:
        raise BadMessage("unknown_association", envelope.source)
    signing.verify(envelope, public_key)
    if contracts.get(envelope.type).partners not in PARTNER_MAY_SEND:
        raise BadMessage("unknown_type", f"partners may not send {envelope.type}")
    return replace(contracts.validate(envelope), sender=user_id)


REJECTED = "ma.tansiq.message.rejected.v1"


def rejection(body, user_id, error, source, message_id=None):
    """-> (routing key on partners.outbound, Envelope) answering a refused message, or None.

    Addressed to the authenticated broker user, never to the envelope's claimed
    source (which may be forged); None when there is no broker user to answer.
    `rejected_id` is the envelope id, or the AMQP message_id when the body cannot be read.
    """
    if not isinstance(user_id, str) or not envelopes.SOURCE_PATTERN.match(user_id):
        return None
    rejected_id = rejected_type = None
    try:
        raw = envelopes.parse(body).raw
    except Exception:  # noqa: BLE001 - unreadable: fall back on what can be read without risk
        raw = _readable_attributes(body)
    if isinstance(raw, dict):
        rejected_id, rejected_type = (raw[key][:200] if isinstance(raw.get(key), str) and raw[key] else None
                                      for key in ("id", "type"))
    if rejected_id is None and isinstance(message_id, str) and message_id:
        rejected_id = message_id[:200]
    data = {"rejected_id": rejected_id, "rejected_type": rejected_type, "reason": error.reason,
            "detail": error.detail[:500]}
    correlationid = rejected_id if rejected_id and len(rejected_id) <= envelopes.MAX_ID_LENGTH \
        and envelopes.PRINTABLE.match(rejected_id) else None
    return f"{user_id}.{REJECTED}", contracts.make(REJECTED, source, data, correlationid=correlationid)


def _readable_attributes(body):
    """id and type of a body the envelope parser refused, when it is a small, shallow JSON object."""
    try:
        if len(body) > envelopes.MAX_BODY_BYTES or envelopes.nesting_depth(bytes(body)) > envelopes.MAX_DEPTH:
            return None
        raw = json.loads(bytes(body).decode("utf-8"))
    except Exception:  # noqa: BLE001 - nothing to quote back
        return None
    return raw if isinstance(raw, dict) else None
