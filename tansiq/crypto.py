"""Field encryption at rest: envelope encryption with a per-record data key.

Each record (e.g. a beneficiary) gets its own random 256-bit data key. Fields are
encrypted one by one with AES-GCM under that key; the data key is stored only
wrapped (AES-GCM) by the master key. Destroying the wrapped key erases the record
cryptographically, including copies of the ciphertext in backups.

Associated data binds every ciphertext to its record and field, so a ciphertext
copied into another row or column fails to decrypt instead of leaking.

Blind indexes (HMAC-SHA256 under a key derived from the master key) let us look
for equal values (same phone, same name) without storing them in clear.
"""

import base64
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nameko.extensions import DependencyProvider

from tansiq.config import keys_dir, var_dir

KEY_BYTES = 32
NONCE_BYTES = 12
VERSION = b"\x01"  # ciphertext format version, so the scheme can change later


class KeyDestroyed(Exception):
    """The record's data key was erased: its fields can no longer be decrypted."""


class DecryptionFailed(Exception):
    """A ciphertext was tampered with, moved to another record/field, or the key is wrong."""


def load_master_key(path):
    """The master key from `path` (base64 of 32 bytes); created with 0600 permissions if absent."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = base64.b64encode(os.urandom(KEY_BYTES))
        try:
            # O_EXCL: two processes starting together must not each write their own key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(key + b"\n")
    key = base64.b64decode(path.read_bytes().strip(), validate=True)
    if len(key) != KEY_BYTES:
        raise ValueError(f"{path}: the master key must be {KEY_BYTES} bytes (base64)")
    return key


def adopt_key_from_data_folder(path):
    """Keys used to sit beside the databases in var/; move one there into its folder under var/keys/
    rather than create a new key (which would make every record unreadable)."""
    path = Path(path)
    old = var_dir() / path.name
    if not path.exists() and old.exists() and path.parent.resolve() == keys_dir().resolve():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.replace(old, path)


def _seal(key, plaintext, aad):
    nonce = os.urandom(NONCE_BYTES)
    return VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key, token, aad):
    if not token or token[:1] != VERSION:
        raise DecryptionFailed("unknown ciphertext format")
    nonce, body = token[1 : 1 + NONCE_BYTES], token[1 + NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, body, aad)
    except InvalidTag:
        raise DecryptionFailed("ciphertext does not verify") from None


class KeyRing:
    """The master key and what derives from it: data-key wrapping and blind-index keys."""

    def __init__(self, master_key):
        if len(master_key) != KEY_BYTES:
            raise ValueError(f"master key must be {KEY_BYTES} bytes")
        self._master = master_key

    @classmethod
    def from_file(cls, path):
        return cls(load_master_key(path))

    def new_data_key(self, record_id):
        """(data_key, wrapped_data_key) for a new record; store only the wrapped one."""
        data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        return data_key, self.wrap(data_key, record_id)

    def wrap(self, secret, record_id):
        """A secret (data key, an association's private key) as it may be stored: under the master key."""
        return _seal(self._master, secret, _aad("data-key", record_id))

    def rewrap(self, wrapped, record_id, new_keyring):
        """`wrapped` under `new_keyring`'s master key instead (key rotation); None stays None (erased)."""
        return None if wrapped is None else new_keyring.wrap(self.unwrap(wrapped, record_id), record_id)

    def unwrap(self, wrapped, record_id):
        if wrapped is None:
            raise KeyDestroyed(record_id)
        return _open(self._master, bytes(wrapped), _aad("data-key", record_id))

    def blind_index_key(self, purpose):
        """A key for HMAC blind indexes, separate from the encryption keys (HKDF, one per purpose)."""
        return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None,
                    info=b"tansiq blind index " + purpose.encode()).derive(self._master)

    def blind_index(self, purpose, value):
        return hmac.new(self.blind_index_key(purpose), value.encode("utf-8"), hashlib.sha256).hexdigest()


class FieldCipher:
    """Encrypts/decrypts the text fields of one record with its data key."""

    def __init__(self, data_key, record_id):
        self._key = data_key
        self._record_id = record_id

    def encrypt(self, field, value):
        if value is None:
            return None
        return _seal(self._key, str(value).encode("utf-8"), _aad(field, self._record_id))

    def decrypt(self, field, token):
        if token is None:
            return None
        return _open(self._key, bytes(token), _aad(field, self._record_id)).decode("utf-8")


def _aad(field, record_id):
    return f"tansiq:{record_id}:{field}".encode()


def new_master_key_file(path):
    """Write a fresh master key to `path` (0600, refusing to overwrite); rotation writes the next one here."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.b64encode(os.urandom(KEY_BYTES)) + b"\n")
    return load_master_key(path)


def master_key_path(service, config=None):
    """Where `service` keeps its master key: DATA_KEY_FILE in its config, else var/keys/<service>-master.key."""
    return Path((config or {}).get("DATA_KEY_FILE") or keys_dir() / f"{service}-master.key")


class MasterKey(DependencyProvider):
    """nameko dependency: the service's KeyRing, from the master key file in its config
    (DATA_KEY_FILE; created with 0600 permissions on first start when absent)."""

    def setup(self):
        path = master_key_path(self.container.service_name, self.container.config)
        adopt_key_from_data_folder(path)
        self.keyring = KeyRing.from_file(path)

    def get_dependency(self, worker_ctx):
        return self.keyring
