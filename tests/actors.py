"""Signed actor assertions for tests: one throwaway Ed25519 pair, as the gateway would sign them."""

from tansiq.contracts.actor import Actor
from tansiq.identity import ActorSigner

SERVICES = ("intake", "referrals", "events", "notifications")
# Valid for hours, not a minute: test modules sign their actors once, at import, and a whole suite
# takes longer than a minute (tests/unit/test_identity.py checks the real expiry with its own clock).
SIGNER = ActorSigner.generate(ttl=6 * 3600)


def actor(staff):
    """An Actor from a staff dict {id, association, roles} (domain tests)."""
    return Actor(association=staff["association"], id=staff["id"], roles=frozenset(staff.get("roles") or ()),
                 name=staff.get("name", ""), language=staff.get("language", "fr"))


def signed(staff, *audience):
    """The assertion the gateway would give `staff` for `audience` (every service by default)."""
    return SIGNER.sign(staff, *(audience or SERVICES))


def verifier(service):
    """What `service` verifies assertions with (pass as its `identity` dependency to worker_factory)."""
    return SIGNER.verifier(service)
