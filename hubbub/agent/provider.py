"""What writes the assistant's replies: a model provider, streaming tokens.

A provider takes the conversation so far as :class:`Turn` s (oldest first,
the user's latest message last) and yields the reply a piece at a time.
:func:`provider_for` makes the one a reply job names — the local one
(deterministic, no network) or an OpenAI-compatible chat completions API —
from the worker's settings. A provider that cannot answer raises
:class:`ProviderFailed`, which fails the job with its code.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from hubbub.config import Settings
from hubbub.errors import AppError

__all__ = ["Provider", "ProviderFailed", "ProviderName", "Turn", "provider_for"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of the conversation, as a model sees it."""

    role: Literal["user", "assistant"]
    content: str


class Provider(Protocol):
    def stream(self, turns: Sequence[Turn]) -> AsyncGenerator[str, None]:
        """The reply to ``turns``, piece by piece; raises :class:`ProviderFailed`."""
        ...


class ProviderFailed(AppError):
    """The provider could not write a reply (code ``agent_provider_failed``)."""

    def __init__(self, message: str) -> None:
        super().__init__("agent_provider_failed", message, status=502, retriable=True)


#: The providers by name, as ``HUBBUB_AGENT_PROVIDER`` and a reply job's input name them.
ProviderName = Literal["local", "openai"]


def provider_for(name: ProviderName, settings: Settings) -> Provider:
    """The provider called ``name``, configured by ``settings`` (the worker's)."""
    if name == "openai":
        from hubbub.agent.provider_openai import OpenAIProvider  # its client only when used

        return OpenAIProvider(settings)
    from hubbub.agent.provider_local import LocalProvider

    return LocalProvider(settings.agent_local_token_ms / 1000)
