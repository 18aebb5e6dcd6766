"""Signed, expiring download links: ``/api/v1/exports/{name}?expires=&signature=``.

The link is the capability: whoever holds it may download the file until
``expires`` (Unix seconds), without a bearer token. The signature is an
HMAC-SHA256 over the path and the expiry, so neither can be changed, and no
link can be made without the key — only the export job makes them.

The key is derived (HKDF-SHA256) from ``HUBBUB_TWO_FACTOR_KEY``, the
deployment's secret, with a label of its own. Without that setting it is a
random key kept in the export directory (``.link-key``), which every gateway
and worker sharing the directory reads: a file's readers already share it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hubbub.config import Settings
from hubbub.errors import AppError

__all__ = ["EXPORTS", "Link", "link_for", "load_key", "verify"]

EXPORTS = "/api/v1/exports"
KEY_FILE = ".link-key"


@dataclass(frozen=True, slots=True)
class Link:
    """A signed download link: its URL (relative to the gateway) and expiry."""

    url: str
    expires_at: datetime


def link_for(settings: Settings, name: str, expires_at: datetime | None = None) -> Link:
    """A link to ``name`` valid until ``expires_at`` (default: ``HUBBUB_EXPORT_LINK_HOURS``)."""
    if expires_at is None:
        expires_at = datetime.now(UTC) + timedelta(hours=settings.export_link_hours)
    expires = int(expires_at.timestamp())
    query = urlencode({"expires": expires, "signature": _sign(settings, name, expires)})
    return Link(f"{EXPORTS}/{name}?{query}", datetime.fromtimestamp(expires, UTC))


def verify(settings: Settings, name: str, expires: int, signature: str) -> None:
    """Nothing if the link is genuine and current; 403 otherwise."""
    expected = _sign(settings, name, expires)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise AppError("bad_signature", "the link's signature does not match it", status=403)
    if expires < datetime.now(UTC).timestamp():
        raise AppError("link_expired", "the link has expired; run the export again", status=403)


def _sign(settings: Settings, name: str, expires: int) -> str:
    message = f"GET {EXPORTS}/{name}\n{expires}".encode()
    digest = hmac.new(load_key(settings), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def load_key(settings: Settings) -> bytes:
    """The signing key (blocking the first time: it may read or create a file)."""
    secret = settings.two_factor_key
    if secret is None:
        return _stored_key(settings.export_dir)
    return _derived_key(secret.get_secret_value())


@functools.cache
def _derived_key(secret: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"hubbub export links v1")
    return hkdf.derive(secret.encode())


@functools.cache
def _stored_key(directory: Path) -> bytes:
    """The directory's key, created by the first process that needs it."""
    path = directory / KEY_FILE
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        draft = directory / f"{KEY_FILE}.{secrets.token_hex(4)}"
        draft.write_bytes(secrets.token_bytes(32))
        os.chmod(draft, 0o600)
        try:
            os.link(draft, path)  # atomic and exclusive: racing processes agree on one key
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_bytes()
