"""Exactly-once commands: an idempotency key recorded with the command's effect, a repeat answered from it.

nameko acks an RPC request only after replying, so a worker that committed and died runs the command
again on redelivery; a client that saw a timeout retries. Every command entrypoint therefore takes an
optional `idempotency_key` (the gateway passes the `Idempotency-Key` header or the key a page generated
for its form) and goes through `Command`:

    command = Command("intake.register_beneficiary", actor, idempotency_key, payload)
    with self.db.session() as session:
        return command.run(session, lambda: domain.register_beneficiary(session, ...))

The key is scoped by the actor inside her association and by the command name; the row (key, request
fingerprint, first result) is written in the SAME transaction as the effect, so both exist or neither.
A first result may hold personal data (a referral's shared fields): the row keeps no copy in clear.
It stores a hash of the key, and the result encrypted (AES-GCM) under another hash of it, so only a
caller who holds the key itself can have it back; clients use random keys (the web app: UUIDs).
A repeat with the same request gets the first result; the same key with another request is refused
(409 `idempotency_key_reused`). Two attempts racing each other: the unique key refuses the second one
(409 `idempotency_key_in_progress`), its effect is rolled back, and its retry finds the first result.
A command that asks another service for a command of its own (a referral asks intake for the share) passes
`key_for(call)`, and names what it creates `created_id()`: both derived from its key, so its retry finds
the other service's first result, made for the same id, instead of having the other command run twice.
Keys are forgotten after COMMAND_KEY_TTL_H hours (24 by default) by `CommandKeyJanitor`, which every
`tansiq.db.Database` brings along.

A result about a woman must not outlive her erasure (or the end of a recipient's copy) by those 24
hours: each row names its `subject` (her record's id, a referral's id), and `forget_results(session,
subjects)` blanks the results about them in the unit of work that erases. A repeat of such a key is
refused (410 `result_erased`): nothing comes back, and nothing is carried out again.
"""

import base64
import hashlib
import hmac
import logging
import os
import uuid
from datetime import timedelta

import eventlet
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from kombu.utils import json as wire_json
from nameko.extensions import SharedExtension
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from tansiq.envelope import utcnow
from tansiq.errors import Conflict, DomainError
from tansiq.messaging.store import CommandKey

log = logging.getLogger(__name__)

TTL_KEY, DEFAULT_TTL_H = "COMMAND_KEY_TTL_H", 24
SWEEP_SECONDS = 3600
KEY_MAX_LENGTH = 200
KEY_REUSED = "idempotency_key_reused"  # a Conflict (409): the key was used for another request
IN_PROGRESS = "idempotency_key_in_progress"  # a Conflict (409): another attempt with this key committed first
RESULT_ERASED = "result_erased"  # 410: the first result was about data since erased; it is not run again
FORGOTTEN = ""  # what a blanked result holds


# Built once, run with each command's values: building them cost more than the database took to answer.
# Core, on the table's columns: no ORM object, no ORM result.
_KEYS = CommandKey.__table__
_FIRST_RESULT = select(_KEYS.c.fingerprint, _KEYS.c.result).where(
    _KEYS.c.scope == bindparam("scope"), _KEYS.c.command == bindparam("command"), _KEYS.c.key == bindparam("key"))
_RECORD = insert(_KEYS)


