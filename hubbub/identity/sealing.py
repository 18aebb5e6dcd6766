"""Secrets at rest, sealed under the deployment's key (``HUBBUB_TWO_FACTOR_KEY``).

With a key, a secret is sealed with AES-256-GCM under a key derived from it
by HKDF-SHA256 for one purpose (TOTP secrets and token signing keys never
share a derived key), with what the secret belongs to (a user id, a key id)
as associated data, so a sealed secret copied to another row does not open.
Without a key it is stored plainly. The first byte of a stored secret says
which, so setting a key later keeps older plain secrets readable (and they
can be sealed in place).
"""

from __future__ import annotations

import os
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["SecretBox", "SecretUnreadable", "is_sealed"]

_PLAIN, _SEALED = b"\x00", b"\x01"
_NONCE_BYTES = 12


class SecretUnreadable(Exception):
    """A sealed secret does not open with the configured key (or there is none)."""


def is_sealed(stored: bytes) -> bool:
    return stored[:1] == _SEALED


class SecretBox:
    """Seals and opens the secrets of one ``purpose``; ``key`` None stores them plainly."""

    def __init__(self, key: str | None, purpose: str = "totp secret") -> None:
        self._aead = None if key is None else AESGCM(_derive(key, purpose))

    @property
    def seals(self) -> bool:
        return self._aead is not None

    def seal(self, secret: str, owner: UUID | str) -> bytes:
        if self._aead is None:
            return _PLAIN + secret.encode()
        nonce = os.urandom(_NONCE_BYTES)
        return _SEALED + nonce + self._aead.encrypt(nonce, secret.encode(), _bytes(owner))

    def open(self, stored: bytes, owner: UUID | str) -> str:
        """The secret; SecretUnreadable if it was sealed under another key or none."""
        kind, body = stored[:1], stored[1:]
        if kind == _PLAIN:
            return body.decode()
        if self._aead is None:
            raise SecretUnreadable("the secret is sealed but no key is configured")
        try:
            nonce, sealed = body[:_NONCE_BYTES], body[_NONCE_BYTES:]
            return self._aead.decrypt(nonce, sealed, _bytes(owner)).decode()
        except InvalidTag:
            raise SecretUnreadable("the secret was sealed under another key") from None


def _bytes(owner: UUID | str) -> bytes:
    return owner.bytes if isinstance(owner, UUID) else owner.encode()


def _derive(key: str, purpose: str) -> bytes:
    info = f"hubbub {purpose} v1".encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key.encode())
