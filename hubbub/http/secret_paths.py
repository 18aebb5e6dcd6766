"""Paths that carry secrets, and how logs show them.

A route whose path holds a secret (a signup link's token) declares it
(``Route.secret_params``). Every log line of a request whose path *starts
like* such a route shows that segment as ``{name}``: whatever the method (a
HEAD or POST to a GET-only link answers 405 before any handler runs) and
whatever the status (a mistyped tail is a 404 that still carries the token).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

__all__ = ["SecretPaths"]


@dataclass(frozen=True, slots=True)
class _Template:
    """A route path split into segments; ``secrets[i]`` names segment i's secret."""

    segments: tuple[str, ...]
    secrets: dict[int, str]

    @classmethod
    def parse(cls, path: str, secret_params: Collection[str]) -> _Template:
        segments = tuple(path.split("/"))
        secrets = {}
        for index, segment in enumerate(segments):
            name = _param_name(segment)
            if name in secret_params:
                secrets[index] = name
        missing = set(secret_params) - set(secrets.values())
        if missing:
            raise ValueError(f"secret parameters {sorted(missing)} are not in the path {path!r}")
        return cls(segments, secrets)

    def redact(self, parts: list[str]) -> None:
        """Replace, in place, each secret segment of the prefix ``parts`` shares with this."""
        for index, (segment, part) in enumerate(zip(self.segments, parts, strict=False)):
            if index in self.secrets:
                parts[index] = f"{{{self.secrets[index]}}}"
            elif _param_name(segment) is None and segment != part:
                return  # the path leaves this route here: later segments are not its


class SecretPaths:
    """The secret-bearing route paths of an app; :meth:`redact` is what logs show."""

    def __init__(self, routes: Iterable[tuple[str, Collection[str]]] = ()) -> None:
        """``routes``: ``(path template, its secret parameter names)`` pairs."""
        self._templates = [_Template.parse(path, names) for path, names in routes if names]

    def redact(self, path: str) -> str:
        """``path`` with every segment in a secret parameter's place as ``{name}``."""
        if not self._templates:
            return path
        parts = path.split("/")
        for template in self._templates:
            template.redact(parts)
        return "/".join(parts)


def _param_name(segment: str) -> str | None:
    """``name`` of a ``{name}`` or ``{name:regex}`` segment; None for a literal."""
    if segment.startswith("{") and segment.endswith("}"):
        return segment[1:-1].split(":", 1)[0]
    return None
