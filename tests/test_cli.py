"""Operator commands run against the deployment's database: ``hubbub staff``
and ``hubbub keys``, each as a real process; what every command prints
before it does anything; a data directory in use refusing a second serve."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from hubbub.cli import main
from hubbub.config import Settings
from hubbub.storage.embedded import DataDirLock, LockHolder
from tests.support.accounts import sign_up, unique_email
from tests.support.processes import TWO_FACTOR_KEY


async def hubbub(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
    env |= {"HUBBUB_DATABASE_URL": settings.database_url or "", "HUBBUB_LOG_FORMAT": "console"}
    env["HUBBUB_TWO_FACTOR_KEY"] = TWO_FACTOR_KEY
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


def test_a_command_prints_no_warning_of_a_library() -> None:
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    command = [sys.executable, "-m", "hubbub", "--version"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # platformdirs warned of XDG_RUNTIME_DIR here


def test_serve_refuses_a_data_directory_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = DataDirLock(tmp_path)
    lock.acquire(LockHolder(pid=4242, host="elsewhere", command="serve", address="127.0.0.1:8001"))
    monkeypatch.setenv("HUBBUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HUBBUB_LOG_FORMAT", "console")
    try:
        assert main(["serve"]) == 2
    finally:
        lock.release()
    error = capsys.readouterr().err
    assert "pid 4242 on elsewhere" in error and "127.0.0.1:8001" in error
    assert "HUBBUB_RAY_ADDRESS" in error and "docs/deployment.md" in error
    assert not (tmp_path / "postgres").exists()  # refused before starting anything
