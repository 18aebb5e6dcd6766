"""TRANSITIONAL: a command given as a name and a dict of arguments.

Only while the conversation, job and tenant kinds move to typed commands;
deleted once they have (nothing new may use it).
"""

from __future__ import annotations

from typing import Any

import msgspec

from hubbub.actors.command import CommandBody

__all__ = ["Untyped"]


class Untyped(CommandBody, frozen=True):
    name: str
    args: dict[str, Any] = msgspec.field(default_factory=dict)
    deduped: bool = False

    @property
    def retry_safe(self) -> bool:  # type: ignore[override]
        return self.deduped
