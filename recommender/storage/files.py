"""Writing files the way the index does: created anew, flushed, checked.

Every file a writer creates is created anew (O_EXCL: never through a symbolic link, never
over a file already there), and flushed before anything names it.
"""

from __future__ import annotations

import mmap
import os
import zlib
from pathlib import Path

from ..errors import IndexWriteError


def create_new(path: Path) -> int:
    """A file descriptor for writing a new file at ``path``: never through a symbolic link,
    never over a file already there (IndexWriteError naming it)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o644)
    except FileExistsError:
        raise IndexWriteError(
            f"cannot write {path}: something is already there (a file or link the index did "
            "not make); nothing was changed"
        ) from None


def write_new(path: Path, data: bytes) -> None:
    """Write and flush a new file (see ``create_new``)."""
    fd = create_new(path)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)  # ours: just created
        raise
    os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def crc32_of(path: Path) -> int:
    """CRC32 of a file, read through a memory map (no copy: the pages a reader maps anyway)."""
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return 0
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return zlib.crc32(mapped)


def file_signature(path: Path) -> tuple[int, int, int]:
    """What tells a file changed: inode, size and modification time ((0, 0, 0): none there)."""
    try:
        info = path.stat()
    except OSError:
        return (0, 0, 0)
    return (info.st_ino, info.st_size, info.st_mtime_ns)
