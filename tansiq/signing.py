"""Ed25519 signatures on envelopes: a partner proves at the application level who wrote a message.

The private key stays with the partner as a PKCS#8 PEM file; the directory keeps
the public key as base64 of its 32 raw bytes. The signature covers
`Envelope.signing_bytes()` and travels base64-encoded in the `signature` attribute.
"""

import base64
import binascii
from dataclasses import replace

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tansiq.errors import BadMessage


def generate_key():
    return Ed25519PrivateKey.generate()


def private_key_pem(private_key):
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(pem):
    """PEM bytes/str -> Ed25519PrivateKey (refuses any other key type)."""
    if isinstance(pem, str):
        pem = pem.encode("ascii")
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


def public_key_b64(private_key):
    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def load_public_key(public_b64):
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not a base64 Ed25519 public key: {exc}") from None


def generate_keypair():
    """-> (private key PEM bytes, public key base64 str)."""
    key = generate_key()
    return private_key_pem(key), public_key_b64(key)


def sign(envelope, private_key):
    """The same envelope with its `signature` set."""
    signature = private_key.sign(envelope.signing_bytes())
    return replace(envelope, signature=base64.b64encode(signature).decode("ascii"))


def verify(envelope, public_key):
    """Raise BadMessage("bad_signature") unless `envelope` carries a valid signature by `public_key`.

    `public_key` may be an Ed25519PublicKey or its base64 form.
    """
    if isinstance(public_key, str):
        try:
            public_key = load_public_key(public_key)
        except ValueError as exc:
            raise BadMessage("bad_signature", f"the registered public key is unusable: {exc}") from None
    if not envelope.signature:
        raise BadMessage("bad_signature", "the message is not signed")
    try:
        signature = base64.b64decode(envelope.signature, validate=True)
        public_key.verify(signature, envelope.signing_bytes())
    except (binascii.Error, ValueError, InvalidSignature):
        raise BadMessage("bad_signature", "the signature does not verify") from None
    return envelope
