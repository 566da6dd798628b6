"""Who may use which route: each route declares a permission of the role matrix (tansiq.contracts.actor)
in its one declaration, `@route(..., auth="cases.read", audience=("intake",))` (services/gateway/routes.py).

Before any RPC the gateway refuses a caller who is not signed in (401) or whose roles lack the
permission (403); the route then receives `actor`, a short-lived assertion signed for the named
services (tansiq.identity), which is what it passes over RPC. The owning service verifies it and
checks the same matrix again: the gateway is a first gate, not the only one. Templates get `can`.
"""


from services.gateway.web import Unauthorized, current_staff
from tansiq.contracts.actor import allows, require


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
