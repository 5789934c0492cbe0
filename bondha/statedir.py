"""The state directory: one lock and one event record per node, shared by hook and daemon.

keepalived starts a notify hook per transition without waiting for the last one, so two
runs can overlap on one node. Two files serialise them and let the newest event win:

``event``
    The newest keepalived event this node has seen, with a sequence number. Taking a
    :class:`Ticket` increments it (under ``event.lock``, a few microseconds) and records
    the event; the file is replaced atomically, so readers never see half of it.
    "Newest" is keepalived's order of emission where the hook's fork record tells it
    (:mod:`bondha.node.forkorder`): an event recorded after one that keepalived emitted
    later gets a number but never becomes the newest.
``apply.lock``
    Held (``flock``) by the one run that may write. A run waits for it only while its
    ticket is still the newest; a run whose ticket went stale gives up without a write.

A run checks its ticket before every write (:meth:`StateDir.guard`): once a newer event
has been recorded it raises :class:`~bondha.errors.Superseded` and writes no more.

The directory is ``[bondha] state_dir``, overridden by ``$BONDHA_STATE_DIR``, else
``/run/bondha``; two "nodes" on one machine (tests) simply use two directories.
Standard library only: no HTTP here.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Callable

import attrs

from .errors import StateError, Superseded
from .node.forkorder import Fork, order

__all__ = ["DEFAULT_STATE_DIR", "STATE_DIR_ENV", "StateDir", "Ticket", "state_dir_path"]

DEFAULT_STATE_DIR = Path("/run/bondha")
STATE_DIR_ENV = "BONDHA_STATE_DIR"
_POLL = 0.02  # seconds between tries of a busy lock


def state_dir_path(configured: Path | None, environ: Mapping[str, str] = os.environ) -> Path:
    """``$BONDHA_STATE_DIR``, else ``[bondha] state_dir``, else ``/run/bondha``."""
    if environ.get(STATE_DIR_ENV):
        return Path(environ[STATE_DIR_ENV])
    return configured or DEFAULT_STATE_DIR


@attrs.frozen
class Ticket:
    """One recorded keepalived event: its place in the node's sequence and what it said."""

    seq: int
    event: str  # the event as keepalived said it, e.g. "INSTANCE VI_1 MASTER 10"
    pid: int = 0
    at: float = 0.0  # wall-clock time it was recorded
    fork: Fork | None = None  # the recording hook's fork record; None: the daemon, a test
    previous: str | None = None  # the newest event when this one became the newest
    # Set when keepalived emitted this event before the already recorded event of that
    # sequence number (the hooks recorded in the opposite order): it never was the newest.
    emitted_before: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self, recurse=False)
        data["fork"] = self.fork.to_json() if self.fork else None
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Ticket:
        fork, previous = data.get("fork"), data.get("previous")
        return cls(int(data["seq"]), str(data["event"]), int(data.get("pid", 0)),
                   float(data.get("at", 0.0)), Fork.from_json(fork) if fork else None,
                   None if previous is None else str(previous))


