"""A real SMTP server (aiosmtpd) on a local port, for tests that read mail.

It runs in the test's event loop and keeps every message it accepts;
:meth:`Mailbox.next_for` waits for the next one to an address. Addresses in
``refuse`` get a temporary failure (451) at RCPT, as a busy server would.
"""

from __future__ import annotations

import asyncio
import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["Mailbox", "token_in"]

WAIT_SECONDS = 30.0  # a deadline for a mail that never comes, not a pace


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse: set[str] = set()
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="mailbox.test"), "127.0.0.1", 0
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_RCPT(  # aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.lower() in self.refuse:
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        message = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        async with self._arrived:
            self.messages.append(message)  # type: ignore[arg-type]
            self._arrived.notify_all()
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"].lower() == address.lower()]

    async def next_for(self, address: str, seen: int = 0) -> EmailMessage:
        """The message to ``address`` after the first ``seen``, waiting for it."""
        async with asyncio.timeout(WAIT_SECONDS), self._arrived:
            await self._arrived.wait_for(lambda: len(self.to(address)) > seen)
        return self.to(address)[seen]


def token_in(message: EmailMessage) -> str:
    """The ``token`` of the link in a mail's text."""
    body = message.get_body(preferencelist=("plain",))
    assert body is not None, "expected a text/plain mail"
    match = re.search(r"[?&]token=([A-Za-z0-9_\-]+)", body.get_content())
    assert match, f"expected a link with a token in {body.get_content()!r}"
    return match[1]
