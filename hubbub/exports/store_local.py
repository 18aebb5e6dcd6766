"""The export store in a local directory (``HUBBUB_EXPORT_DIR``).

Gateways and job workers must share the directory (one machine, or a shared
volume). A file is written as a hidden ``.<name>.<random>.part`` beside its
final name and renamed into place when complete, so a reader never sees half
a file; file I/O runs in threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from hubbub.exports.store import check_name

__all__ = ["LocalStore"]

CHUNK = 256 * 1024


def _written_before(path: Path, before: float) -> bool:
    try:
        return path.stat().st_mtime < before
    except FileNotFoundError:  # another gateway pruned it meanwhile
        return False


def _is_export(name: str) -> bool:
    """A finished file or a part of one (not, e.g., the link key beside them)."""
    if name.endswith(".part"):
        return True
    try:
        check_name(name)
    except ValueError:
        return False
    return True


class LocalSink:
    """A file being written to its ``.part`` path."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.size = 0

    async def write(self, data: bytes) -> None:
        await asyncio.to_thread(self._file.write, data)
        self.size += len(data)


class LocalStore:
    """Owns: the files of one directory. Concurrency: see :class:`FileStore`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @contextlib.asynccontextmanager
    async def create(self, name: str) -> AsyncIterator[LocalSink]:
        final = self.root / check_name(name)
        part = self.root / f".{name}.{secrets.token_hex(4)}.part"
        file = await asyncio.to_thread(self._open_part, part)
        try:
            with file:
                yield LocalSink(file)
            await asyncio.to_thread(part.replace, final)
        finally:
            await asyncio.to_thread(part.unlink, missing_ok=True)

    async def size(self, name: str) -> int | None:
        path = self.root / check_name(name)
        try:
            return (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError:
            return None

    async def read(self, name: str) -> AsyncIterator[bytes]:
        file = await asyncio.to_thread((self.root / check_name(name)).open, "rb")
        with file:
            while chunk := await asyncio.to_thread(file.read, CHUNK):
                yield chunk

    async def prune(self, before: datetime) -> int:
        return await asyncio.to_thread(self._prune, before.timestamp())

    def _prune(self, before: float) -> int:
        if not self.root.is_dir():
            return 0
        pruned = 0
        for path in self.root.iterdir():
            if _is_export(path.name) and _written_before(path, before):
                path.unlink(missing_ok=True)
                pruned += 1
        return pruned

    def _open_part(self, part: Path) -> BinaryIO:
        self.root.mkdir(parents=True, exist_ok=True)
        return part.open("xb")
