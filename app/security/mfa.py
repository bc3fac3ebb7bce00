"""TOTP (RFC 6238) with replay refusal, hashed single-use backup codes, QR codes as inline SVG."""

from __future__ import annotations

import io
import secrets

import pyotp
from flask import current_app
from sqlalchemy import delete, select

from app.extensions import db
from app.models import MfaBackupCode, RolePolicy, User
from app.models.security import sha256_hex
from app.security import clock
from app.security.crypto import decrypt_secret, encrypt_secret

SECRET_PURPOSE = "users.mfa_secret"  # noqa: S105 - an AES-GCM purpose label, not a secret
BACKUP_CODE_COUNT = 10
STEP_SECONDS = 30
# Accept the previous and next step as well, for clocks that drift a little.
VALID_WINDOW = 1
_BACKUP_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def new_secret() -> str:
    """A fresh base32 TOTP secret."""
    return pyotp.random_base32()


def seal(secret: str) -> str:
    """Encrypt a TOTP secret for the users.mfa_secret column."""
    return encrypt_secret(secret, SECRET_PURPOSE)


def unseal(stored: str) -> str:
    """Decrypt a stored TOTP secret."""
    return decrypt_secret(stored, SECRET_PURPOSE)


def provisioning_uri(secret: str, username: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=current_app.config["MFA_ISSUER"])


def qr_svg(data: str) -> str:
    """Render `data` as an inline SVG QR code (no XML declaration, no external service)."""
    out = io.BytesIO()
    title = "QR code for your authenticator app"
    import segno  # only the set-up page draws one: not loaded in every web process

    code = segno.make(data, error="m")
    code.save(out, kind="svg", xmldecl=False, scale=5, border=2, svgns=True, title=title)
    return out.getvalue().decode()


def current_timestep() -> int:
    """The TOTP time step at the security clock's now (naive UTC)."""
    return clock.timestamp() // STEP_SECONDS


def matching_timestep(secret: str, code: str) -> int | None:
    """The time step whose code equals `code` within the window, or None."""
    code = "".join(code.split())
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now_step = current_timestep()
    for step in range(now_step - VALID_WINDOW, now_step + VALID_WINDOW + 1):
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def verify_totp(user: User, code: str, secret: str | None = None) -> bool:
    """Check a code for `user` and consume its time step; a step already used is refused (replay).

    `secret` is given during setup, before it is stored on the user. The caller commits.
    """
    if secret is None:
        if not user.mfa_secret:
            return False
        secret = unseal(user.mfa_secret)
    step = matching_timestep(secret, code)
    if step is None:
        return False
    if user.mfa_last_timestep is not None and step <= user.mfa_last_timestep:
        return False
    user.mfa_last_timestep = step
    return True


def _normalise_backup(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def new_backup_codes(user: User) -> list[str]:
    """Replace `user`'s backup codes with ten fresh ones; returns them (shown once). Caller commits."""
    db.session.execute(delete(MfaBackupCode).where(MfaBackupCode.user_id == user.id))
    codes = []
    for _ in range(BACKUP_CODE_COUNT):
        raw = "".join(secrets.choice(_BACKUP_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        db.session.add(MfaBackupCode(user_id=user.id, code_hash=sha256_hex(raw), created_at=clock.now()))
    return codes


def use_backup_code(user: User, code: str) -> bool:
    """Spend one unused backup code of `user`; False when none matches. Caller commits."""
    normal = _normalise_backup(code)
    if len(normal) != 10:
        return False
    row = db.session.scalar(
        select(MfaBackupCode).where(
            MfaBackupCode.user_id == user.id,
            MfaBackupCode.code_hash == sha256_hex(normal),
            MfaBackupCode.used_at.is_(None),
        )
    )
    if row is None:
        return False
    row.used_at = clock.now()
    return True


def remaining_backup_codes(user: User) -> int:
    """How many unused backup codes `user` has."""
    rows = db.session.scalars(
        select(MfaBackupCode.id).where(MfaBackupCode.user_id == user.id, MfaBackupCode.used_at.is_(None))
    ).all()
    return len(rows)


def verify_second_factor(user: User, code: str) -> str | None:
    """Check a TOTP or backup code; returns "totp", "backup_code" or None. Caller commits."""
    if verify_totp(user, code):
        return "totp"
    if use_backup_code(user, code):
        return "backup_code"
    return None


def default_required_roles() -> frozenset[str]:
    """Roles that need MFA when no admin has set a policy for them (config MFA_REQUIRED_ROLES)."""
    raw = current_app.config.get("MFA_REQUIRED_ROLES") or ""
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def role_policies() -> dict[str, bool]:
    """Whether each role requires MFA: stored policy first, configured default otherwise."""
    from app.models import ROLES

    stored = {row.role: row.mfa_required for row in db.session.scalars(select(RolePolicy))}
    defaults = default_required_roles()
    return {role: stored.get(role, role in defaults) for role in ROLES}


def mfa_required_for(user: User) -> bool:
    """True when `user`'s role requires MFA."""
    row = db.session.get(RolePolicy, user.role)
    if row is not None:
        return row.mfa_required
    return user.role in default_required_roles()


def enable(user: User, secret: str) -> list[str]:
    """Turn MFA on with `secret` (already verified), issue backup codes, audit. The caller commits."""
    from app.services import audit

    user.mfa_secret = seal(secret)
    user.mfa_enabled = True
    codes = new_backup_codes(user)
    audit.record("mfa_enabled", user.username)
    return codes


def disable(user: User, actor: str) -> None:
    """Turn MFA off and drop the secret and backup codes; audit. The caller commits."""
    from app.services import audit

    user.mfa_secret = None
    user.mfa_enabled = False
    user.mfa_last_timestep = None
    db.session.execute(delete(MfaBackupCode).where(MfaBackupCode.user_id == user.id))
    audit.record("mfa_disabled", actor, {"user": user.username}, level="warning")
    from app.mail import notify

    notify.mfa_disabled(user, actor)
