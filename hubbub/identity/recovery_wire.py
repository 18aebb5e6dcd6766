"""The JSON shapes of email verification and password recovery."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from hubbub.identity.wire import Email, Password

__all__ = ["ForgotPassword", "MailTokenBody", "NewPassword", "PasswordChange"]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


MailToken = Annotated[str, Field(min_length=1, max_length=512, description="From the mail's link.")]


class MailTokenBody(_Input):
    token: MailToken


class ForgotPassword(_Input):
    email: Email


class NewPassword(_Input):
    token: MailToken
    password: Password


class PasswordChange(_Input):
    current_password: Annotated[str, Field(min_length=1, max_length=256)]
    new_password: Password
