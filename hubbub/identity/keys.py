"""Signing keys of access tokens: Ed25519, shared by every gateway through Postgres.

The newest unretired key signs (a unique index allows one); a retired key
keeps verifying for one access-token lifetime, so rotating never cuts off a
token already issued. The first gateway to start creates a key when there
is none (``INSERT ... ON CONFLICT DO NOTHING`` on that index, so gateways
starting together agree on one). :class:`KeyRing` is a gateway's cache of
the keys, reloaded when a token names a ``kid`` it does not know and at
least every :data:`RELOAD_SECONDS`, so a rotation made anywhere is seen.

Private keys are sealed at rest under ``HUBBUB_TWO_FACTOR_KEY``
(:mod:`hubbub.identity.sealing`, the key id as associated data); a gateway
with that key seals, at start-up, any key stored before it was set. Without
it keys are stored plainly, and a gateway without the key cannot read keys
sealed by one that had it (it refuses to start, naming the setting).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from hubbub.config import ConfigError
from hubbub.identity.sealing import SecretBox, SecretUnreadable, is_sealed
from hubbub.storage.database import Database

__all__ = [
    "KEYRING",
    "RELOAD_SECONDS",
    "KeyRing",
    "SigningKey",
    "ensure_signing_key",
    "load_signing_keys",
    "rotate_signing_key",
    "signing_key_box",
]

RELOAD_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey
    created_at: datetime
    retired_at: datetime | None

    @property
    def public_jwk(self) -> dict[str, str]:
        """The public half as an OKP JWK (RFC 8037) with its ``kid``."""
        jwk = OKPAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return jwk | {"kid": self.kid, "alg": "EdDSA", "use": "sig"}


def signing_key_box(two_factor_key: str | None) -> SecretBox:
    """The box signing keys are sealed in, under the deployment's key (or none)."""
    return SecretBox(two_factor_key, purpose="token signing key")


def _new_key(box: SecretBox) -> tuple[str, bytes]:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    kid = secrets.token_urlsafe(12)
    return kid, box.seal(pem.decode(), kid)


async def ensure_signing_key(db: Database, box: SecretBox) -> None:
    """Create a signing key unless one is active, and seal keys stored plainly
    when ``box`` seals; safe when gateways race."""
    kid, stored = _new_key(box)
    await db.pool.execute(
        "INSERT INTO signing_keys (kid, private_key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        kid,
        stored,
    )
    if box.seals:
        await _seal_plain_keys(db, box)


async def _seal_plain_keys(db: Database, box: SecretBox) -> None:
    rows = await db.pool.fetch("SELECT kid, private_key FROM signing_keys")
    for row in rows:
        if is_sealed(row["private_key"]):
            continue
        sealed = box.seal(box.open(row["private_key"], row["kid"]), row["kid"])
        await db.pool.execute(  # unless another gateway sealed it meanwhile
            "UPDATE signing_keys SET private_key = $3 WHERE kid = $1 AND private_key = $2",
            row["kid"],
            row["private_key"],
            sealed,
        )


async def rotate_signing_key(conn: asyncpg.Connection, box: SecretBox) -> str:
    """Retire the active key and start signing with a new one; its ``kid``.

    Every gateway picks the new key up within :data:`RELOAD_SECONDS`; until
    then some still sign with the old one, which verifies anyway.
    """
    kid, stored = _new_key(box)
    async with conn.transaction():
        await conn.execute("UPDATE signing_keys SET retired_at = now() WHERE retired_at IS NULL")
        await conn.execute(
            "INSERT INTO signing_keys (kid, private_key) VALUES ($1, $2)", kid, stored
        )
    return kid


async def load_signing_keys(
    db: Database, verify_for: timedelta, box: SecretBox
) -> list[SigningKey]:
    """Keys that still verify (unretired, or retired less than ``verify_for`` ago),
    newest first. ConfigError if a key is sealed under another key than ``box``'s."""
    rows = await db.pool.fetch(
        """SELECT kid, private_key, created_at, retired_at FROM signing_keys
           WHERE retired_at IS NULL OR retired_at > now() - $1::interval
           ORDER BY created_at DESC""",
        verify_for,
    )
    return [
        SigningKey(row["kid"], _private_key(box, row), row["created_at"], row["retired_at"])
        for row in rows
    ]


def _private_key(box: SecretBox, row: asyncpg.Record) -> Ed25519PrivateKey:
    try:
        pem = box.open(row["private_key"], row["kid"])
    except SecretUnreadable as exc:
        raise ConfigError(
            f"HUBBUB_TWO_FACTOR_KEY: token signing key {row['kid']!r} cannot be read ({exc}); "
            "expected the key every other gateway of this deployment has"
        ) from None
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


class KeyRing:
    """Owns: this gateway's cache of the signing keys.

    Concurrency: one event loop; concurrent reloads are harmless (each
    replaces the cache with what Postgres holds). Durability: none, the keys
    live in Postgres. Failure: a reload that fails raises to the caller.
    """

    def __init__(self, db: Database, verify_for: timedelta, box: SecretBox) -> None:
        self._db = db
        self._verify_for = verify_for
        self._box = box
        self._keys: list[SigningKey] = []
        self._loaded_at = float("-inf")

    async def reload(self) -> None:
        self._keys = await load_signing_keys(self._db, self._verify_for, self._box)
        self._loaded_at = time.monotonic()

    async def signing_key(self) -> SigningKey:
        """The key new tokens are signed with."""
        await self._reload_if_stale()
        active = [key for key in self._keys if key.retired_at is None]
        if not active:  # rotated elsewhere since the last reload
            await self.reload()
            active = [key for key in self._keys if key.retired_at is None]
        if not active:
            raise RuntimeError("no active signing key: expected one from ensure_signing_key")
        return active[0]

    async def verifying_key(self, kid: str) -> SigningKey | None:
        """The key named ``kid`` if it still verifies, else None."""
        await self._reload_if_stale()
        key = self._find(kid)
        if key is None:
            await self.reload()  # perhaps created by another gateway since
            key = self._find(kid)
        return key

    async def public_jwks(self) -> list[dict[str, str]]:
        await self._reload_if_stale()
        return [key.public_jwk for key in self._keys]

    def _find(self, kid: str) -> SigningKey | None:
        return next((key for key in self._keys if key.kid == kid), None)

    async def _reload_if_stale(self) -> None:
        if time.monotonic() - self._loaded_at >= RELOAD_SECONDS:
            await self.reload()


KEYRING = web.AppKey("keyring", KeyRing)
