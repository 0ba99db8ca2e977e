"""Field-level encryption at rest and keyed identity hashes.

One secret (config `security.secret_key` / HOTLINE_SECRET_KEY) is stretched with HKDF into
an encryption key (Fernet: AES-128-CBC + HMAC-SHA256) and a separate HMAC key for identity
hashes, so the hash that links a texter's messages cannot be reversed without the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SecretKeyError(ValueError):
    """The configured secret key is unusable."""


def generate_secret_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def _derive(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


class FieldCipher:
    """Encrypts strings/JSON for storage; hashes identities for linking."""

    def __init__(self, secret_key: str) -> None:
        if not secret_key or len(secret_key) < 32:
            raise SecretKeyError("security.secret_key must be at least 32 characters "
                            "(generate one with `hotline keygen`)")
        raw = secret_key.encode("utf-8")
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(raw, b"hotline field encryption v1")))
        self._hash_key = _derive(raw, b"hotline identity hash v1")

    def encrypt(self, value: str | None) -> str | None:
        if value is None:
            return None
        return self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str | None) -> str | None:
        if token is None:
            return None
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise SecretKeyError("stored field cannot be decrypted with the configured secret key") from exc

    def encrypt_json(self, value: Any) -> str:
        return self.encrypt(json.dumps(value, ensure_ascii=False, sort_keys=True)) or ""

    def decrypt_json(self, token: str | None) -> Any:
        text = self.decrypt(token)
        return None if text is None else json.loads(text)

    def identity_hash(self, channel_kind: str, identity: str | None) -> str | None:
        """Same contact on the same kind of address -> same hash; not reversible."""
        if not identity:
            return None
        msg = f"{channel_kind}:{identity.strip().lower()}".encode()
        return hmac.new(self._hash_key, msg, hashlib.sha256).hexdigest()
