"""Where export files live: a small interface, so an S3-like store can come later.

A file becomes visible under its name only once it is completely written;
a write that fails or is cancelled leaves nothing behind. Names are plain
file names (``<job id>.<format>``): no directories, no leading dot.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from hubbub.config import Settings

__all__ = ["FileStore", "Sink", "check_name", "open_store"]

_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}$")


def check_name(name: str) -> str:
    """``name`` if it is a plain file name; ValueError otherwise (a bug, not input)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"expected a plain file name, got {name!r}")
    return name


class Sink(Protocol):
    """A file being written."""

    size: int

    async def write(self, data: bytes) -> None: ...


class FileStore(Protocol):
    """Owns: the stored files. Concurrency: any number of readers and writers,
    one writer per name."""

    def create(self, name: str) -> AbstractAsyncContextManager[Sink]:
        """Write ``name``: it appears when the block ends, not at all if it raises."""
        ...

    async def size(self, name: str) -> int | None:
        """The size of ``name`` in bytes; None if there is no such file."""
        ...

    def read(self, name: str) -> AsyncIterator[bytes]:
        """The content of ``name``, in chunks; FileNotFoundError if there is none."""
        ...

    async def prune(self, before: datetime) -> int:
        """Delete the files, and abandoned partial ones, last written before ``before``;
        how many were deleted."""
        ...


def open_store(settings: Settings) -> FileStore:
    """The deployment's export store: today a local directory (``HUBBUB_EXPORT_DIR``)."""
    from hubbub.exports.store_local import LocalStore

    return LocalStore(settings.export_dir)
