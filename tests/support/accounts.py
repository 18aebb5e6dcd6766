"""Accounts for tests: sign up through the real API and get tokens."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp

__all__ = ["PASSWORD", "sign_up", "unique_email"]

PASSWORD = "correct horse battery staple"


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


async def sign_up(base_url: str, email: str | None = None, **headers: str) -> dict[str, Any]:
    """Register a fresh account at the gateway ``base_url``; its token answer."""
    body = {"email": email or unique_email(), "password": PASSWORD, "name": "Test User"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base_url}/api/v1/auth/register", json=body, headers=headers) as response,
    ):
        assert response.status == 201, await response.text()
        return await response.json()
