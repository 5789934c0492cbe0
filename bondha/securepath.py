"""Is a directory safe to trust? The check OpenSSH makes of its files, for a directory.

A directory that another local user could replace, or write into, lets that user forge
what bondha reads from it (a keepalived event with a higher sequence number moves every
object to the other bond). :func:`check_private_dir` walks the path from ``/`` with
``lstat`` and refuses it unless

- every directory on the way is owned by root or by this user, and writable by no one
  else, or sticky (``/tmp``: others may add entries there, not replace ours);
- every symbolic link on the way is owned by root or by this user (its target is then
  walked the same way);
- the directory itself is a real directory (not a link), owned by this user, and
  writable by no one else.

It returns the ``(st_dev, st_ino)`` of the directory, for comparing with the descriptor
the caller then opens (:func:`open_private_dir`): what was checked is what is used.
Standard library only.
"""

from __future__ import annotations

import os
import stat
from pathlib import PurePosixPath

__all__ = ["UnsafePath", "check_parents", "check_private_dir", "fifo_problem", "open_private_dir"]

_MAX_LINKS = 40  # as the kernel's own limit on links followed in one lookup


class UnsafePath(Exception):
    """The path cannot be trusted; the message names the component and why."""


def _owner_ok(info: os.stat_result, uid: int) -> bool:
    return info.st_uid in (0, uid)


def check_private_dir(path: str | os.PathLike[str], uid: int | None = None) -> tuple[int, int]:
    """Check ``path`` as described above; ``uid`` defaults to the effective user."""
    return _walk(path, uid)[1:]


def check_parents(path: str | os.PathLike[str], uid: int | None = None) -> None:
    """Check the directories leading to the file ``path`` (its own directory included) as
    parents: no one but root or this user could replace the file."""
    _walk(os.path.dirname(os.path.abspath(path)), uid, final_as_parent=True)


def _walk(path: str | os.PathLike[str], uid: int | None, *,
          final_as_parent: bool = False) -> tuple[PurePosixPath, int, int]:
    uid = os.geteuid() if uid is None else uid
    pending = list(PurePosixPath(os.path.abspath(path)).parts[1:])
    current = PurePosixPath("/")
    links = 0
    info = os.lstat(current)
    _check_parent(current, info, uid)
    while pending:
        name = pending.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            current = current.parent
            continue
        candidate = current / name
        info = os.lstat(candidate)  # FileNotFoundError and the like: the caller's to word
        if stat.S_ISLNK(info.st_mode):
            if not _owner_ok(info, uid):
                raise UnsafePath(f"{candidate} is a symbolic link owned by uid {info.st_uid}, "
                                 "who could point it elsewhere")
            links += 1
            if links > _MAX_LINKS:
                raise UnsafePath(f"{path}: too many symbolic links")
            target = PurePosixPath(os.readlink(candidate))
            if target.is_absolute():
                current = PurePosixPath("/")
            pending[:0] = [p for p in target.parts if p != "/"]
            continue
        if not stat.S_ISDIR(info.st_mode):
            raise UnsafePath(f"{candidate} is not a directory")
        current = candidate
        if pending:
            _check_parent(current, info, uid)
    if final_as_parent:
        _check_parent(current, info, uid)
    else:
        _check_final(current, info, uid)
    return current, info.st_dev, info.st_ino


def _check_final(path: PurePosixPath, info: os.stat_result, uid: int) -> None:
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePath(f"{path} is not a directory")
    if info.st_uid != uid:
        raise UnsafePath(f"{path} is owned by uid {info.st_uid}, not by this user (uid {uid})")
    if info.st_mode & 0o022:
        raise UnsafePath(f"{path} may be written by group or others (mode "
                         f"{stat.S_IMODE(info.st_mode):04o})")


def _check_parent(path: PurePosixPath, info: os.stat_result, uid: int) -> None:
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePath(f"{path} is not a directory")
    if not _owner_ok(info, uid):
        raise UnsafePath(f"{path} (a parent) is owned by uid {info.st_uid}, who could "
                         "replace what is below it")
    if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
        raise UnsafePath(f"{path} (a parent) may be written by group or others and is not "
                         f"sticky (mode {stat.S_IMODE(info.st_mode):04o}): they could "
                         "replace what is below it")


def open_private_dir(path: str | os.PathLike[str], uid: int | None = None) -> int:
    """Check ``path`` and open it (``O_DIRECTORY``, ``O_NOFOLLOW``): a descriptor of the very
    directory checked, for ``dir_fd`` access that a later swap of the path cannot redirect."""
    resolved, *checked = _walk(path, uid)
    fd = os.open(resolved, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    info = os.fstat(fd)
    if [info.st_dev, info.st_ino] != checked:
        os.close(fd)
        raise UnsafePath(f"{path} changed while it was checked")
    return fd


def fifo_problem(info: os.stat_result, uid: int | None = None) -> str | None:
    """Why a FIFO with this ``lstat`` must not be read, or None."""
    uid = os.geteuid() if uid is None else uid
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISFIFO(info.st_mode):
        return "exists and is not a FIFO"
    if info.st_uid != uid:
        return (f"owned by uid {info.st_uid}, not by the daemon's user (uid {uid}): "
                "remove it and let `bondha daemon` create it before keepalived starts")
    if mode & 0o066:
        return (f"group or others may read or write it (mode {mode:04o}): another reader "
                "steals keepalived's lines, a writer forges them; chmod 600 it (keepalived "
                "creates a missing FIFO with mode 0644: start the daemon first)")
    return None