def fingerprint(request, secret):
    """What makes two attempts the same request: an HMAC of its canonical JSON (keyed, since the request
    may hold a phone number that a plain hash would let anyone reading the table guess)."""
    content = wire_json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hmac.new(secret, content.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def scope_of(actor):
    """Whose keys these are: one staff member (or partner system) inside her association."""
    if actor is None:
        return "-"
    return f"{actor.association}/{actor.id or '-'}"


def check_key(key):
    """None, or a key of 1 to KEY_MAX_LENGTH visible ASCII characters (else 400 invalid_request)."""
    if key is None:
        return None
    if not isinstance(key, str) or not 0 < len(key) <= KEY_MAX_LENGTH or not all(33 <= ord(c) < 127 for c in key):
        raise DomainError(f"an idempotency key is 1 to {KEY_MAX_LENGTH} visible ASCII characters",
                          code="invalid_request", details={"field": "Idempotency-Key"})
    return key


def _derive(purpose, *parts):
    return hashlib.sha256("\n".join(["tansiq.commands", purpose, *parts]).encode("utf-8")).digest()


class Command:
    """One attempt at a command: `name`, who asks (`actor`), her key (None: no protection), the request."""

    def __init__(self, name, actor, key, *request):
        self.name, key = name, check_key(key)
        self.scope = scope_of(actor)
        self.key = self.fingerprint = self._own = None
        if key is not None:
            self._own = (self.scope, name, key)  # what created_id and key_for derive from
            self.key = _derive("lookup", self.scope, name, key).hex()  # what the table holds of the key
            self._result_key = _derive("result", self.scope, name, key)
            self.fingerprint = fingerprint([name, *request], _derive("fingerprint", self.scope, name, key))

    def _seal(self, result):
        nonce = os.urandom(12)
        sealed = AESGCM(self._result_key).encrypt(nonce, wire_json.dumps(result).encode("utf-8"), self.key.encode())
        return base64.b64encode(nonce + sealed).decode("ascii")

    def _open(self, stored):
        token = base64.b64decode(stored)
        try:
            return wire_json.loads(AESGCM(self._result_key).decrypt(token[:12], token[12:], self.key.encode()))
        except InvalidTag:  # cannot happen with the key that sealed it; never answer someone else's result
            raise Conflict("this Idempotency-Key does not open its first result", code=KEY_REUSED,
                           details={"command": self.name}) from None

    def created_id(self):
        """The id of what this command creates: the same on every attempt with this key (a new random one
        without a key), so what another service did for a first attempt (a share sealed to this id) fits the retry."""
        if self._own is None:
            return str(uuid.uuid4())
        return str(uuid.UUID(bytes=_derive("created id", *self._own)[:16], version=4))

    def key_for(self, call):
        """The idempotency key for `call`, a command this one asks of another service: the same on every
        attempt, so the other service carries it out once however often this one is retried (None without a key)."""
        return None if self._own is None else _derive("key for", call, *self._own).hex()

    def first_result(self, session):
        """(True, result) if this key already carried out this request; (False, None) if it is new.

        Raises Conflict (KEY_REUSED) if the key carried out another request."""
        if self.key is None:
            return False, None
        row = session.execute(_FIRST_RESULT, {"scope": self.scope, "command": self.name, "key": self.key}).first()
        if row is None:
            return False, None
        if row.fingerprint != self.fingerprint:
            raise Conflict(f"this Idempotency-Key was already used for another {self.name} request",
                           code=KEY_REUSED, details={"command": self.name})
        if row.result == FORGOTTEN:
            raise DomainError("this request was carried out, and what it answered has since been erased",
                              code=RESULT_ERASED, details={"command": self.name})
        return True, self._open(row.result)

    def record(self, session, result, subject=None):
        """Keep `result` as this key's answer, in `session`'s transaction (the one holding the effect).
        `subject`: whose data the result may hold (an id, or a function of the result), for forget_results."""
        if self.key is not None:
            session.flush()  # the effect's own constraints fail here, not as a key conflict
            subject = subject(result) if callable(subject) else subject
            try:  # a Core insert: the key's row needs no ORM object and no second flush
                session.execute(_RECORD, {
                    "scope": self.scope, "command": self.name, "key": self.key, "fingerprint": self.fingerprint,
                    "result": self._seal(result), "subject": None if subject is None else str(subject)})
            except IntegrityError:
                # A racing attempt with this key got there first: this one's effect must roll back with it.
                raise self.lost_race() from None
        # What the caller gets is what a repeat will get: the result as it travels, not as it was built.
        return wire_json.loads(wire_json.dumps(result))

    def lost_race(self):
        """What an attempt hears when another attempt with the same key was carried out first (409)."""
        return Conflict("another attempt with this Idempotency-Key was carried out first; send it again for its "
                        "answer", code=IN_PROGRESS, details={"command": self.name, "retry_after": 1})

    def run(self, session, work, subject=None, recheck=None):
        """The first result if this key already ran; else `work()`, recorded with its effect in `session`
        (`subject` as for record()). `recheck(first)`, if given, runs before a repeat is answered and raises to
        refuse it: for a first result that holds only while what it rested on holds (a consent)."""
        done, result = self.first_result(session)
        if done:
            if recheck is not None:
                recheck(result)
            return result
        return self.record(session, work(), subject)


def forget_results(session, subjects, association=None):
    """Blank the stored results about `subjects` (those of `association`'s staff only, if given), in the
    caller's unit of work; their keys stay, so a repeat is refused rather than carried out again."""
    subjects = [str(subject) for subject in subjects]
    if not subjects:
        return 0
    query = update(CommandKey).where(CommandKey.subject.in_(subjects), CommandKey.result != FORGOTTEN)
    if association is not None:
        query = query.where(CommandKey.scope.startswith(f"{association}/", autoescape=True))
    return session.execute(query.values(result=FORGOTTEN)).rowcount or 0


def forget_expired(session, now, ttl_hours=DEFAULT_TTL_H):
    """Delete keys older than `ttl_hours`; returns how many."""
    result = session.execute(delete(CommandKey).where(CommandKey.created_at < now - timedelta(hours=ttl_hours)))
    return result.rowcount or 0


class CommandKeyJanitor(SharedExtension):
    """Forgets expired idempotency keys, hourly, in the service's database (a sub-extension of Database)."""

    engine = None  # set by the Database provider that owns this janitor

    def setup(self):
        self.ttl_hours = float(self.container.config.get(TTL_KEY, DEFAULT_TTL_H))
        self._running = False

    def start(self):
        self._running = True
        self.container.spawn_managed_thread(self._run, identifier="command-key-janitor")

    def sweep(self):
        from tansiq.db import session_scope  # not at import time: tansiq.db brings this janitor along

        with session_scope(self.engine) as session:
            return forget_expired(session, utcnow(), self.ttl_hours)

    def _run(self):
        while self._running:
            try:
                count = self.sweep()
                if count:
                    log.info("forgot %d expired idempotency key(s)", count)
            except Exception as exc:  # noqa: BLE001 - database busy or down: try again next time
                log.warning("idempotency key sweep failed: %s", exc)
            eventlet.sleep(SWEEP_SECONDS)

    def stop(self):
        self._running = False

    def kill(self):
        self._running = False