class StateDir:
    """The lock and the event record of one node."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def record_path(self) -> Path:
        return self.path / "event"

    def ensure(self) -> StateDir:
        """Create the directory (mode 0700) if needed; refuse one that others may write to."""
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = self.path.stat()
        except OSError as exc:
            raise StateError(f"state directory {self.path}: cannot create it: "
                             f"{exc.strerror or exc}") from None
        if not stat.S_ISDIR(info.st_mode):
            raise StateError(f"state directory {self.path}: exists and is not a directory")
        if info.st_mode & 0o022 or info.st_uid != os.geteuid():
            raise StateError(f"state directory {self.path}: must be owned by this user and "
                             f"writable by no one else (mode {stat.S_IMODE(info.st_mode):04o}); "
                             "another user could forge events")
        return self

    # -- the event record -----------------------------------------------------------------

    def current(self) -> Ticket | None:
        """The newest recorded event, or None when none was recorded yet."""
        return self._read_record()[0]

    def _read_record(self) -> tuple[Ticket | None, int]:
        """The newest event and the last sequence number handed out (0: none yet)."""
        try:
            text = self.record_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None, 0
        except OSError as exc:
            raise StateError(f"{self.record_path}: cannot read: {exc.strerror or exc}") from None
        try:
            data = json.loads(text)
            ticket = Ticket.from_json(data)
            return ticket, max(ticket.seq, int(data.get("last_seq", 0)))
        except (ValueError, KeyError, TypeError):
            raise StateError(f"{self.record_path}: not an event record written by bondha; "
                             "remove it") from None

    def take_ticket(self, event: str, fork: Fork | None = None) -> Ticket:
        """Record ``event`` as the newest one; every older ticket is stale from now on.

        With ``fork`` (the recording hook's fork record) an event that keepalived emitted
        before the recorded newest one is numbered but not made the newest: the ticket
        comes back with ``emitted_before`` set, and is stale from the start.
        """
        with self._locked("event.lock", wait=True):
            last, last_seq = self._read_record()
            ticket = Ticket(last_seq + 1, event, os.getpid(), time.time(), fork,
                            last.event if last else None)
            if (last is not None and fork is not None and last.fork is not None
                    and order(fork, last.fork) == -1):
                ticket = attrs.evolve(ticket, previous=None, emitted_before=last.seq)
                self._write_record(last, ticket.seq)
            else:
                self._write_record(ticket, ticket.seq)
        return ticket

    def is_current(self, ticket: Ticket) -> bool:
        last = self.current()
        return last is not None and last.seq == ticket.seq

    def guard(self, ticket: Ticket,
              stopping: Callable[[], str | None] | None = None) -> Callable[[], None]:
        """A check to call before each write: raises Superseded once ``ticket`` is stale.

        ``stopping`` returns a reason (e.g. "shutting down") when the run must stop anyway.
        """

        def check() -> None:
            reason = stopping() if stopping is not None else None
            if reason:
                raise Superseded(f"{reason}: stopped before the next write")
            last = self.current()
            if last is None or last.seq != ticket.seq:
                newer = f"event {last.seq} ({last.event})" if last else "a reset state directory"
                raise Superseded(f"event {ticket.seq} ({ticket.event}) superseded by {newer}: "
                                 "stopped before the next write")

        return check

    def _write_record(self, ticket: Ticket, last_seq: int) -> None:
        fd, temporary = tempfile.mkstemp(dir=self.path, prefix=".event.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                json.dump({**ticket.to_json(), "last_seq": last_seq}, stream)
            os.replace(temporary, self.record_path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise StateError(f"{self.record_path}: cannot write: {exc.strerror or exc}") from None

    # -- the apply lock ---------------------------------------------------------------------

    @contextlib.contextmanager
    def hold(self, ticket: Ticket, *, timeout: float,
             stopping: Callable[[], str | None] | None = None) -> Iterator[None]:
        """Hold the apply lock for ``ticket``'s run; Superseded if a newer event comes first.

        Waits at most ``timeout`` seconds (a holder is bounded by its own deadline, and
        stops at its next write once this newer ticket exists), then raises StateError.
        """
        check = self.guard(ticket, stopping)
        give_up = time.monotonic() + timeout
        with self._locked("apply.lock", wait=False, check=check, give_up=give_up):
            check()  # a newer event may have come while we waited
            yield

    def exclusive(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Hold the lock file ``name``, waiting for it: for short critical sections (records)."""
        return self._locked(name, wait=True)

    @contextlib.contextmanager
    def _locked(self, name: str, *, wait: bool, check: Callable[[], None] | None = None,
                give_up: float | None = None) -> Iterator[None]:
        path = self.path / name
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StateError(f"{path}: cannot open the lock: {exc.strerror or exc}") from None
        try:
            if wait:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                self._poll_lock(fd, path, check, give_up)
            yield
        finally:
            os.close(fd)  # releases the lock

    @staticmethod
    def _poll_lock(fd: int, path: Path, check: Callable[[], None] | None,
                   give_up: float | None) -> None:
        while True:
            if check is not None:
                check()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise StateError(f"{path}: cannot lock: {exc.strerror or exc}") from None
            else:
                return
            if give_up is not None and time.monotonic() >= give_up:
                raise StateError(f"{path}: another bondha run holds the lock for too long; "
                                 "is one stuck?")
            time.sleep(_POLL)
