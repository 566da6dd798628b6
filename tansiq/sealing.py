"""Sealed payloads: a value only its named readers can open, wherever it travels or rests.

A referral's shared fields and free text are sealed by the sender to the public encryption
key (X25519) of each reader. The broker, dead letters, logs and databases in between hold
ciphertext only; a reader's copy ends when its slot is dropped.

Format (a JSON-able dict, so it fits in a message and in a JSON column):

    {"v": 1, "ct": b64(nonce | AES-GCM(cek, json(value), aad)),
     "to": {reader: b64(ephemeral public key | nonce | AES-GCM(kek, cek, aad))}}

One random content key (cek) per value; for each reader a fresh ephemeral X25519 key agrees a
key-encryption key with the reader's public key (HKDF-SHA256 over the shared secret and both
public keys). `context` (e.g. "referral:<id>:reason") is the associated data of both layers, so a
sealed value copied to another referral or field does not open.
"""

import base64
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
_RAW = {"encoding": serialization.Encoding.Raw, "format": serialization.PublicFormat.Raw}


class NotSealedFor(Exception):
    """The value has no slot for this reader (never had one, or her copy was destroyed)."""


class SealBroken(Exception):
    """The sealed value was tampered with, moved to another context, or the key is wrong."""


# --- keys --------------------------------------------------------------------------------------

def generate_private_key():
    return X25519PrivateKey.generate()


def private_key_bytes(private_key):
    return private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())


def load_private_key(data):
    """A private key from its 32 raw bytes or their base64 (how it is kept in a file)."""
    if isinstance(data, str) or len(data) != KEY_BYTES:
        data = base64.b64decode(data.strip() if isinstance(data, (str, bytes)) else data, validate=True)
    return X25519PrivateKey.from_private_bytes(bytes(data))


def public_key_b64(private_key):
    return base64.b64encode(private_key.public_key().public_bytes(**_RAW)).decode("ascii")


def load_public_key(b64):
    """The reader's public key from its base64 (as published in the directory); ValueError if it is not one."""
    try:
        raw = base64.b64decode(b64, validate=True)
    except (ValueError, TypeError) as exc:
        raise ValueError("an encryption key is the base64 of 32 bytes (X25519)") from exc
    if len(raw) != KEY_BYTES:
        raise ValueError("an encryption key is the base64 of 32 bytes (X25519)")
    return X25519PublicKey.from_public_bytes(raw)


# --- sealing -----------------------------------------------------------------------------------

def seal(value, readers, context):
    """Seal a JSON-able `value` for `readers` ({name: public key base64}); the dict described above."""
    if not readers:
        raise ValueError("a sealed value needs at least one reader")
    aad = _aad(context)
    cek, nonce = AESGCM.generate_key(bit_length=KEY_BYTES * 8), os.urandom(NONCE_BYTES)
    body = AESGCM(cek).encrypt(nonce, json.dumps(value, ensure_ascii=False).encode("utf-8"), aad)
    return {"v": VERSION, "ct": _b64(nonce + body),
            "to": {name: _b64(_wrap_for(load_public_key(key), cek, aad)) for name, key in sorted(readers.items())}}


def open_sealed(sealed, reader, private_key, context):
    """The value, for `reader` holding `private_key`. NotSealedFor / SealBroken when it cannot."""
    if not isinstance(sealed, dict) or sealed.get("v") != VERSION:
        raise SealBroken("unknown sealed format")
    slot = (sealed.get("to") or {}).get(reader)
    if slot is None:
        raise NotSealedFor(reader)
    aad = _aad(context)
    try:
        cek = _unwrap_with(private_key, base64.b64decode(slot), aad)
        raw = base64.b64decode(sealed["ct"])
        return json.loads(AESGCM(cek).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad))
    except (InvalidTag, ValueError, KeyError, TypeError):
        raise SealBroken("sealed value does not verify") from None


def without(sealed, reader):
    """`sealed` with `reader`'s copy destroyed; None when nobody can read it any more."""
    if not sealed:
        return None
    readers = {name: slot for name, slot in (sealed.get("to") or {}).items() if name != reader}
    return {**sealed, "to": readers} if readers else None


def readers_of(sealed):
    return set((sealed or {}).get("to") or ())


# --- internals ---------------------------------------------------------------------------------

def _aad(context):
    return f"tansiq-sealed:v{VERSION}:{context}".encode()


def _b64(raw):
    return base64.b64encode(raw).decode("ascii")


def _kek(shared_secret, ephemeral_public, reader_public):
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=ephemeral_public + reader_public,
                info=b"tansiq sealed payload v1").derive(shared_secret)


def _wrap_for(public_key, cek, aad):
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes(**_RAW)
    kek = _kek(ephemeral.exchange(public_key), ephemeral_public, public_key.public_bytes(**_RAW))
    nonce = os.urandom(NONCE_BYTES)
    return ephemeral_public + nonce + AESGCM(kek).encrypt(nonce, cek, aad)


def _unwrap_with(private_key, slot, aad):
    ephemeral_public, nonce = slot[:KEY_BYTES], slot[KEY_BYTES:KEY_BYTES + NONCE_BYTES]
    wrapped = slot[KEY_BYTES + NONCE_BYTES:]
    reader_public = private_key.public_key().public_bytes(**_RAW)
    kek = _kek(private_key.exchange(X25519PublicKey.from_public_bytes(ephemeral_public)), ephemeral_public,
               reader_public)
    return AESGCM(kek).decrypt(nonce, wrapped, aad)
