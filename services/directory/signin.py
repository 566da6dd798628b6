"""Sign-in rules: server-side sessions that end, and throttling of wrong passwords.

Sessions live here, next to the staff they belong to, so deactivating a staff member or
changing her password revokes her sessions in the same transaction: the next request
of any of her browsers is refused, with no cache or event to wait for.

A session ends on sign-out, after IDLE without a request, ABSOLUTE after sign-in, and
when its staff member is deactivated or her password changes.

Throttling (the choice, documented in docs/security.md): after ACCOUNT_FREE_FAILURES
consecutive wrong passwords for one email, or ADDRESS_FREE_FAILURES from one address,
each further failure locks that account (or address) for twice as long as the last
(1 min, 2, 4, 8, then 15 min at most). A lock always ends by itself, the refusal says
so and when (`too_many_attempts`, HTTP 429 with Retry-After), and it is logged: an
attacker can keep one account waiting, never lock it for good or silently. During a
lock even the right password is refused (else a lock would only slow guessing).
"""

import hashlib
import logging
import secrets
from datetime import timedelta

from sqlalchemy import select, update

from services.directory import changes, domain
from services.directory.domain import authenticate
from services.directory.models import SignInThrottle, Staff, StaffSession
from tansiq.contracts.directory import SESSION_ABSOLUTE, SESSION_IDLE
from tansiq.errors import DomainError, Forbidden
from tansiq.readmodel import csrf_for, digest

log = logging.getLogger(__name__)

IDLE, ABSOLUTE = SESSION_IDLE, SESSION_ABSOLUTE  # shared with the gateways' read models (tansiq.readmodel)
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often (one write per request is waste)
ACCOUNT_FREE_FAILURES = 5
ADDRESS_FREE_FAILURES = 20
FIRST_LOCK = timedelta(minutes=1)
LONGEST_LOCK = timedelta(minutes=15)
FORGET_AFTER = timedelta(hours=24)  # failures older than this no longer count
MIN_PASSWORD_LENGTH = 10


def token_hash(token):
    return digest(token)


def _account_key(email):
    return "account:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()


def _address_key(address):
    return f"address:{address}" if address else None


def _locked_for(session, keys, now):
    """Seconds until the longest lock among `keys` ends (0: none is locked)."""
    rows = session.scalars(select(SignInThrottle).where(SignInThrottle.key.in_([k for k in keys if k])))
    return max([int((row.locked_until - now).total_seconds()) + 1 for row in rows
                if row.locked_until and row.locked_until > now] or [0])


def _fail(session, key, free, now):
    if key is None:
        return
    row = session.get(SignInThrottle, key) or SignInThrottle(key=key, failures=0)
    session.add(row)
    if row.last_failure_at and now - row.last_failure_at > FORGET_AFTER:
        row.failures = 0
    row.failures += 1
    row.last_failure_at = now
    if row.failures > free:
        lock = min(FIRST_LOCK * 2 ** (row.failures - free - 1), LONGEST_LOCK)
        row.locked_until = now + lock
        log.warning("sign-in locked for %s s after %s failures (%s)", int(lock.total_seconds()), row.failures,
                    key.split(":")[0])


def too_many_attempts(seconds):
    return DomainError(f"too many failed sign-ins; try again in {(seconds + 59) // 60} minute(s)",
                       code="too_many_attempts", details={"retry_after": seconds})


def sign_in(session, now, email, password, address=""):
    """A new session {token, csrf_token, staff} for these credentials.

    Raises DomainError unauthorized (wrong email or password: one answer for both) or
    too_many_attempts (locked; the password was not even checked).
    """
    account, by_address = _account_key(email), _address_key(address)
    wait = _locked_for(session, (account, by_address), now)
    if wait:
        raise too_many_attempts(wait)
    staff = authenticate(session, email, password)
    if staff is None:
        _fail(session, account, ACCOUNT_FREE_FAILURES, now)
        _fail(session, by_address, ADDRESS_FREE_FAILURES, now)
        return None
    throttles = session.scalars(select(SignInThrottle).where(SignInThrottle.key == account))
    for row in throttles:  # the address keeps its count: one address trying many accounts stays throttled
        session.delete(row)
    return open_session(session, now, staff, address)


def open_session(session, now, staff, address=""):
    token = secrets.token_urlsafe(32)
    row = StaffSession(token_hash=token_hash(token), staff_id=staff.id, csrf_token=csrf_for(token),
                       address=address or "", created_at=now, last_seen_at=now)
    session.add(row)
    session.flush()
    changes.session_opened(session, row)  # the gateways' read models learn it without asking
    return {"token": token, "csrf_token": row.csrf_token, "staff": staff, "created_at": now.isoformat()}


def current(session, now, token, idle=True):
    """(staff, csrf_token) for a live session token, else None. Keeps the session alive (idle timeout).

    `idle=False`: the idle timeout was checked by the caller (the gateway, which sees every request and
    keeps the session's idle clock in its read model; this row's last_seen_at is only as fresh as the
    last time the directory was asked)."""
    row = session.get(StaffSession, token_hash(token)) if token else None
    if row is None or row.revoked_at is not None:
        return None
    if (idle and now - row.last_seen_at > IDLE) or now - row.created_at > ABSOLUTE:
        row.revoked_at = now
        changes.sessions_revoked(session, row.staff_id, [row.token_hash])
        return None
    staff = session.get(Staff, row.staff_id)
    if staff is None or not staff.active:
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        row.last_seen_at = now
    return staff, row.csrf_token


def sign_out(session, now, token):
    row = session.get(StaffSession, token_hash(token)) if token else None
    if row is not None and row.revoked_at is None:
        row.revoked_at = now
        changes.sessions_revoked(session, row.staff_id, [row.token_hash])


def revoke_all(session, now, staff_id):
    """End every session of this staff member (deactivation, password change); the ended token hashes."""
    live = (StaffSession.staff_id == staff_id, StaffSession.revoked_at.is_(None))
    ended = session.scalars(select(StaffSession.token_hash).where(*live)).all()
    session.execute(update(StaffSession).where(*live).values(revoked_at=now))
    changes.sessions_revoked(session, staff_id, ended)
    return ended


def change_password(session, now, token, current_password, new_password):
    """Her new password; all her sessions end, this browser gets a new one ({token, csrf_token, staff,
    ended_token_hashes}: the hashes of the sessions ended, are what a gateway ends at once, not "all of hers",
    which would end the new one too if the feed had already announced it)."""
    found = current(session, now, token, idle=False)  # the gateway, which asks, keeps the idle clock
    if found is None:
        raise DomainError("sign in first", code="unauthorized")
    staff = found[0]
    if authenticate(session, staff.email, current_password) is None:
        raise Forbidden("the current password is wrong", code="wrong_password")  # 401 would mean "signed out"
    if len(new_password) < MIN_PASSWORD_LENGTH:
        raise DomainError(f"a password has at least {MIN_PASSWORD_LENGTH} characters", code="invalid_request",
                          details={"new_password": [f"at least {MIN_PASSWORD_LENGTH} characters"]})
    staff.password_hash = domain._hasher.hash(new_password)
    ended = revoke_all(session, now, staff.id)
    return {**open_session(session, now, staff, session.get(StaffSession, token_hash(token)).address),
            "ended_token_hashes": ended}


def deactivate(session, now, staff):
    staff.active = False
    revoke_all(session, now, staff.id)
    return staff
