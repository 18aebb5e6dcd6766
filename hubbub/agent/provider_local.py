"""The local provider: a deterministic reply derived from the prompt, no network.

It answers the user's latest message by quoting it back, word by word, with
a short pause before each word (``HUBBUB_AGENT_LOCAL_TOKEN_MS``) so the reply
streams like a model's. The same conversation always gets the same reply:
tests and demos can say what to expect.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Sequence

from hubbub.agent.provider import Turn

__all__ = ["LocalProvider", "local_reply"]

_TOKEN = re.compile(r"\S+\s*|\s+")


def local_reply(turns: Sequence[Turn]) -> str:
    """The whole reply the local provider gives to ``turns``."""
    asked = next((t.content for t in reversed(turns) if t.role == "user"), "")
    said = sum(1 for t in turns if t.role == "user")
    return f"You said: {' '.join(asked.split())} (your message {said} here)."


class LocalProvider:
    """Owns nothing: a pure function of the turns, paced by ``pause`` seconds."""

    def __init__(self, pause: float) -> None:
        self._pause = pause

    async def stream(self, turns: Sequence[Turn]) -> AsyncGenerator[str, None]:
        for token in _TOKEN.findall(local_reply(turns)):
            await asyncio.sleep(self._pause)
            yield token
