"""Password hashing: argon2id, run in a thread so the event loop never waits.

Parameters are argon2-cffi's defaults (RFC 9106's second recommended
profile); a hash made with other parameters still verifies, as each hash
records its own.
"""

from __future__ import annotations

import asyncio
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["hash_password", "verify_password", "waste_a_verification"]

_hasher = PasswordHasher()


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``."""
    return await asyncio.to_thread(_verify, password_hash, password)


async def waste_a_verification(password: str) -> None:
    """Spend what a real verification costs, for an account that does not exist,
    so that the answer's timing does not tell which emails have accounts."""
    await asyncio.to_thread(_verify, _dummy_hash(), password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    return _hasher.hash("not a password anyone has: the hash of no account")
