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
from pathlib import Path
from typing import BinaryIO

from hubbub.exports.store import check_name

__all__ = ["LocalStore"]

CHUNK = 256 * 1024


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

    def _open_part(self, part: Path) -> BinaryIO:
        self.root.mkdir(parents=True, exist_ok=True)
        return part.open("xb")
