"""An OpenAI-compatible chat completions API as the provider, through the
official ``openai`` client (``stream: true``; the client parses the SSE).

Configured by ``HUBBUB_AGENT_BASE_URL``, ``HUBBUB_AGENT_API_KEY`` and
``HUBBUB_AGENT_MODEL``. The client does not retry: a failed reply fails its
job, whose retry policy decides. Any error of the API or the connection
becomes :class:`~hubbub.agent.provider.ProviderFailed` naming what went wrong.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence

import openai

from hubbub.agent.provider import ProviderFailed, Turn
from hubbub.config import Settings

__all__ = ["OpenAIProvider"]


class OpenAIProvider:
    """Owns: one API client per reply (a run's event loop is its own)."""

    def __init__(self, settings: Settings) -> None:
        key = settings.agent_api_key
        self._base_url = settings.agent_base_url
        self._api_key = key.get_secret_value() if key is not None else ""
        self._model = settings.agent_model
        self._timeout = settings.agent_provider_timeout_seconds

    async def stream(self, turns: Sequence[Turn]) -> AsyncGenerator[str, None]:
        client = openai.AsyncOpenAI(
            base_url=self._base_url,
            api_key=self._api_key or "none",  # local OpenAI-compatible servers take any
            timeout=self._timeout,
            max_retries=0,
        )
        try:
            async for piece in self._pieces(client, turns):
                yield piece
        except openai.APIStatusError as error:
            raise ProviderFailed(
                f"the model provider answered {error.status_code}: {_detail(error)}"
            ) from None
        except openai.OpenAIError as error:
            raise ProviderFailed(f"the model provider failed: {error}") from None
        finally:
            await client.close()

    async def _pieces(
        self, client: openai.AsyncOpenAI, turns: Sequence[Turn]
    ) -> AsyncGenerator[str, None]:
        messages = [{"role": t.role, "content": t.content} for t in turns]
        stream = await client.chat.completions.create(
            model=self._model,
            messages=messages,  # type: ignore[arg-type]  # plain dicts, as the API takes
            stream=True,
        )
        async with stream:
            async for chunk in stream:
                for choice in chunk.choices:
                    if choice.delta.content:
                        yield choice.delta.content


def _detail(error: openai.APIStatusError) -> str:
    """The API's own error message when its body has one, else the client's."""
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
    return error.message
