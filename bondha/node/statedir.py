"""The state directory: one lock and one event record per node, shared by hook and daemon.

keepalived starts a notify hook per transition without waiting for the last one, so two
runs can overlap on one node. Two files serialise them and let the newest event win:

``event``
    The newest keepalived event this node has seen, with a sequence number. Taking a
    :class:`Ticket` increments it (under ``event.lock``, a few microseconds) and records
    the event; the file is replaced atomically, so readers never see half of it.
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
import pwd
import shlex
import stat
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Callable

import attrs

from ..config import Config
from ..errors import StateError, StateOwnerError, Superseded
from ..files import replace_file

__all__ = ["DEFAULT_STATE_DIR", "STATE_DIR_ENV", "StateDir", "Ticket", "state_dir_of",
           "state_dir_path"]

DEFAULT_STATE_DIR = Path("/run/bondha")
STATE_DIR_ENV = "BONDHA_STATE_DIR"
_POLL = 0.02  # seconds between tries of a busy lock


def state_dir_path(configured: Path | None, environ: Mapping[str, str] = os.environ) -> Path:
    """``$BONDHA_STATE_DIR``, else ``[bondha] state_dir``, else ``/run/bondha``."""
    if environ.get(STATE_DIR_ENV):
        return Path(environ[STATE_DIR_ENV])
    return configured or DEFAULT_STATE_DIR


def state_dir_of(config: Config, environ: Mapping[str, str] = os.environ) -> Path:
    """This node's state directory for ``config``: the one place it is derived."""
    return state_dir_path(config.ha.state_dir, environ)


@attrs.frozen
class Ticket:
    """One recorded keepalived event: its place in the node's sequence and what it said."""

    seq: int
    event: str  # the event as keepalived said it, e.g. "INSTANCE VI_1 MASTER 10"
    pid: int = 0
    at: float = 0.0  # wall-clock time it was recorded

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Ticket:
        return cls(int(data["seq"]), str(data["event"]), int(data.get("pid", 0)),
                   float(data.get("at", 0.0)))


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _command() -> str:
    """This command line, for advice to run it again another way."""
    argv = list(sys.argv)
    if not argv or not os.access(argv[0], os.X_OK) or argv[0].endswith("__main__.py"):
        return "<the same command>"
    return shlex.join(argv)


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
        if os.geteuid() == 0 and info.st_uid != 0 and not info.st_mode & 0o022:
            # Root running the hook by hand (the how-to's test step) on a node whose hook runs
            # as keepalived's script_user: chown would break the real hook; run as that user.
            owner = _user_name(info.st_uid)
            raise StateOwnerError(
                f"state directory {self.path}: belongs to {owner}, the user the hook runs "
                f"as; run this as that user, not as root: runuser -u {owner} -- {_command()}")
        if info.st_mode & 0o022 or info.st_uid != os.geteuid():
            raise StateError(f"state directory {self.path}: must be owned by this user and "
                             f"writable by no one else (mode {stat.S_IMODE(info.st_mode):04o}); "
                             "another user could forge events")
        return self

    # -- the event record -----------------------------------------------------------------

    def current(self) -> Ticket | None:
        """The newest recorded event, or None when none was recorded yet."""
        try:
            text = self.record_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"{self.record_path}: cannot read: {exc.strerror or exc}") from None
        try:
            return Ticket.from_json(json.loads(text))
        except (ValueError, KeyError, TypeError):
            raise StateError(f"{self.record_path}: not an event record written by bondha; "
                             "remove it") from None

    def take_ticket(self, event: str) -> Ticket:
        """Record ``event`` as the newest one; every older ticket is stale from now on."""
        with self._locked("event.lock", wait=True):
            last = self.current()
            ticket = Ticket((last.seq if last else 0) + 1, event, os.getpid(), time.time())
            self._write_record(ticket)
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

    def _write_record(self, ticket: Ticket) -> None:
        try:
            replace_file(self.record_path, json.dumps(ticket.to_json()).encode("utf-8"),
                         mode=0o600)
        except OSError as exc:
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
