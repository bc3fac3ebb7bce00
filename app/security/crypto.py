"""AES-GCM for secrets stored in the database (agent tokens, registry passwords).

The key comes from `SLIPWAY_SECRETS_KEY` (config `SECRETS_KEY`): 32 bytes, urlsafe-base64.
A stored value reads `v1:<base64(nonce || ciphertext+tag)>`; the column name is bound in as
associated data, so a ciphertext copied into another column does not decrypt.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app

PREFIX = "v1:"
NONCE_BYTES = 12


class SecretDecryptError(ValueError):
    """A stored secret could not be decrypted (wrong key, tampered value or wrong purpose)."""


def parse_key(raw: str) -> bytes:
    """Decode a urlsafe-base64 key of 32 bytes; raises ValueError otherwise."""
    key = base64.urlsafe_b64decode(raw.encode() + b"=" * (-len(raw) % 4))
    if len(key) != 32:
        raise ValueError("the secrets key must decode to 32 bytes")
    return key


def _aead() -> AESGCM:
    return AESGCM(parse_key(current_app.config["SECRETS_KEY"]))


def encrypt_secret(plaintext: str, purpose: str) -> str:
    """Encrypt `plaintext` for storage; `purpose` (e.g. "server.token") must match on decrypt."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = _aead().encrypt(nonce, plaintext.encode(), purpose.encode())
    return PREFIX + base64.b64encode(nonce + sealed).decode()


def decrypt_secret(stored: str, purpose: str) -> str:
    """Decrypt a value made by `encrypt_secret`; raises `SecretDecryptError` when it cannot."""
    if not stored.startswith(PREFIX):
        raise SecretDecryptError("not an encrypted value")
    try:
        blob = base64.b64decode(stored[len(PREFIX):], validate=True)
        plain = _aead().decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], purpose.encode())
    except (InvalidTag, ValueError) as exc:
        raise SecretDecryptError("stored secret cannot be decrypted with the configured key") from exc
    return plain.decode()
