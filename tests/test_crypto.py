"""Stored secrets: AES-GCM round trip, bound to their purpose, refused when tampered."""

from __future__ import annotations

import base64
import os

import pytest

from app.security.crypto import SecretDecryptError, decrypt_secret, encrypt_secret
from app.settings_checks import validate
from config import Config


def generate_key() -> str:
    """A fresh key in the form SLIPWAY_SECRETS_KEY expects (as scripts/run.sh makes one)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def test_round_trip_and_fresh_nonce(app):
    with app.app_context():
        first = encrypt_secret("agent-token-value", "server.token")
        second = encrypt_secret("agent-token-value", "server.token")
        assert first != second
        assert "agent-token-value" not in first
        assert decrypt_secret(first, "server.token") == "agent-token-value"


def test_wrong_purpose_tamper_and_wrong_key_are_refused(app):
    with app.app_context():
        stored = encrypt_secret("s3cret", "registry.password")
        with pytest.raises(SecretDecryptError):
            decrypt_secret(stored, "server.token")
        tampered = stored[:-4] + ("AAAA" if not stored.endswith("AAAA") else "BBBB")
        with pytest.raises(SecretDecryptError):
            decrypt_secret(tampered, "registry.password")
        app.config["SECRETS_KEY"] = generate_key()
        with pytest.raises(SecretDecryptError):
            decrypt_secret(stored, "registry.password")


def test_production_refuses_missing_bad_or_development_key(tmp_path):
    base = {"DATABASE_URL": "sqlite:///x.db", "SECRET_KEY": "k" * 40, "SLIPWAY_DATA_DIR": str(tmp_path)}
    for value, expected in (("", "is not set"), ("short", "32 bytes"),
                            ("ZGV2LW9ubHktc2VjcmV0cy1rZXktY2hhbmdlLW1lISE=", "development key")):
        settings, _ = Config.load({**base, "SLIPWAY_SECRETS_KEY": value})
        assert any("SLIPWAY_SECRETS_KEY" in p and expected in p for p in validate(settings)), value
    settings, _ = Config.load({**base, "SLIPWAY_SECRETS_KEY": generate_key()})
    assert not any("SECRETS_KEY" in p for p in validate(settings))
