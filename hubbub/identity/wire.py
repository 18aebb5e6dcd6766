"""The JSON shapes of the auth API (snake_case), validated at the edge."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from hubbub.identity.sessions import Session
from hubbub.identity.users import User

__all__ = [
    "AuthTokens",
    "Credentials",
    "Jwk",
    "Jwks",
    "NewAccount",
    "RefreshRequest",
    "SessionList",
    "SessionPath",
    "SessionView",
    "UserView",
]

# local@domain: a local part without spaces or @, a domain of DNS labels with
# a top-level label of letters. Deliverability is the mail's job, not ours.
_EMAIL = re.compile(
    r"^[^@\s]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("expected an email address like name@example.com")
    return value


Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=254),
    AfterValidator(_email),
    Field(json_schema_extra={"format": "email"}),
]
Password = Annotated[str, Field(min_length=8, max_length=256)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewAccount(_Input):
    email: Email
    password: Password
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


DeviceToken = Annotated[
    str | None,
    Field(
        None,
        max_length=128,
        description="The `device_token` of an earlier sign-in on this device: a known device "
        "signs in even while the account is locked against unknown ones (docs/auth.md).",
    ),
]


class Credentials(_Input):
    email: Email
    password: Annotated[str, Field(min_length=1, max_length=256)]
    device_token: DeviceToken = None


class RefreshRequest(_Input):
    refresh_token: Annotated[str, Field(min_length=1, max_length=512)]


class SessionPath(BaseModel):
    session_id: UUID


class UserView(BaseModel):
    id: UUID
    email: str
    name: str
    email_verified: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserView:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            email_verified=user.email_verified,
            created_at=user.created_at,
        )


class AuthTokens(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    user: UserView
    device_token: str | None = Field(
        None,
        description="Set on a login: keep it on this device (also after logging out) and send "
        "it with the next login, so a lock against unknown devices does not hold it back.",
    )


class SessionView(BaseModel):
    id: UUID
    device: str = Field(description="The User-Agent the session was created with.")
    ip: str | None
    created_at: datetime
    last_used_at: datetime = Field(description="When it last logged in or refreshed.")
    current: bool = Field(description="True for the session of the token used to ask.")

    @classmethod
    def of(cls, session: Session, current_id: UUID) -> SessionView:
        return cls(
            id=session.id,
            device=session.device,
            ip=session.ip,
            created_at=session.created_at,
            last_used_at=session.last_used_at,
            current=session.id == current_id,
        )


class SessionList(BaseModel):
    items: list[SessionView]
    next_cursor: str | None = Field(
        None, description="Always null: every live session fits in one page."
    )


class Jwk(BaseModel):
    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str
    kid: str
    alg: Literal["EdDSA"]
    use: Literal["sig"]


class Jwks(BaseModel):
    keys: list[Jwk]
