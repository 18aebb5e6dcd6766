"""The mails identity sends, as text: verification and password reset.

Links point at ``HUBBUB_PUBLIC_URL`` (the client application, which reads
the ``token`` query parameter and posts it to the API):
``/verify-email?token=...`` and ``/reset-password?token=...``.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from hubbub.mail.outbox import Mail

__all__ = ["link", "reset_password_mail", "verify_email_mail"]


def link(public_url: str, page: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/{page}?{urlencode({'token': token})}"


def verify_email_mail(email: str, name: str, url: str, lifetime: timedelta) -> Mail:
    body = (
        f"Hello {name},\n\n"
        "Please confirm that this is your email address by opening this link:\n\n"
        f"{url}\n\n"
        f"The link works once, for {_duration(lifetime)}. If you did not create an account, "
        "ignore this mail.\n"
    )
    return Mail("verify_email", email, "Confirm your email address", body)


def reset_password_mail(email: str, url: str, lifetime: timedelta) -> Mail:
    body = (
        "Hello,\n\n"
        f"Someone asked to reset the password of the account of {email}. "
        "To choose a new password, open this link:\n\n"
        f"{url}\n\n"
        f"The link works once, for {_duration(lifetime)}; choosing a new password logs out "
        "every device. If you did not ask for this, ignore this mail: your password stays "
        "as it is.\n"
    )
    return Mail("reset_password", email, "Reset your password", body)


def _duration(lifetime: timedelta) -> str:
    minutes = round(lifetime.total_seconds() / 60)
    if minutes % 60:
        return f"{minutes} minutes"
    hours = minutes // 60
    return "1 hour" if hours == 1 else f"{hours} hours"
