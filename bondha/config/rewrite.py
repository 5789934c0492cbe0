"""Editing swap-active-bond.conf in place: one section replaced, every other line kept.

configparser would drop the comments, so the replacement works on lines; the
write is atomic (a temporary file renamed over the old one), mode 0600 (the
file holds the password), after a backup copy of the old file.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path

from ..errors import ConfigError
from ..files import replace_file

__all__ = ["replace_section", "write_with_backup"]

_HEADER = re.compile(r"\[(?P<header>.+)\]")  # configparser's own SECTCRE
_COMMENT_PREFIXES = ("#", ";")


def _header(line: str) -> str | None:
    """The section a line opens, read as configparser reads it (indented lines never do)."""
    if line[:1].isspace():
        return None
    match = _HEADER.match(line.strip())
    return match.group("header") if match else None


def _is_comment(line: str) -> bool:
    return line.strip().startswith(_COMMENT_PREFIXES)


def replace_section(text: str, name: str, section: str, *, drop_comment: str = "") -> str:
    """``text`` with section ``name`` replaced by ``section`` (which starts with its header).

    Comments inside the old section are kept, right under the new header (except those
    starting with ``drop_comment``: the previous replacement's own note); blank and
    comment lines at its end stay where they are, as they usually introduce the next
    section. A missing section is appended.
    """
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if _header(line) == name]
    if len(starts) > 1:
        raise ValueError(f"[{name}] appears {len(starts)} times")
    new = [line + newline for line in section.rstrip("\n").split("\n")]
    if not starts:
        tail = "" if not text or text.endswith(("\n", "\r")) else newline
        return text + tail + (newline if text.strip() else "") + "".join(new)
    start = starts[0]
    end = next((i for i in range(start + 1, len(lines)) if _header(lines[i]) is not None),
               len(lines))
    cut = end
    while cut > start + 1 and (not lines[cut - 1].strip() or _is_comment(lines[cut - 1])):
        cut -= 1
    kept = [line if line.endswith(("\n", "\r")) else line + newline
            for line in lines[start + 1:cut]
            if _is_comment(line) and not (drop_comment and line.strip().startswith(drop_comment))]
    return "".join([*lines[:start], new[0], *kept, *new[1:], *lines[cut:]])


def write_with_backup(path: Path, text: str, now: datetime | None = None) -> Path | None:
    """Replace the file at ``path`` by ``text`` atomically, mode 0600; return the backup's path.

    The old file (if any) is first copied to ``PATH.bak-YYYYmmddTHHMMSS``, also mode 0600.
    """
    stamp = (now or datetime.now()).strftime("%Y%m%dT%H%M%S")
    backup = None
    try:
        old = path.read_bytes() if path.exists() else None
        if old is not None:
            backup = _exclusive_copy(path, old, stamp)
        replace_file(path, text.encode("utf-8"), mode=0o600, sync=True,
                     keep_owner=old is not None)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the config file: "
                          f"{exc.strerror or exc}") from None
    return backup


def _exclusive_copy(path: Path, data: bytes, stamp: str) -> Path:
    """A new file beside ``path`` holding ``data``; never overwrites an earlier backup."""
    for attempt in range(100):
        backup = path.with_name(f"{path.name}.bak-{stamp}" + (f".{attempt}" if attempt else ""))
        try:
            fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            os.fsync(out.fileno())
        return backup
    raise FileExistsError(f"too many backups of {path.name} at {stamp}")
