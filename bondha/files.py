"""Replacing a file at once: the one way bondha writes a file that others read.

A reader (keepalived's hook, node_exporter, an operator's editor) sees the old file or the
new one, never half of either: the new content goes to a temporary file in the same
directory, gets its mode through the open descriptor (no moment under a name with the
wrong mode), and is renamed over the old one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["replace_file", "sync_directory"]


def replace_file(path: Path, data: bytes, *, mode: int, sync: bool = False,
                 keep_owner: bool = False) -> None:
    """Replace ``path`` by ``data`` atomically, with ``mode``; raises OSError.

    ``sync``: flushed to disk, file and directory, before returning, where a crash must not
    leave an empty file behind. ``keep_owner``: the new file keeps the old one's owner and
    group where this process may set them (as root).
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            os.fchmod(stream.fileno(), mode)
            if keep_owner:
                _keep_owner(path, stream.fileno())
            if sync:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    if sync:
        sync_directory(path.parent)


def _keep_owner(path: Path, fd: int) -> None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    with contextlib.suppress(PermissionError):
        os.fchown(fd, info.st_uid, info.st_gid)


def sync_directory(directory: Path) -> None:
    """Flush a directory's entries (a rename, a new file) to disk, where it can be."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some file systems cannot sync a directory
            os.fsync(fd)
    finally:
        os.close(fd)
