"""HTTP routes of async signup, under ``/api/v1/auth/signup/async``.

No bearer token on either route. ``POST`` validates the body, refuses an
email that has an account (409 ``email_taken``, as ``POST /auth/register``
does: signup tells who has an account either way), hashes the password here
— it never enters the job — files the signup and submits its
``tenant.provision`` job. The answer's ``stream_url`` carries a fresh
256-bit token: the job's SSE stream opens with it alone, until it expires
(``HUBBUB_SIGNUP_STREAM_MINUTES``); then, like an unknown token, it is 404.
The first time a link delivers the job's success it opens the account's
session and adds the tokens to that final event, for that client alone:
the job itself never holds them.

With an ``Idempotency-Key``, a retry with the same email, key and password
finds the same signup, hence the same job, and gets a fresh link to its
stream; another password, name or tenant name with that key is 422
``idempotency_key_reused``.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from aiohttp import web

from hubbub.errors import AppError
from hubbub.http.routing import Api
from hubbub.identity import passwords
from hubbub.identity.sessions import create_session
from hubbub.identity.sign_in import refresh_lifetime, token_answer
from hubbub.identity.signup import RATE_LIMITED, signup_gate
from hubbub.identity.users import email_taken, find_for_login, get_user
from hubbub.ids import new_id
from hubbub.jobs.caller import idempotency_key
from hubbub.jobs.dispatch import job_id_for, submit_job
from hubbub.jobs.registry import KINDS
from hubbub.jobs.stream import serve_stream
from hubbub.jobs.wire import JobEventView, StreamQuery
from hubbub.provisioning import PROVISION, SIGNUP_JOBS
from hubbub.provisioning.signups import (
    Signup,
    claim_stream,
    file_signup,
    find_by_key,
    open_stream,
    stream_job,
)
from hubbub.provisioning.wire import AsyncSignup, SignupAccepted, StreamPath
from hubbub.services import DATABASE, SETTINGS
from hubbub.storage.database import Database
from hubbub.tenancy.directory import find_user_id

__all__ = ["api"]

api = Api(
    "signup-async", "Signup that provisions the account's tenant as a job, with live progress."
)

BASE = "/api/v1/auth/signup/async"
#: The job key of a signup without an Idempotency-Key: its account id alone
#: (fresh per signup) tells its job apart.
_UNKEYED = "signup"
_DEVICE_MAX = 200


@api.post(
    BASE,
    body=AsyncSignup,
    response=SignupAccepted,
    status=202,
    responses={
        403: "Signup policy `invite_only` (`signup_invite_only`)",
        409: "The email already has an account (`email_taken`) or, under the `approval` "
        "policy, a pending signup request (`signup_request_pending`)",
        422: "A field is invalid (`validation_failed`, naming it), or the `Idempotency-Key` "
        "came with another body (`idempotency_key_reused`)",
        429: RATE_LIMITED,
    },
)
async def signup_async(request: web.Request, *, body: AsyncSignup) -> SignupAccepted | web.Response:
    """Sign up and provision a tenant as a job: 202 with the job and its stream link.
    Under the `approval` policy a signup request is filed instead (202, as `register`)."""
    if (filed := await signup_gate(request, body)) is not None:
        return filed
    key = idempotency_key(request)
    signup = await _signup(request, body, key)
    kind = KINDS.get(PROVISION)
    job_input = kind.parse(_input(signup, body)).model_dump(mode="json")
    job_key = key or _UNKEYED
    job = await submit_job(
        request.app, str(SIGNUP_JOBS), str(signup.user_id), kind, job_input, job_key
    )
    lifetime = timedelta(minutes=request.app[SETTINGS].signup_stream_minutes)
    token, expires_at = await open_stream(request.app[DATABASE], signup.job_id, lifetime)
    return SignupAccepted(
        job_id=job["id"], stream_url=f"{BASE}/{token}/stream", expires_at=expires_at
    )


async def _signup(request: web.Request, body: AsyncSignup, key: str | None) -> Signup:
    """This request's signup: the one its key filed before (same password
    only), else a new one (409 if the email has an account)."""
    db = request.app[DATABASE]
    found = None if key is None else await find_by_key(db, body.email, key)
    if found is not None:
        await _same_password(db, found, body.password)
        return found
    if await find_user_id(db, body.email) is not None:
        raise email_taken()
    proposed = await _new_signup(request, body, key)
    filed = await file_signup(db, proposed, key)
    if filed.job_id != proposed.job_id:  # a concurrent request with the key filed first
        await _same_password(db, filed, body.password)
    return filed


async def _new_signup(request: web.Request, body: AsyncSignup, key: str | None) -> Signup:
    user_id = new_id()
    device = request.headers.get("User-Agent", "").strip()[:_DEVICE_MAX] or "unknown"
    return Signup(
        job_id=job_id_for(str(SIGNUP_JOBS), str(user_id), key or _UNKEYED),
        user_id=user_id,
        new_tenant_id=new_id(),
        email=body.email,
        password_hash=await passwords.hash_password(body.password),
        device=device,
        ip=request.remote,
    )


async def _same_password(db: Database, signup: Signup, password: str) -> None:
    """A retry must bring the password of the signup it retries; once the account
    exists, the account's password (a later change counts)."""
    stored = signup.password_hash
    if stored is None:
        async with db.pool.acquire() as conn:
            found = await find_for_login(conn, signup.email)
        stored = None if found is None else found[1]
    if stored is None or not await passwords.verify_password(stored, password):
        raise _key_reused()


