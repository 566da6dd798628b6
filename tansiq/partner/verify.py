"""Checks every message from a partner passes before a service acts on it.

Authentication first (broker user, routing key, signature), so an unauthenticated
sender learns nothing about our contracts; then the type and its schema.
"""

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
