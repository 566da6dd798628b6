"""How the gateway reads a command's idempotency key. Its calls are timed by tansiq.calls."""

from tansiq.calls import IDEMPOTENCY_HEADER
from tansiq.commands import check_key


def idempotency_key(request):
    """The request's `Idempotency-Key` header (None without one; 400 if malformed)."""
    return check_key(request.headers.get(IDEMPOTENCY_HEADER))