def _key_reused() -> AppError:
    return AppError(
        "idempotency_key_reused",
        "this Idempotency-Key was used with another request body; "
        "expected the same body, or a new key for a new request",
        status=422,
    )


def _input(signup: Signup, body: AsyncSignup) -> dict[str, Any]:
    return {
        "user_id": str(signup.user_id),
        "tenant_id": str(signup.new_tenant_id),
        "email": signup.email,
        "name": body.name,
        "tenant_name": body.tenant_name,
    }


@api.get(
    f"{BASE}/{{stream_token}}/stream",
    params=StreamPath,
    secret_params=("stream_token",),
    query=StreamQuery,
    response=JobEventView,
    content_type="text/event-stream",
    responses={
        404: "An unknown or expired stream link (`not_found`)",
        422: "A `Last-Event-ID` that is not a seq (`validation_failed`)",
    },
)
async def stream_signup(
    request: web.Request, *, path: StreamPath, query: StreamQuery
) -> web.StreamResponse:
    """Server-Sent Events of the signup's job, as `GET /jobs/{id}/stream` sends
    them: steps, progress, and the final `status` whose `result` holds the
    new tenant and — the first time this link delivers it — the account's tokens."""
    job_id = await stream_job(request.app[DATABASE], path.stream_token)
    signed_in = partial(_signed_in, request, path.stream_token)
    # The link is the key: no viewer to check.
    return await serve_stream(request, str(SIGNUP_JOBS), job_id, query, None, rewrite=signed_in)


async def _signed_in(request: web.Request, token: str, event: dict[str, Any]) -> dict[str, Any]:
    """The job's success with the account's first tokens added, if this link
    has not handed them out yet; any other event as it is."""
    data = event["data"]
    if event["type"] != "status" or data.get("status") != "succeeded":
        return event
    async with request.app[DATABASE].tenant(None) as conn:
        signup = await claim_stream(conn, token)
        if signup is None:  # claimed before: the client logs in with its password
            return event
        user = await get_user(conn, signup.user_id)
        if user is None:  # deleted since (a staff action): nothing to sign in to
            return event
        session_id, refresh_token = await create_session(
            conn,
            user.id,
            device=signup.device,
            ip=signup.ip,
            lifetime=refresh_lifetime(request),
        )
    tokens = await token_answer(request, user, session_id, refresh_token)
    result = data["result"] | tokens.model_dump(mode="json", exclude={"user"})
    return event | {"data": data | {"result": result}}
