"""HTTP routes of two-factor authentication, under ``/api/v1/auth/2fa``, their
JSON shapes, and the login's second step (:func:`challenge_if_enabled`).

Every change to an account's 2FA needs its password (``wrong_password``,
403), except ``confirm``, which needs a code from the secret just set up.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Literal, Self
from uuid import UUID

import asyncpg
import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from hubbub.errors import AppError
from hubbub.http.routing import Api
from hubbub.identity import passwords, two_factor
from hubbub.identity.bearer import authenticate_request
from hubbub.identity.login_guard import LOGIN_GUARD
from hubbub.identity.sealing import SecretBox
from hubbub.identity.sign_in import open_session, token_answer
from hubbub.identity.standing import refuse_if_barred
from hubbub.identity.totp import new_secret, otpauth_url
from hubbub.identity.users import get_user
from hubbub.identity.wire import AuthTokens, DeviceToken
from hubbub.services import DATABASE, SETTINGS

__all__ = ["TwoFactorChallenge", "challenge_if_enabled", "two_factor_api"]

two_factor_api = Api("two-factor", "Two-factor authentication: TOTP and recovery codes.")

BASE = "/api/v1/auth/2fa"
BEARER = ("bearer",)
_WRONG_PASSWORD = {403: "The password is wrong (`wrong_password`)"}
_NOT_ENABLED = {409: "Two-factor authentication is not enabled (`two_factor_not_enabled`)"}

TotpCode = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^\d{6}$"), Field(examples=["123456"])
]
RecoveryCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Password = Annotated[str, Field(min_length=1, max_length=256)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PasswordProof(_Input):
    password: Password


class CodeInput(_Input):
    code: TotpCode


class RevokeRecoveryCode(_Input):
    password: Password
    code: RecoveryCode = Field(description="The recovery code to revoke.")


class ChallengeAnswer(_Input):
    challenge_token: Annotated[str, Field(min_length=1, max_length=512)]
    code: TotpCode | None = None
    recovery_code: RecoveryCode | None = None
    device_token: DeviceToken = None

    @model_validator(mode="after")
    def _one_proof(self) -> Self:
        if (self.code is None) == (self.recovery_code is None):
            raise ValueError("expected exactly one of code or recovery_code")
        return self


class TwoFactorSetup(BaseModel):
    secret: str = Field(description="Base32 TOTP secret, for typing into an app by hand.")
    otpauth_url: str = Field(description="otpauth://totp/... URL, for showing as a QR code.")


class RecoveryCodes(BaseModel):
    recovery_codes: list[str] = Field(description="One-time codes; shown only this once.")


class RecoveryCodesLeft(BaseModel):
    remaining: int = Field(description="Recovery codes still usable.")


class TwoFactorView(BaseModel):
    status: Literal["disabled", "pending", "enabled"]
    enabled_at: datetime | None
    recovery_codes_remaining: int


class TwoFactorChallenge(BaseModel):
    two_factor_required: Literal[True] = True
    challenge_token: str = Field(description="Send it to /api/v1/auth/2fa/verify with a code.")
    expires_in: int = Field(description="Seconds the challenge token stays valid.")


@two_factor_api.get(BASE, response=TwoFactorView, security=BEARER)
async def two_factor_status(request: web.Request) -> TwoFactorView:
    """Whether 2FA is disabled, pending confirmation or enabled."""
    claims = await authenticate_request(request)
    async with request.app[DATABASE].pool.acquire() as conn:
        status = await two_factor.get_status(conn, claims.user_id)
    return TwoFactorView(
        status=status.state,
        enabled_at=status.enabled_at,
        recovery_codes_remaining=status.recovery_codes_remaining,
    )


@two_factor_api.post(
    f"{BASE}/setup",
    body=PasswordProof,
    response=TwoFactorSetup,
    security=BEARER,
    responses=_WRONG_PASSWORD | {409: "Already enabled (`two_factor_already_enabled`)"},
)
async def setup_two_factor(request: web.Request, *, body: PasswordProof) -> TwoFactorSetup:
    """Start 2FA: a new secret, pending until confirmed with a code."""
    claims = await authenticate_request(request)
    await _require_password(request, claims.user_id, body.password)
    async with request.app[DATABASE].pool.acquire() as conn:
        user = await get_user(conn, claims.user_id)
        assert user is not None, "a live session always belongs to an existing user"
        secret = new_secret()
        await two_factor.begin_setup(conn, user.id, _box(request).seal(secret, user.id))
    return TwoFactorSetup(secret=secret, otpauth_url=otpauth_url(secret, user.email))


@two_factor_api.post(
    f"{BASE}/confirm",
    body=CodeInput,
    response=RecoveryCodes,
    security=BEARER,
    responses={
        400: "The code is wrong (`invalid_two_factor_code`)",
        409: "No pending setup (`two_factor_not_pending`)",
    },
)
async def confirm_two_factor(request: web.Request, *, body: CodeInput) -> RecoveryCodes:
    """Enable 2FA with a code from the app; answers the recovery codes, once."""
    claims = await authenticate_request(request)
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        codes = await two_factor.confirm(
            conn, _box(request), claims.user_id, body.code, time.time()
        )
    return RecoveryCodes(recovery_codes=codes)


@two_factor_api.post(
    f"{BASE}/verify",
    body=ChallengeAnswer,
    response=AuthTokens,
    responses={
        401: "`invalid_challenge`, `challenge_used`, `challenge_expired`, "
        "`challenge_exhausted`, `invalid_two_factor_code`, `two_factor_code_reused`, "
        "`invalid_recovery_code` or `recovery_code_used`",
        403: "The account is banned or locked by staff",
    },
)
async def verify_two_factor(request: web.Request, *, body: ChallengeAnswer) -> AuthTokens:
    """Finish a login: the challenge token and a code (or a recovery code) → tokens."""
    db = request.app[DATABASE]
    proof = two_factor.Proof(code=body.code, recovery_code=body.recovery_code)
    user_id = await two_factor.redeem_challenge(
        db, _box(request), body.challenge_token, proof, time.time()
    )
    async with db.pool.acquire() as conn, conn.transaction():
        await refuse_if_barred(conn, user_id)
        user = await get_user(conn, user_id)
        assert user is not None, "a challenge always belongs to an existing user"
        session_id, refresh_token = await open_session(request, conn, user_id)
    answer = await token_answer(request, user, session_id, refresh_token)
    guard = request.app[LOGIN_GUARD]
    answer.device_token = await guard.remember_device(user.email, body.device_token)
    return answer


@two_factor_api.post(
    f"{BASE}/recovery-codes",
    body=PasswordProof,
    response=RecoveryCodes,
    security=BEARER,
    responses=_WRONG_PASSWORD | _NOT_ENABLED,
)
async def regenerate_recovery_codes(request: web.Request, *, body: PasswordProof) -> RecoveryCodes:
    """A new set of recovery codes, shown once; every older code stops working."""
    claims = await authenticate_request(request)
    await _require_password(request, claims.user_id, body.password)
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        codes = await two_factor.replace_recovery_codes(conn, claims.user_id)
    return RecoveryCodes(recovery_codes=codes)


@two_factor_api.post(
    f"{BASE}/recovery-codes/revoke",
    body=RevokeRecoveryCode,
    response=RecoveryCodesLeft,
    security=BEARER,
    responses=_WRONG_PASSWORD
    | _NOT_ENABLED
    | {400: "Not one of your unused recovery codes (`invalid_recovery_code`)"},
)
async def revoke_recovery_code(
    request: web.Request, *, body: RevokeRecoveryCode
) -> RecoveryCodesLeft:
    """Revoke one recovery code (e.g. one that was exposed); how many remain."""
    claims = await authenticate_request(request)
    await _require_password(request, claims.user_id, body.password)
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        remaining = await two_factor.revoke_recovery_code(conn, claims.user_id, body.code)
    return RecoveryCodesLeft(remaining=remaining)


@two_factor_api.post(
    f"{BASE}/disable",
    body=PasswordProof,
    security=BEARER,
    responses=_WRONG_PASSWORD | _NOT_ENABLED,
)
async def disable_two_factor(request: web.Request, *, body: PasswordProof) -> None:
    """Turn 2FA off (or cancel a pending setup): the secret and codes are deleted."""
    claims = await authenticate_request(request)
    await _require_password(request, claims.user_id, body.password)
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        await two_factor.disable(conn, claims.user_id)


async def challenge_if_enabled(conn: asyncpg.Connection, user_id: UUID) -> web.Response | None:
    """The login's 202 challenge answer if ``user_id`` has 2FA enabled, else None."""
    if not await two_factor.is_enabled(conn, user_id):
        return None
    challenge = TwoFactorChallenge(
        challenge_token=await two_factor.open_challenge(conn, user_id),
        expires_in=int(two_factor.CHALLENGE_LIFETIME.total_seconds()),
    )
    return web.Response(
        body=orjson.dumps(challenge.model_dump(mode="json")),
        status=202,
        content_type="application/json",
    )


async def _require_password(request: web.Request, user_id: UUID, password: str) -> None:
    """403 ``wrong_password`` unless ``password`` is the account's (no connection
    is held while argon2 runs)."""
    pool = request.app[DATABASE].pool
    stored = await pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user_id)
    if stored is None or not await passwords.verify_password(stored, password):
        raise AppError("wrong_password", "the password is wrong", status=403)


def _box(request: web.Request) -> SecretBox:
    key = request.app[SETTINGS].two_factor_key
    return SecretBox(None if key is None else key.get_secret_value())
