"""Senders: SMTP through aiosmtplib, or the log when no server is configured.

``HUBBUB_SMTP_URL`` is ``smtp://[user:password@]host[:port]`` (port 25 by
default; STARTTLS is used when the server offers it) or ``smtps://...``
(TLS from the first byte, port 465 by default). Without it, the zero-setup
default, each mail is written to the log — a developer copies the link from
there — and counts as delivered.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol
from urllib.parse import unquote, urlsplit
from uuid import UUID

import aiosmtplib

from hubbub.mail.outbox import Mail

__all__ = ["LogSender", "Sender", "SmtpSender", "build_message", "sender_for"]

log = logging.getLogger("hubbub.mail")

SMTP_TIMEOUT_SECONDS = 30.0


class Sender(Protocol):
    async def send(self, mail_id: UUID, mail: Mail) -> None:
        """Deliver ``mail`` or raise; a raised error is retried later."""


def build_message(mail_id: UUID, mail: Mail, sender: str) -> EmailMessage:
    """The RFC 5322 message; its ``Message-ID`` is the same on every attempt."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = f"<{mail_id}@hubbub>"
    message.set_content(mail.body)
    return message


class SmtpSender:
    """One SMTP connection per mail: mails are few, and this needs no pool."""

    def __init__(self, url: str, mail_from: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"expected smtp://host[:port] or smtps://host[:port], got {url!r}")
        self._tls = parts.scheme == "smtps"
        self._host = parts.hostname
        self._port = parts.port or (465 if self._tls else 25)
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._from = mail_from

    async def send(self, mail_id: UUID, mail: Mail) -> None:
        await aiosmtplib.send(
            build_message(mail_id, mail, self._from),
            hostname=self._host,
            port=self._port,
            username=self._username,
            password=self._password,
            use_tls=self._tls,
            timeout=SMTP_TIMEOUT_SECONDS,
        )


class LogSender:
    """The zero-setup sender: the whole mail goes to the log at INFO."""

    def __init__(self, mail_from: str) -> None:
        self._from = mail_from

    async def send(self, mail_id: UUID, mail: Mail) -> None:
        log.info(
            "mail not sent (HUBBUB_SMTP_URL is unset); its text follows\nTo: %s\nSubject: %s\n\n%s",
            mail.recipient,
            mail.subject,
            mail.body,
            extra={"mail_id": str(mail_id), "mail_kind": mail.kind, "recipient": mail.recipient},
        )


def sender_for(smtp_url: str | None, mail_from: str) -> Sender:
    return SmtpSender(smtp_url, mail_from) if smtp_url else LogSender(mail_from)
