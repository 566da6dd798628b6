"""Unforgeable identity between services: short-lived actor assertions signed with Ed25519.

The gateway alone holds the private key. For each RPC that acts for a staff member it signs
`v1.<claims>.<signature>` (base64url), whose claims are the actor (tansiq.contracts.actor),
the services it is meant for (`aud`) and a validity of a minute. Every service verifies it
with the public key on every RPC that takes an actor; a service calling another one on the
same request forwards the assertion it received, so nothing any broker client makes up is
believed. Expired, tampered, foreign-audience or missing assertions are refused
(`InvalidActor`, code "unauthorized").
"""

import base64
import json
import os
import time
import uuid
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from marshmallow import ValidationError
from nameko.extensions import DependencyProvider

from tansiq.contracts.actor import ActorSchema
from tansiq.errors import InvalidActor

VERSION = "v1"
TTL_SECONDS = 60  # one request, including a service forwarding it to another
CLOCK_SKEW_SECONDS = 5
MAX_ASSERTION_CHARS = 4096
_actor_schema = ActorSchema()


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ActorSigner:
    """Signs actor assertions (the gateway)."""

    def __init__(self, private_key, ttl=TTL_SECONDS, clock=time.time):
        self.private_key, self.ttl, self.clock = private_key, ttl, clock

    @classmethod
    def generate(cls, **kwargs):
        """A fresh key pair (tests, local runs)."""
        return cls(Ed25519PrivateKey.generate(), **kwargs)

    def public_key(self):
        return self.private_key.public_key()

    def verifier(self, audience, **kwargs):
        return ActorVerifier(self.public_key(), audience, **kwargs)

    def sign(self, staff, *audience):
        """An assertion that `staff` ({id, association, roles, ...} or an Actor) acts, for the named services."""
        if not audience:
            raise ValueError("an assertion names the services it is for")
        staff = staff.to_dict() if hasattr(staff, "to_dict") else staff
        now = int(self.clock())
        claims = {key: staff[key] for key in ("id", "association", "roles", "name", "language")
                  if staff.get(key) is not None}
        _actor_schema.load(claims)  # refuse to sign what no service would accept
        claims["roles"] = sorted(claims["roles"])
        claims.update(aud=sorted(set(audience)), iat=now, exp=now + self.ttl, jti=uuid.uuid4().hex)
        body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        signature = _b64(self.private_key.sign(f"{VERSION}.{body}".encode()))
        return f"{VERSION}.{body}.{signature}"


class ActorVerifier:
    """Verifies actor assertions meant for one service; `actor(assertion)` returns the Actor or refuses."""

    def __init__(self, public_key, audience, clock=time.time):
        self._public_key, self.audience, self.clock = public_key, audience, clock

    @property
    def public_key(self):
        return self._public_key() if callable(self._public_key) else self._public_key

    def actor(self, assertion):
        claims = self.claims(assertion)
        try:
            return _actor_schema.load(claims)
        except ValidationError:
            raise InvalidActor("the actor assertion does not name a staff member") from None

    def optional_actor(self, assertion):
        """None for an anonymous caller (public reading); a given assertion must still verify."""
        return None if assertion is None else self.actor(assertion)

    def claims(self, assertion):
        # Anything can arrive over the broker: refuse every malformed shape the same way.
        if not isinstance(assertion, str) or len(assertion) > MAX_ASSERTION_CHARS:
            raise InvalidActor("a signed actor assertion is required")
        parts = assertion.split(".")
        if len(parts) != 3 or parts[0] != VERSION:
            raise InvalidActor("a signed actor assertion is required")
        try:
            self.public_key.verify(_unb64(parts[2]), f"{parts[0]}.{parts[1]}".encode())
            claims = json.loads(_unb64(parts[1]))
        except (InvalidSignature, ValueError, TypeError):
            raise InvalidActor("the actor assertion does not verify") from None
        if not isinstance(claims, dict):
            raise InvalidActor("the actor assertion does not verify")
        now = self.clock()
        expires, issued = claims.get("exp"), claims.get("iat")
        if not isinstance(expires, int) or not isinstance(issued, int) or expires <= now \
                or issued > now + CLOCK_SKEW_SECONDS:
            raise InvalidActor("the actor assertion has expired")
        if self.audience not in (claims.get("aud") or ()):
            raise InvalidActor(f"the actor assertion is not meant for {self.audience}")
        return claims


# --- key files ------------------------------------------------------------------------------------


def load_or_create_signing_key(private_path, public_path):
    """The gateway's private key (PEM); on first use for local runs, a new pair (0600 private, 0644 public)."""
    private_path, public_path = Path(private_path), Path(public_path)
    if not private_path.exists():
        private_path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        try:  # O_EXCL: two processes starting together must not each write their own key
            fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{private_path}: the actor signing key must be an Ed25519 private key")
    if not public_path.exists() or _raw(load_public_key(public_path)) != _raw(key.public_key()):
        # Local runs: the services read it from here. Deployed, it is a read-only secret that must match.
        public_path.parent.mkdir(parents=True, exist_ok=True)
        public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    return key


def _raw(public_key):
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_public_key(public_path):
    path = Path(public_path)
    if not path.exists():
        # Fail closed: a service without the public key believes no one.
        raise InvalidActor("this service has no actor public key yet (start the gateway first)")
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path}: the actor public key must be an Ed25519 public key")
    return key


class ActorSigning(DependencyProvider):
    """The gateway's signer (config ACTOR_SIGNING_KEY_FILE, ACTOR_PUBLIC_KEY_FILE)."""

    def setup(self):
        config = self.container.config
        key = load_or_create_signing_key(config["ACTOR_SIGNING_KEY_FILE"], config["ACTOR_PUBLIC_KEY_FILE"])
        self.signer = ActorSigner(key, ttl=int(config.get("ACTOR_TTL_SECONDS", TTL_SECONDS)))

    def get_dependency(self, worker_ctx):
        return self.signer


class ActorIdentity(DependencyProvider):
    """A service's verifier (config ACTOR_PUBLIC_KEY_FILE), for assertions naming this service."""

    def setup(self):
        path = self.container.config["ACTOR_PUBLIC_KEY_FILE"]
        cache = []

        def public_key():  # read on first use: the gateway may write it after this service started
            if not cache:
                cache.append(load_public_key(path))
            return cache[0]

        self.verifier = ActorVerifier(public_key, self.container.service_name)

    def get_dependency(self, worker_ctx):
        return self.verifier
