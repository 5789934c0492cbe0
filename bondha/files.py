"""Replacing a file at once: the one way bondha writes a file that others read.

A reader (keepalived's hook, node_exporter, an operator's editor) sees the old file or the
new one, never half of either: the new content goes to a temporary file in the same
directory, gets its mode through the open descriptor (no moment under a name with the
wrong mode), and is renamed over the old one. In a directory held open (the state
directory, :mod:`bondha.node.statedir`) every step goes through that descriptor, so that
the directory cannot be swapped under the write.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["replace_file", "sync_directory"]


def replace_file(path: Path | str, data: bytes, *, mode: int, sync: bool = False,
                 keep_owner: bool = False, dir_fd: int | None = None) -> None:
    """Replace ``path`` by ``data`` atomically, with ``mode``; raises OSError.

    ``sync``: flushed to disk, file and directory, before returning, where a crash must not
    leave an empty file behind. ``keep_owner``: the new file keeps the old one's owner and
    group where this process may set them (as root). ``dir_fd``: ``path`` is a name in the
    directory open as ``dir_fd``; no symbolic link is followed.
    """
    path = Path(path)
    temporary = str(path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    fd = os.open(temporary, flags, 0o600, dir_fd=dir_fd)
    try:
        try:
            os.fchmod(fd, mode)  # the descriptor, whatever the umask
            if keep_owner:
                _keep_owner(path, fd, dir_fd)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, str(path), src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=dir_fd)
        raise
    if sync:
        if dir_fd is not None:
            with contextlib.suppress(OSError):  # not every file system syncs a directory
                os.fsync(dir_fd)
        else:
            sync_directory(path.parent)


def _keep_owner(path: Path, fd: int, dir_fd: int | None) -> None:
    try:
        info = os.stat(str(path), dir_fd=dir_fd, follow_symlinks=False)
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
