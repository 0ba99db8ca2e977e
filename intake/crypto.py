"""Field-level encryption at rest and keyed identity hashes.

One secret (config `security.secret_key` / HOTLINE_SECRET_KEY) is stretched with HKDF into
an encryption key (Fernet: AES-128-CBC + HMAC-SHA256) and a separate HMAC key for identity
hashes, so the hash that links a texter's messages cannot be reversed without the secret.

Key rotation: `security.previous_secret_keys` lists the keys used before. Decryption tries the
current key, then each previous one (MultiFernet); `identity_hashes` gives an identity's hash
under every key, so a lookup finds rows hashed before the switch until `hotline keys rotate`
has re-encrypted and re-hashed them (workers/rotation.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SecretKeyError(ValueError):
    """The configured secret key is unusable."""


def generate_secret_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def _derive(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


KEY_SETTINGS = "security.secret_key or security.previous_secret_keys (HOTLINE_PREVIOUS_SECRET_KEYS)"


class FieldCipher:
    """Encrypts strings/JSON for storage; hashes identities for linking."""

    def __init__(self, secret_key: str, previous_keys: Sequence[str] = ()) -> None:
        if not secret_key or len(secret_key) < 32:
            raise SecretKeyError("security.secret_key must be at least 32 characters "
                            "(generate one with `hotline keygen`)")
        keys = [secret_key]
        for i, old in enumerate(previous_keys):
            if not old or len(old) < 32:
                raise SecretKeyError(f"security.previous_secret_keys entry {i + 1} must be at least 32 characters")
            if old not in keys:
                keys.append(old)
        fernets = [Fernet(base64.urlsafe_b64encode(_derive(k.encode("utf-8"), b"hotline field encryption v1")))
                   for k in keys]
        self._current = fernets[0]
        self._fernet = MultiFernet(fernets)
        self._hash_keys = [_derive(k.encode("utf-8"), b"hotline identity hash v1") for k in keys]
        self._hash_key = self._hash_keys[0]

    @property
    def key_count(self) -> int:
        """The current key plus the previous ones (duplicates dropped)."""
        return len(self._hash_keys)

    def encrypt(self, value: str | None) -> str | None:
        if value is None:
            return None
        return self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str | None) -> str | None:
        """The stored value; '' for a blanked (purged) field, None for an empty one."""
        if token is None:
            return None
        if token == "":
            return ""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeEncodeError) as exc:
            raise SecretKeyError(f"stored field cannot be decrypted with {KEY_SETTINGS}") from exc

    def is_current(self, token: str | None) -> bool:
        """True when `token` is empty or encrypted with the current key (nothing to rotate)."""
        if not token:
            return True
        try:
            self._current.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            return False
        return True

    def reencrypt(self, token: str | None) -> str | None:
        """`token` encrypted with the current key (read with any configured key); raises
        SecretKeyError when no configured key can read it."""
        if not token:
            return token
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeEncodeError) as exc:
            raise SecretKeyError(f"stored field cannot be decrypted with {KEY_SETTINGS}") from exc

    def encrypt_json(self, value: Any) -> str:
        return self.encrypt(json.dumps(value, ensure_ascii=False, sort_keys=True)) or ""

    def decrypt_json(self, token: str | None) -> Any:
        text = self.decrypt(token)
        return None if not text else json.loads(text)

    @staticmethod
    def _identity_message(channel_kind: str, identity: str) -> bytes:
        return f"{channel_kind}:{identity.strip().lower()}".encode()

    def identity_hash(self, channel_kind: str, identity: str | None) -> str | None:
        """Same contact on the same kind of address -> same hash; not reversible."""
        if not identity:
            return None
        return hmac.new(self._hash_key, self._identity_message(channel_kind, identity), hashlib.sha256).hexdigest()

    def identity_hashes(self, channel_kind: str, identity: str | None) -> tuple[str, ...]:
        """The identity's hash under the current key, then under each previous key: what a
        lookup matches while rows hashed before a key change are not yet re-hashed."""
        if not identity:
            return ()
        msg = self._identity_message(channel_kind, identity)
        return tuple(hmac.new(k, msg, hashlib.sha256).hexdigest() for k in self._hash_keys)
