"""Which of two keepalived events came first, from what keepalived's fork order leaves behind.

keepalived's VRRP process (one thread, one event loop) forks one notify process per
transition, at the moment it emits the transition, and does not wait for it (keepalived
``core/notify.c``: ``system_call_script`` forks, the child execs the script directly when
it is executable, so the hook keeps the forked PID; ``vrrp/vrrp_notify.c`` forks the
generic ``notify`` script inside ``send_instance_notifies``). The hook processes then race
to record their events: a MASTER forked 31 ms before a BACKUP can record after it. What
the fork leaves behind does not race: two processes forked one after the other by the
same parent have non-decreasing start times and increasing PIDs.

So every hook notes its *lineage*: its own PID and start time (``/proc/self/stat``,
field 22, in clock ticks since boot) and those of its ancestors, nearest first. Two
events are ordered at their nearest common ancestor (normally keepalived's VRRP process;
a wrapper shell that does not ``exec`` the hook only adds a level): the child of that
ancestor on each side was forked by it, one after the other, so

- the later start time is the later fork;
- equal start times (the clock ticks every 10 ms; the two forks fell in one tick) are
  ordered by PID in serial-number arithmetic modulo ``pid_max``: the kernel hands out
  PIDs in increasing order and wraps at ``pid_max`` back to 300, so PID b is later than
  PID a when ``(b - a) mod pid_max`` is less than half of ``pid_max``. That is right as
  long as fewer than ``pid_max / 2`` processes (16384 at the smallest usual ``pid_max``)
  were started in that one tick, which no machine does.

No order (None: the caller falls back to the order of recording) when the two come
from different boots (``boot_id``), when no common ancestor is seen (another PID
namespace, an unreadable ``/proc``), when one is the other's ancestor, or when both are
the same process (the daemon records FIFO lines in the order it reads them: that order
is keepalived's already). An ancestor whose ``/proc`` entry cannot be read (another
user's process under ``hidepid``) is still known by the PID its child names, without a
start time: it is then matched by PID alone.

Pure except for :func:`this_process`, which reads ``/proc``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

__all__ = ["Fork", "Proc", "order", "parse_stat", "this_process"]

_MAX_DEPTH = 16  # ancestors noted: keepalived is one or two levels up, a wrapper adds one
_PID_MAX_FALLBACK = 4194304  # the kernel's upper limit, when /proc/sys cannot be read


@attrs.frozen
class Proc:
    """One process as the kernel saw it: PID and start time (None: not readable)."""

    pid: int
    start: int | None


@attrs.frozen
class Fork:
    """What a process's fork left behind: its lineage (itself first), pid_max and boot id."""

    lineage: tuple[Proc, ...]
    pid_max: int
    boot_id: str

    def to_json(self) -> dict[str, Any]:
        return {"lineage": [[p.pid, p.start] for p in self.lineage], "pid_max": self.pid_max,
                "boot_id": self.boot_id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fork:
        lineage = tuple(Proc(int(pid), None if start is None else int(start))
                        for pid, start in data["lineage"])
        return cls(lineage, int(data["pid_max"]), str(data["boot_id"]))


def parse_stat(text: str) -> tuple[int, int, int]:
    """(pid, ppid, start time in clock ticks) from a ``/proc/PID/stat`` line.

    The command name (field 2) is in parentheses and may itself hold spaces and
    parentheses, so the fields are counted from the last ``)``.
    """
    head, _, tail = text.rpartition(")")
    pid = int(head.split("(", 1)[0])
    fields = tail.split()  # fields[0] is field 3 (state)
    return pid, int(fields[1]), int(fields[19])


def _read_stat(proc: Path, pid: str) -> tuple[int, int, int] | None:
    try:
        return parse_stat((proc / pid / "stat").read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError, IndexError):
        return None


def this_process(proc: Path = Path("/proc")) -> Fork | None:
    """This process's fork record; None where ``/proc`` does not tell (not Linux)."""
    own = _read_stat(proc, "self")
    if own is None:
        return None
    pid, ppid, start = own
    lineage = [Proc(pid, start)]
    while ppid > 0 and len(lineage) <= _MAX_DEPTH:
        parent = _read_stat(proc, str(ppid))
        if parent is None:
            lineage.append(Proc(ppid, None))  # exists, but its entry is not ours to read
            break
        pid, next_ppid, start = parent
        if lineage[-1].start is not None and start > lineage[-1].start:
            break  # started after its "child": the PID was reused meanwhile; stop here
        lineage.append(Proc(pid, start))
        ppid = next_ppid
    return Fork(tuple(lineage), _pid_max(proc), _boot_id(proc))


def _pid_max(proc: Path) -> int:
    try:
        return int((proc / "sys/kernel/pid_max").read_text().strip())
    except (OSError, ValueError):
        return _PID_MAX_FALLBACK


def _boot_id(proc: Path) -> str:
    try:
        return (proc / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _same(a: Proc, b: Proc) -> bool:
    return a.pid == b.pid and (a.start is None or b.start is None or a.start == b.start)


def _common_ancestor(a: Sequence[Proc], b: Sequence[Proc]) -> tuple[int, int] | None:
    """Indexes of the nearest process both lineages share, or None."""
    for i, mine in enumerate(a):
        for j, theirs in enumerate(b):
            if _same(mine, theirs):
                return i, j
    return None


def _serial_later(a: int, b: int, modulus: int) -> int:
    """1 when PID b was handed out after PID a (allowing for wrap-around), -1 before, 0 same."""
    distance = (b - a) % modulus
    if distance == 0:
        return 0
    return 1 if distance < modulus / 2 else -1


def order(a: Fork, b: Fork) -> int | None:
    """-1 when ``a`` was forked before ``b``, 1 after, None when the fork order does not say."""
    if a.boot_id != b.boot_id or not a.boot_id:
        return None
    found = _common_ancestor(a.lineage, b.lineage)
    if found is None or 0 in found:
        return None  # nothing shared, the same process, or one is the other's ancestor
    mine, theirs = a.lineage[found[0] - 1], b.lineage[found[1] - 1]
    if mine.start is None or theirs.start is None:
        return None  # pragma: no cover - only an ancestor's entry can be unreadable
    if mine.start != theirs.start:
        return -1 if mine.start < theirs.start else 1
    later = _serial_later(mine.pid, theirs.pid, max(a.pid_max, b.pid_max))
    return None if later == 0 else -later
