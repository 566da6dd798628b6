"""Who may use which route: each route declares a permission of the role matrix (tansiq.contracts.actor)
in its one declaration, `@route(..., auth="cases.read", audience=("intake",))` (services/gateway/routes.py).

Before any RPC the gateway refuses a caller who is not signed in (401) or whose roles lack the
permission (403); the route then receives `actor`, a short-lived assertion signed for the named
services (tansiq.identity), which is what it passes over RPC. The owning service verifies it and
checks the same matrix again: the gateway is a first gate, not the only one. Templates get `can`.
"""

import logging

import eventlet

from services.gateway.web import Unauthorized, current_route, current_staff
from tansiq.contracts.actor import allows, require
from tansiq.errors import Forbidden

log = logging.getLogger(__name__)
REFUSAL_AUDIT_TIMEOUT_S = 2  # intake down: the 403 waits this long at most, not the 10 s of other calls


def signed_in_or_none(request):
    try:
        return current_staff(request)
    except Unauthorized:
        return None


def check(staff, permission):
    """Refuse `staff` (the session's claims) unless her roles hold `permission` (403)."""
    require(staff.get("roles"), permission)


def can(staff):
    """For templates: can(permission) -> bool for the signed-in staff member (navigation, buttons)."""
    return lambda permission: bool(staff) and allows(staff.get("roles"), permission)


def record_refusal(gateway, staff, refused):
    """Write the refusal to the accountability log (intake's hash-chained audit trail): who, which route
    (its pattern: no value from the URL), why, when. A failure to record is logged; the 403 stands."""
    method, route = current_route()
    reason = refused.details.get("reason") or refused.code
    try:
        with eventlet.Timeout(REFUSAL_AUDIT_TIMEOUT_S):
            gateway.intake_rpc.record_route_refusal(method, route, reason, gateway.identity.sign(staff, "intake"))
    except (Exception, eventlet.Timeout) as exc:  # noqa: BLE001 - intake down: the refusal is still answered, and logged here
        log.warning("could not record the refusal of %s %s to staff %s: %r", method, route, staff.get("id"), exc)



def refusals_recorded(gateway, staff, run):
    """run(); a role or association refusal of a signed-in staff member (Forbidden `forbidden`, not a CSRF,
    consent or password refusal) is written to the accountability log before it is answered."""
    try:
        return run()
    except Forbidden as refused:
        if staff is not None and refused.code == "forbidden":
            record_refusal(gateway, staff, refused)
        raise
