"""The pure parts of two-factor authentication: TOTP codes, the sealing of
TOTP secrets at rest, recovery codes and challenge tokens. No I/O, no clock:
time is passed in.

TOTP is RFC 6238 as authenticator apps speak it (SHA-1, 6 digits, 30 s
steps, via pyotp). A code is accepted for its own step and one step either
side (clock drift); :func:`match_step` says which step it matched, so the
caller can refuse a step at or before the last one accepted (no replay).

TOTP secrets are sealed at rest by :mod:`hubbub.identity.sealing`, with the
user id as associated data.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import pyotp

__all__ = [
    "ISSUER",
    "RECOVERY_CODE_COUNT",
    "STEP_SECONDS",
    "match_step",
    "new_recovery_codes",
    "new_secret",
    "otpauth_url",
    "recovery_code_hash",
    "token_hash",
]

ISSUER = "hubbub"
STEP_SECONDS = 30
DRIFT_STEPS = 1
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i look-alikes
_RECOVERY_GROUPS, _RECOVERY_GROUP_LEN = 4, 4  # 16 characters, about 79 bits


def new_secret() -> str:
    """A fresh base32 TOTP secret (160 bits)."""
    return pyotp.random_base32(32)


def otpauth_url(secret: str, account: str) -> str:
    """The ``otpauth://totp/...`` URL an authenticator app scans as a QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def match_step(secret: str, code: str, now: float) -> int | None:
    """The time step (``unix time // 30``) whose code is ``code``, within one
    step of ``now``; None if it matches none."""
    totp = pyotp.TOTP(secret)
    current = int(now) // STEP_SECONDS
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            return step
    return None


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """``count`` random codes like ``k7pq-xw3m-a9tz-hc4e``."""
    return ["-".join(_group() for _ in range(_RECOVERY_GROUPS)) for _ in range(count)]


def _group() -> str:
    return "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_GROUP_LEN))


def recovery_code_hash(code: str) -> bytes:
    """SHA-256 of the code as typed, ignoring case, spaces and dashes."""
    normalised = "".join(code.lower().split()).replace("-", "")
    return hashlib.sha256(normalised.encode()).digest()


def token_hash(token: str) -> bytes:
    """SHA-256 of an opaque token (challenge tokens are stored only so)."""
    return hashlib.sha256(token.encode()).digest()
