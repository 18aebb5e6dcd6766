"""Operator commands run against the deployment's database: ``hubbub staff``
and ``hubbub keys``, each as a real process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncpg
from aiohttp.test_utils import TestServer

from hubbub.config import Settings
from tests.support.accounts import sign_up, unique_email


async def hubbub(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
    env |= {"HUBBUB_DATABASE_URL": settings.database_url or "", "HUBBUB_LOG_FORMAT": "console"}
    command = [sys.executable, "-m", "hubbub", *args]
    return await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=120
    )


async def test_staff_grant_and_revoke_change_the_account_and_are_audited(
    gateway: TestServer, migrated: Settings, owner_conn: asyncpg.Connection
) -> None:
    account = await sign_up(str(gateway.make_url("")).rstrip("/"))
    email = account["user"]["email"]

    granted = await hubbub(migrated, "staff", "grant", email.upper())
    assert granted.returncode == 0, granted.stderr
    assert f"{email} is now staff" in granted.stdout
    assert await owner_conn.fetchval("SELECT is_staff FROM users WHERE email = $1", email)

    revoked = await hubbub(migrated, "staff", "revoke", email)
    assert revoked.returncode == 0, revoked.stderr
    assert not await owner_conn.fetchval("SELECT is_staff FROM users WHERE email = $1", email)
    actions = await owner_conn.fetch(
        "SELECT action FROM staff_audit_log WHERE target_id = $1 ORDER BY id",
        account["user"]["id"],
    )
    assert len(actions) == 2


async def test_staff_grant_of_an_unknown_email_fails_and_changes_nothing(
    migrated: Settings,
) -> None:
    result = await hubbub(migrated, "staff", "grant", unique_email("nobody"))
    assert result.returncode == 1
    assert "no account has the email" in result.stderr


async def test_keys_rotate_starts_a_new_signing_key_and_retires_the_old(
    migrated: Settings, owner_conn: asyncpg.Connection
) -> None:
    result = await hubbub(migrated, "keys", "rotate")
    assert result.returncode == 0, result.stderr
    active = await owner_conn.fetch("SELECT kid FROM signing_keys WHERE retired_at IS NULL")
    assert [row["kid"] for row in active] == [result.stdout.split()[3].rstrip(";")]
