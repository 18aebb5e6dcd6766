"""The validation layer both edges share: what any input from outside may hold.

Every text that arrives — each string and object key of a JSON body or a
Socket.IO payload (free-form objects such as tenant settings, workflow
inputs and metadata included), each query and path parameter and each
header value — is
refused if it holds a NUL (U+0000) or an unpaired surrogate (U+D800-U+DFFF,
which a JSON ``\\ud800`` escape can carry), and JSON is refused when nested
deeper than :data:`MAX_DEPTH`. Postgres cannot store a NUL in ``text`` or
``jsonb``, a lone surrogate cannot be encoded as UTF-8, and orjson cannot
write JSON nested 254 levels deep, so none of them gets past the edge:
each is a 422 ``validation_failed`` whose ``errors[]`` names the field.

Checking is one pass over the decoded value (:func:`unclean`), before any
model sees it, so no field type has to remember it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import orjson
from pydantic import ValidationError

from hubbub.errors import AppError, FieldError

__all__ = ["MAX_DEPTH", "field_errors", "loads", "unclean", "validation_error"]

#: How deeply JSON input may nest: the body or payload itself is level 1, so
#: ``{"settings": {"a": 1}}`` is 2 deep. Far below orjson's output limit of
#: 254 levels, leaving room for the envelopes a stored value is answered in.
MAX_DEPTH = 32

_UNCLEAN = re.compile("[\x00\ud800-\udfff]")
_NUL = "expected text without NUL (U+0000)"
_SURROGATE = "expected text without unpaired surrogates (U+D800-U+DFFF)"
_TOO_DEEP = f"expected JSON nested at most {MAX_DEPTH} levels deep"


def validation_error(errors: list[FieldError]) -> AppError:
    """The 422 ``validation_failed`` naming each of ``errors``' fields."""
    names = ", ".join(f"{e.location}.{e.field}" if e.field else e.location for e in errors)
    message = f"invalid input: {names}"
    return AppError("validation_failed", message, status=422, errors=tuple(errors))


def field_errors(location: str, exc: ValidationError) -> list[FieldError]:
    """A pydantic failure of the input at ``location`` as one FieldError per field."""
    return [
        FieldError(location, ".".join(str(part) for part in error["loc"]), error["msg"])
        for error in exc.errors(include_url=False)
    ]


def unclean(value: Any, location: str) -> list[FieldError]:
    """One FieldError per text of ``value`` holding NUL or a lone surrogate,
    and per container nested deeper than :data:`MAX_DEPTH`; [] when clean.

    ``value`` is a decoded JSON value, or a dict of query or path parameters.
    Field paths are dotted (``settings.theme.2``); a key that is itself
    unclean is shown with its bad characters escaped (``a\\u0000``).
    """
    return [FieldError(location, ".".join(path), message) for path, message in _walk(value, (), 1)]


def loads(raw: bytes | str) -> Any:
    """The JSON value of ``raw``, decoded by orjson.

    orjson refuses a lone surrogate escape outright, which would hide the
    field it is in; for such input the stdlib's value (which keeps the
    surrogate) is returned instead, for :func:`unclean` to name the field.
    Anything else orjson refuses raises its ``orjson.JSONDecodeError`` (a
    ``ValueError``), as does JSON nested beyond either parser's limit (1,024
    levels): there is no value whose fields could be named.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as refused:
        try:
            lenient = json.loads(raw)
        except (ValueError, RecursionError):
            raise refused from None
        if not any(message == _SURROGATE for _, message in _walk(lenient, (), 1)):
            raise refused from None
        return lenient


def _walk(value: Any, path: tuple[str, ...], depth: int) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(value, str):
        yield from ((path, message) for message in _text_problems(value))
    elif isinstance(value, dict | list) and depth > MAX_DEPTH:
        yield path, _TOO_DEEP
    elif isinstance(value, dict):
        for key, item in value.items():
            inner = (*path, _shown(key))
            yield from ((inner, message) for message in _text_problems(key))
            yield from _walk(item, inner, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, (*path, str(index)), depth + 1)


def _text_problems(text: str) -> Iterator[str]:
    found = set(_UNCLEAN.findall(text))
    if "\x00" in found:
        yield _NUL
    if found - {"\x00"}:
        yield _SURROGATE


def _shown(key: str) -> str:
    """``key`` fit for an error document: bad characters as ``\\uXXXX`` text."""
    return _UNCLEAN.sub(lambda match: f"\\u{ord(match.group()):04x}", key)
