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
import logging
import math
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
from ..errors import StateDirError, StateError, StateOwnerError, Superseded
from ..files import replace_file
from ..securepath import UnsafePath, open_private_dir
from .forkorder import Fork, order

__all__ = ["DEFAULT_STATE_DIR", "STATE_DIR_ENV", "StateDir", "Ticket", "state_dir_of",
           "state_dir_path"]

DEFAULT_STATE_DIR = Path("/run/bondha")
STATE_DIR_ENV = "BONDHA_STATE_DIR"
_POLL = 0.02  # seconds between tries of a busy lock
_MAX_RECORD = 64 * 1024  # an event record is a few hundred bytes
log = logging.getLogger("bondha")


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
    fork: Fork | None = None  # the recording hook's fork record; None: the daemon, a test
    previous: str | None = None  # the newest event when this one became the newest
    # Set when keepalived emitted this event before the already recorded event of that
    # sequence number (the hooks recorded in the opposite order): it never was the newest.
    emitted_before: int | None = None
    # False: the record could not be written (a full disk); the run goes on, superseded
    # only by a record newer than ``seq``, the newest one it saw.
    recorded: bool = True

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self, recurse=False,
                            filter=lambda field, _value: field.name != "recorded")
        data["fork"] = self.fork.to_json() if self.fork else None
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Ticket:
        """The ticket of a record; ValueError for anything bondha would not have written."""
        if not isinstance(data, Mapping):
            raise ValueError("not an object")
        seq, event = data["seq"], data["event"]
        pid, at = data.get("pid", 0), data.get("at", 0.0)
        if not _whole(seq) or not 0 < seq < 2 ** 63 or not _whole(pid) or pid < 0:
            raise ValueError("seq and pid must be whole numbers in range")
        if not isinstance(event, str) or not event or len(event) > _MAX_RECORD:
            raise ValueError("event must be text")
        if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
            raise ValueError("at must be a finite number")
        fork, previous = data.get("fork"), data.get("previous")
        if previous is not None and (not isinstance(previous, str)
                                     or len(previous) > _MAX_RECORD):
            raise ValueError("previous must be text")
        return cls(seq, event, pid, float(at), fork=Fork.from_json(fork) if fork else None,
                   previous=previous)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
        # Once ensure()d: the directory as checked, held open; every file in it is reached
        # through this descriptor (dir_fd), so that swapping the path changes nothing.
        self.fd: int | None = None

    def __del__(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)

    @property
    def record_path(self) -> Path:
        return self.path / "event"

    def _refuse_root_on_the_hook_users_dir(self) -> None:
        """Root running the hook by hand (the how-to's test step) on a node whose hook runs
        as keepalived's script_user: chown would break the real hook; run as that user."""
        try:
            info = os.lstat(self.path)
        except OSError:
            return  # open_private_dir says what is wrong
        if (os.geteuid() == 0 and stat.S_ISDIR(info.st_mode) and info.st_uid != 0
                and not info.st_mode & 0o022):
            owner = _user_name(info.st_uid)
            raise StateOwnerError(
                f"state directory {self.path}: belongs to {owner}, the user the hook runs "
                f"as; run this as that user, not as root: runuser -u {owner} -- {_command()}")

    def ensure(self) -> StateDir:
        """Create the directory (mode 0700) if needed; check it and every parent as OpenSSH
        checks its files (:mod:`bondha.securepath`), and hold it open."""
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StateDirError(f"state directory {self.path}: cannot create it: "
                                f"{exc.strerror or exc}") from None
        self._refuse_root_on_the_hook_users_dir()
        self._hold(None, "; another user could forge events")
        return self

    def _hold(self, owner: int | None, unsafe: str = "") -> None:
        """Open the checked directory and keep it: every file in it is reached through it."""
        try:
            fd = open_private_dir(self.path, owner)
        except UnsafePath as exc:
            raise StateDirError(f"state directory {self.path}: {exc}{unsafe}") from None
        except OSError as exc:
            raise StateDirError(f"state directory {self.path}: cannot use it: "
                                f"{exc.strerror or exc}") from None
        if self.fd is not None:
            os.close(self.fd)
        self.fd = fd

    def attach(self) -> bool:
        """Hold the directory open if it exists, for a record of a process that runs beside
        the hook: the announcer of :mod:`bondha.node.announce`, which the bonding software
        runs as root. False when there is no directory (it is never created here).

        Checked as :meth:`ensure` checks it, but for the user who owns it when root asks:
        root may keep its own records in the directory of the hook's user (written through
        the held descriptor, no symbolic link followed), never the node's event record.
        """
        try:
            owner = os.stat(self.path).st_uid
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StateDirError(f"state directory {self.path}: cannot use it: "
                                f"{exc.strerror or exc}") from None
        self._hold(owner if os.geteuid() == 0 else None)
        return True

    # -- files, through the held descriptor once there is one ------------------------------

    def _where(self, name: str) -> tuple[str, int | None]:
        return (name, self.fd) if self.fd is not None else (str(self.path / name), None)

    def open(self, name: str, flags: int, mode: int = 0o600) -> int:
        """``os.open`` of ``name`` in the directory (never following a symbolic link)."""
        where, dir_fd = self._where(name)
        return os.open(where, flags | os.O_CLOEXEC | os.O_NOFOLLOW, mode, dir_fd=dir_fd)

    def size(self, name: str) -> int:
        where, dir_fd = self._where(name)
        return os.stat(where, dir_fd=dir_fd, follow_symlinks=False).st_size

    def rename(self, source: str, target: str) -> None:
        src, src_fd = self._where(source)
        dst, dst_fd = self._where(target)
        os.replace(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd)

    def unlink(self, name: str) -> None:
        where, dir_fd = self._where(name)
        os.unlink(where, dir_fd=dir_fd)

    def read_bytes(self, name: str, limit: int) -> bytes:
        """At most ``limit`` bytes of a regular file ``name`` (more: ValueError)."""
        fd = self.open(name, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ValueError("not a regular file")
            data = os.read(fd, limit + 1)
        finally:
            os.close(fd)
        if len(data) > limit:
            raise ValueError("too large")
        return data

    def write_atomic(self, name: str, data: bytes, mode: int = 0o600, *,
                     durable: bool = True) -> None:
        """Replace ``name`` with ``data`` whole (:func:`bondha.files.replace_file`, through the
        held descriptor). ``durable``: fsynced, file and directory, so that a crash leaves the
        old file or the new one, never an empty one (a few milliseconds on a disk, nothing on
        the tmpfs of ``/run``)."""
        where, dir_fd = self._where(name)
        replace_file(where, data, mode=mode, sync=durable, dir_fd=dir_fd)

    # -- the event record -----------------------------------------------------------------

    def current(self) -> Ticket | None:
        """The newest recorded event, or None when none was recorded yet.

        A record bondha would not have written (empty after a crash, garbled, a sequence
        number out of range) is not obeyed: it is renamed aside (``event.corrupt-TIME``,
        logged at error priority) and counts as none. Unreadable: StateError.
        """
        return self._current(set_aside=self.fd is not None)

    def _current(self, *, set_aside: bool) -> Ticket | None:
        return self._read_record(set_aside=set_aside)[0]

    def _read_record(self, *, set_aside: bool) -> tuple[Ticket | None, int]:
        """The newest event and the last sequence number handed out (0: none yet)."""
        try:
            data = self.read_bytes("event", _MAX_RECORD)
        except FileNotFoundError:
            return None, 0
        except ValueError as exc:
            self._corrupt(str(exc), set_aside)
            return None, 0
        except OSError as exc:
            raise StateError(f"{self.record_path}: cannot read: {exc.strerror or exc}") from None
        try:
            record = json.loads(data.decode("utf-8"))
            ticket = Ticket.from_json(record)
            last_seq = record.get("last_seq", 0)
            if not _whole(last_seq) or not 0 <= last_seq < 2 ** 63:
                raise ValueError("last_seq must be a whole number in range")
            return ticket, max(ticket.seq, last_seq)
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError,
                AttributeError) as exc:
            self._corrupt(str(exc) or type(exc).__name__, set_aside)
            return None, 0

    def _corrupt(self, why: str, set_aside: bool) -> None:
        """Log a record that is not ours; rename it aside unless only reading."""
        if not set_aside:  # a read-only view (status --local) renames nothing
            log.warning("%s: not an event record written by bondha (%s); ignored: this "
                        "node's keepalived state is unknown", self.record_path, why[:80])
            return
        aside = f"event.corrupt-{time.time():.0f}"
        try:
            self.rename("event", aside)
        except FileNotFoundError:
            return  # another run set it aside first
        except OSError as exc:
            log.error("%s: not an event record written by bondha (%s) and cannot be set "
                      "aside: %s; ignored", self.record_path, why[:80], exc.strerror or exc)
            return
        log.error("%s: not an event record written by bondha (%s): set aside as %s, not "
                  "obeyed", self.record_path, why[:80], aside)

    def take_ticket(self, event: str, fork: Fork | None = None) -> Ticket:
        """Record ``event`` as the newest one; every older ticket is stale from now on.

        After a record was set aside, numbering starts again from the clock (milliseconds),
        above any number the lost record could have held: every older ticket is stale.
        With ``fork`` (the recording hook's fork record) an event that keepalived emitted
        before the recorded newest one is numbered but not made the newest: the ticket
        comes back with ``emitted_before`` set, and is stale from the start.
        """
        with self._locked("event.lock", wait=True):
            try:
                existed = self._exists("event")
                last, last_seq = self._read_record(set_aside=self.fd is not None)
            except (StateError, OSError) as exc:
                log.error("%s: cannot read the last event (%s); numbering from the clock",
                          self.record_path, getattr(exc, "strerror", None) or exc)
                existed, last, last_seq = True, None, 0
            seq = (last_seq if last else int(time.time() * 1000) if existed else 0) + 1
            ticket = Ticket(seq, event, os.getpid(), time.time(), fork=fork,
                            previous=last.event if last else None)
            emitted_earlier = (last is not None and fork is not None and last.fork is not None
                               and order(fork, last.fork) == -1)
            try:
                if emitted_earlier and last is not None:
                    ticket = attrs.evolve(ticket, previous=None, emitted_before=last.seq)
                    self._write_record(last, ticket.seq)
                else:
                    self._write_record(ticket, ticket.seq)
            except StateError as exc:
                # The failover must not wait for a disk: it goes on, superseded only by an
                # event recorded after the last one it could read.
                log.error("%s; the failover goes on without it (older runs are not stopped "
                          "by this event)", exc)
                return attrs.evolve(ticket, seq=last.seq if last else 0, recorded=False)
        return ticket

    def _exists(self, name: str) -> bool:
        try:
            self.size(name)
        except FileNotFoundError:
            return False
        return True

    def is_current(self, ticket: Ticket) -> bool:
        last = self.current()
        return last is not None and last.seq == ticket.seq

    def guard(self, ticket: Ticket,
              stopping: Callable[[], str | None] | None = None) -> Callable[[], None]:
        """A check to call before each write: raises Superseded once ``ticket`` is stale.

        ``stopping`` returns a reason (e.g. "shutting down") when the run must stop anyway.
        """

        seen: list[Any] = [None, None]  # the record file's identity and the ticket read from it

        def newest() -> Ticket | None:
            # Called before every request and while waiting on one: a stat (microseconds)
            # tells whether the record was replaced since it was last read.
            try:
                where, dir_fd = self._where("event")
                info = os.stat(where, dir_fd=dir_fd, follow_symlinks=False)
                identity: Any = (info.st_ino, info.st_mtime_ns, info.st_size)
            except OSError:
                identity = None
            if identity is not None and identity == seen[0]:
                return seen[1]  # type: ignore[no-any-return]
            last = self._current(set_aside=False)
            seen[0], seen[1] = identity, last
            return last

        def check() -> None:
            reason = stopping() if stopping is not None else None
            if reason:
                raise Superseded(f"{reason}: stopped before the next write")
            try:
                last = newest()
            except StateError:
                return  # an unreadable record stops no failover
            if not ticket.recorded:
                if last is not None and last.seq > ticket.seq:
                    raise Superseded(f"event ({ticket.event}, not recorded) superseded by "
                                     f"event {last.seq} ({last.event}): stopped")
                return
            if last is None or last.seq != ticket.seq:
                newer = f"event {last.seq} ({last.event})" if last else "a reset state directory"
                raise Superseded(f"event {ticket.seq} ({ticket.event}) superseded by {newer}: "
                                 "stopped before the next write")

        return check

    def _write_record(self, ticket: Ticket, last_seq: int) -> None:
        try:
            self.write_atomic("event", json.dumps({**ticket.to_json(),
                                                   "last_seq": last_seq}).encode())
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
            fd = self.open(name, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            # A read-only or broken disk must not block a failover: unserialised, but done.
            log.error("%s: cannot open the lock (%s); going on without it", path,
                      exc.strerror or exc)
            yield
            return
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
