"""``bondha daemon``: follow keepalived's notify_fifo, apply each transition, repair drift.

keepalived 2.x writes one line per transition to its ``notify_fifo``
(``INSTANCE "VI_1" MASTER 10``). A reader thread takes each line as it comes, records
it in the state directory at once (which stops an older run before its next write) and
queues it; the main loop applies the queued events in order. While this node is MASTER
the main loop also reconciles every ``[bondha] reconcile_interval`` seconds: a converged
pair costs reads only, drift (a hand toggle, a transition whose writes failed while the
server was down, a healed split brain) is written back. After a MASTER transition the
first checks come early (:data:`EARLY_CHECKS`): a peer's superseded writes may still
land. A BACKUP right after MASTER hands the addresses back to the peer, as the hook does.

Signals: SIGTERM/SIGINT stop after the write in flight (exit 0), SIGHUP reloads the
config (a broken one is reported and the running one kept).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..config import Config, load_config
from ..config.load import checked
from ..errors import BondhaError, ConfigError, StateDirError, StateError, UsageError
from ..keepalived.events import Event, parse_fifo_line
from ..model import Role
from ..printable import bounded
from ..result import Result
from ..securepath import UnsafePath, check_parents, fifo_problem
from .statedir import StateDir, Ticket
from .transition import (
    DRIFT_CONFIRM,
    HANDBACK_GRACE,
    apply_transition,
    handback_role,
    open_state_dir,
    record_event,
)
from .warm import WarmTransport, warm_transport

if TYPE_CHECKING:
    from ..client import Transport

__all__ = ["EARLY_CHECKS", "RETRY_AFTER_FAILURE", "Daemon", "ensure_fifo", "fifo_problem",
           "run_daemon"]

log = logging.getLogger("bondha")

#: Seconds to the next check after a pass that did not converge (if the interval is longer):
#: a failover whose writes failed while the server was down should not wait a full interval.
RETRY_AFTER_FAILURE = 5.0
#: Seconds between the checks that follow a MASTER transition, before the interval takes
#: over: together they span the hook's default settle window, and more.
EARLY_CHECKS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
_TICK = 0.2  # seconds the main loop and the FIFO reader wait before looking at stop/reload
_MAX_LINE = 4096  # a line longer than this is not keepalived talking


def ensure_fifo(path: Path) -> None:
    """Create the FIFO (mode 0600) if absent; refuse anything else at that path.

    Refused: a FIFO another user owns (they choose who else may read it), one that group or
    others may read (another reader steals keepalived's lines: the daemon never sees them)
    or write (forges them), one in a directory another user could replace it in. keepalived
    creates a missing FIFO with mode 0644: start the daemon first, so that it makes it.
    """
    try:
        check_parents(path)
    except UnsafePath as exc:
        raise StateDirError(f"notify FIFO {path}: {exc}; put it in a directory of its own "
                            "(mode 0700), such as the state directory") from None
    except OSError as exc:
        raise StateDirError(f"notify FIFO {path}: {exc.strerror or exc}") from None
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        try:
            os.mkfifo(path, 0o600)
            os.chmod(path, 0o600)  # whatever the umask
        except OSError as exc:
            raise StateDirError(f"notify FIFO {path}: cannot create it: "
                                f"{exc.strerror or exc}") from None
        log.info("created the notify FIFO %s (mode 0600)", path)
        return
    except OSError as exc:
        raise StateDirError(f"notify FIFO {path}: {exc.strerror or exc}") from None
    problem = fifo_problem(info)
    if problem:
        raise StateDirError(f"notify FIFO {path}: {problem}")


class Daemon:
    """The daemon's state and loop; :func:`run_daemon` adds the signals.

    ``load`` reads the config (again on :meth:`reload`); ``fifo`` overrides
    ``[bondha] notify_fifo``; ``transport`` replaces the network (tests).
    """

    def __init__(self, load: Callable[[], Config], fifo: Path | None = None, *,
                 transport: Transport | None = None) -> None:
        self._load = load
        self._transport = transport
        self._warm: WarmTransport | None = None  # connections kept open between runs
        self._stop = threading.Event()
        self._stop_reason = "shutting down"
        self._reload = threading.Event()
        self._events: queue.Queue[tuple[Event, Ticket]] = queue.Queue()
        self._states: dict[str, str] = {}  # instance -> its last state, for the logs
        self.role: Role | None = None  # the bond this node keeps active; None: not MASTER
        self.ticket: Ticket | None = None  # the event that role comes from
        self.checks = 0  # periodic passes completed, for tests and the logs
        self._early: list[float] = []  # gaps of the early checks still to come
        self.config = self._load_config()
        fifo_path = fifo or self.config.ha.notify_fifo
        if fifo_path is None:
            raise UsageError("daemon: no FIFO to read; pass --fifo PATH or set "
                             "[bondha] notify_fifo (and keepalived's notify_fifo to the same path)")
        self.fifo = fifo_path
        self.state: StateDir = open_state_dir(self.config)

    # -- control (any thread, or a signal handler) --------------------------------------

    def stop(self, reason: str = "shutting down") -> None:
        self._stop_reason = reason
        self._stop.set()

    def reload(self) -> None:
        self._reload.set()

    def stopping(self) -> str | None:
        return self._stop_reason if self._stop.is_set() else None

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> int:
        """Serve until stopped; returns the exit code (0)."""
        ensure_fifo(self.fifo)
        instances = ", ".join(self.config.ha.instances) or "all"
        log.info("daemon started: reading %s (instances: %s), state in %s, checking every "
                 "%gs while MASTER", self.fifo, instances, self.state.path,
                 self.config.ha.reconcile_interval)
        if self._transport is None:
            self._warm = warm_transport(self.config)
        next_check = self._resume()
        reader = threading.Thread(target=self._read_fifo, name="bondha-fifo", daemon=True)
        reader.start()
        try:
            while not self._stop.is_set():
                if self._reload.is_set():
                    self._reload.clear()
                    if self._reload_config() and self.role is not None:
                        next_check = time.monotonic()  # new ids or settings: look now
                next_check = self._step(next_check)
        finally:
            self._stop.set()
            reader.join(timeout=2 * _TICK + 1)
            if self._warm is not None:
                self._warm.close()
        log.info("daemon stopped (%s)", self._stop_reason)
        return 0

    def _step(self, next_check: float | None) -> float | None:
        """Wait a tick for an event; apply it, or make the periodic check when due."""
        now = time.monotonic()
        wait = _TICK if next_check is None else min(_TICK, max(0.0, next_check - now))
        try:
            event, ticket = self._events.get(timeout=wait)
        except queue.Empty:
            if next_check is None or time.monotonic() < next_check:
                return next_check
            converged = self._check()
        else:
            converged = self._on_event(event, ticket)
        return self._schedule(converged)

    def _schedule(self, converged: bool) -> float | None:
        if self.role is None:
            return None
        interval = self.config.ha.reconcile_interval
        gap = interval if converged else min(interval, RETRY_AFTER_FAILURE)
        if self._early:
            gap = min(gap, self._early.pop(0))
        return time.monotonic() + gap

    def _on_event(self, event: Event, ticket: Ticket) -> bool:
        before = self._states.get(event.name, "unknown")
        self._states[event.name] = event.state.value
        role = event.role
        self.role, self.ticket = role, ticket
        doing = (f"making the {role.value} bond active" if role is not None
                 else "no change; drift checks paused")
        log.info("keepalived %s %s: %s -> %s (priority %d, event %d): %s", event.type,
                 event.name, before, event.state.value, event.priority, ticket.seq, doing)
        self._early = []
        if role is None:
            back = handback_role(ticket)
            if back is None:
                return True
            log.info("BACKUP after MASTER: the peer is MASTER; handing the addresses back to "
                     "the %s bond", back.value)
            return self._apply(back, ticket, periodic=False, trigger="handback",
                               grace=HANDBACK_GRACE)
        self._early = list(EARLY_CHECKS)
        return self._apply(role, ticket, periodic=False)

    def _check(self) -> bool:
        """The periodic pass while MASTER: reads only when converged, writes the drift."""
        last = self._current_record()
        if last is not None and (self.ticket is None or last.seq != self.ticket.seq):
            # `bondha notify` (the hook) recorded a newer event on this node: follow it.
            self._adopt(last, "recorded by another bondha process")
        converged = True
        if self.role is not None and self.ticket is not None:
            converged = self._apply(self.role, self.ticket, periodic=True,
                                    confirm=DRIFT_CONFIRM)
        self.checks += 1
        return converged

    def _apply(self, role: Role, ticket: Ticket, *, periodic: bool,
               trigger: str | None = None, grace: float = 0.0, confirm: float = 0.0) -> bool:
        try:
            result = apply_transition(self.config, role, self.state, ticket,
                                      transport=self._transport or self._warm,
                                      stopping=self.stopping, source="daemon",
                                      trigger=trigger or ("check" if periodic else "event"),
                                      grace=grace, confirm=confirm)
        except BondhaError as exc:
            log.error("%s: %s", "drift check" if periodic else f"event {ticket.seq}", exc)
            return False
        except Exception as exc:  # a bug must not stop the pair's guard at 3 a.m.
            log.error("internal error (please report): %s: %s", type(exc).__name__, exc,
                      exc_info=log.isEnabledFor(logging.DEBUG))
            return False
        self._log_result(result, periodic=periodic)
        return result.converged or result.superseded is not None

    @staticmethod
    def _log_result(result: Result, *, periodic: bool) -> None:
        if result.superseded:
            return  # already logged where it happened
        if periodic and not result.plan:
            log.debug("drift check: bond %d active, converged (%d requests, reads only)",
                      result.plan.active_bond_id, result.requests)
            return
        level = logging.INFO if result.converged else logging.ERROR
        if periodic:
            log.warning("drift found: %s", result.plan.summary())
        for line in result.render().splitlines():
            log.log(level, "%s%s", "drift repair: " if periodic else "", line)

    # -- start, resume, reload ------------------------------------------------------------

    def _load_config(self) -> Config:
        # During an outage a loose file mode must not stop a failover: logged, not refused.
        return checked(self._load(), refuse_loose_secrets=False)

    def _reload_config(self) -> bool:
        try:
            config = self._load_config()
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload: %s", problem)
            log.error("reload failed: keeping the running configuration")
            return False
        for option in ("notify_fifo", "state_dir"):
            if getattr(config.ha, option) != getattr(self.config.ha, option):
                log.warning("reload: [bondha] %s changed; it takes effect at the next start",
                            option)
        if self._warm is not None and (config.api, config.ha.pool_size, config.ha.max_body) != (
                self.config.api, self.config.ha.pool_size, self.config.ha.max_body):
            self._warm.close()  # another server, account, pool or cap: new connections
            self._warm = warm_transport(config)
        self.config = config
        log.info("configuration reloaded from %s", config.source or "its source")
        return True

    def _resume(self) -> float | None:
        """After a restart, follow the last event recorded on this node (keepalived does
        not repeat it); a MASTER gets a check right away."""
        last = self._current_record()
        if last is None:
            return None
        self._adopt(last, "recorded before this start")
        return time.monotonic() if self.role is not None else None

    def _adopt(self, ticket: Ticket, origin: str) -> None:
        try:
            event = parse_fifo_line(ticket.event)
        except UsageError as exc:
            log.warning("state directory: last event unusable (%s); waiting for keepalived", exc)
            return
        self.role, self.ticket = event.role, ticket
        self._states[event.name] = event.state.value
        log.info("following event %d (%s, %s): %s", ticket.seq, ticket.event, origin,
                 f"keeping the {self.role.value} bond active" if self.role else "no change")

    def _current_record(self) -> Ticket | None:
        try:
            return self.state.current()
        except StateError as exc:
            log.error("%s", exc)
            return None

    # -- the FIFO reader (its own thread) ---------------------------------------------------

    def _read_fifo(self) -> None:
        while not self._stop.is_set():
            fd = self._open_fifo()
            if fd is None:
                self._stop.wait(1.0)
                continue
            try:
                self._read_until_writer_closes(fd)
            finally:
                os.close(fd)

    def _open_fifo(self) -> int | None:
        """The FIFO, opened and checked again (it may have been re-created); None: not now."""
        try:
            fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            try:
                ensure_fifo(self.fifo)  # removed: make it again, ours
            except StateError as exc:
                log.error("%s", exc)
            return None
        except OSError as exc:
            log.error("notify FIFO %s: cannot open: %s", self.fifo, exc.strerror or exc)
            return None
        problem = fifo_problem(os.fstat(fd))
        if problem:
            os.close(fd)
            log.error("notify FIFO %s: %s; not read", self.fifo, problem)
            return None
        return fd

    def _replaced(self, fd: int) -> bool:
        """True when the path now names another file than ``fd`` (removed, re-created)."""
        try:
            now = os.stat(self.fifo, follow_symlinks=False)
        except OSError:
            return True
        held = os.fstat(fd)
        return (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino)

    def _read_until_writer_closes(self, fd: int) -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        framer = _LineFramer(self.fifo)
        while not self._stop.is_set():
            if not poller.poll(_TICK * 1000):
                if self._replaced(fd):  # re-created while no writer had it open
                    log.info("notify FIFO %s was replaced; opening the new one", self.fifo)
                    return
                continue
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:  # every writer closed: reopen and wait for the next one
                for line in framer.close():
                    self._take_line(line)
                log.debug("notify FIFO %s: writer closed; reopening", self.fifo)
                return
            for line in framer.feed(chunk):
                self._take_line(line)

    def _take_line(self, raw: bytes) -> None:
        """Parse, filter, record (which supersedes an older run at once) and queue a line."""
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            return
        try:
            event = parse_fifo_line(text)
        except UsageError as exc:
            log.warning("%s: skipped", exc)
            return
        if event.type != "INSTANCE":
            log.info("notify FIFO: %s %s is not a VRRP instance: skipped", event.type, event.name)
            return
        selected = self.config.ha.instances
        if selected and event.name not in selected:
            log.info("notify FIFO: instance %s is not in [bondha] instances (%s): skipped",
                     event.name, ", ".join(selected))
            return
        try:
            ticket = record_event(self.config, self.state, event, "daemon")
        except StateError as exc:
            log.error("%s: event %s not recorded", exc, event)
            return
        self._events.put((event, ticket))


class _LineFramer:
    """Bytes in, lines out, each at most :data:`_MAX_LINE` bytes.

    A longer line is not keepalived talking (another writer's garbage): it is dropped up to
    its newline, with one warning quoting a bounded prefix. Such garbage usually has no
    newline of its own, so keepalived's next line ends it: the last ``INSTANCE `` line in
    the dropped bytes' tail is kept, so that the MASTER event written after the garbage is
    not lost with it.
    """

    _SALVAGE = b"INSTANCE "

    def __init__(self, fifo: Path) -> None:
        self._fifo = fifo
        self._pending = b""
        self._discarding = False

    def feed(self, chunk: bytes) -> list[bytes]:
        lines: list[bytes] = []
        data = self._pending + chunk
        while True:
            end = data.find(b"\n")
            if end < 0:
                break
            if not self._discarding:
                lines.append(data[:end])
            else:
                tail = data[max(0, end - _MAX_LINE):end]
                start = tail.rfind(self._SALVAGE)
                if start >= 0:
                    lines.append(tail[start:])
            self._discarding = False
            data = data[end + 1:]
        if len(data) > _MAX_LINE:
            if not self._discarding:
                log.warning("notify FIFO %s: a line of more than %d bytes (%s), not from "
                            "keepalived: skipped up to its end", self._fifo, _MAX_LINE,
                            bounded(data[:80].decode("utf-8", errors="replace"), 80))
            self._discarding = True
            data = data[-_MAX_LINE:]  # only the tail is kept: where keepalived's line starts
        self._pending = data
        return lines

    def close(self) -> list[bytes]:
        """The last line of a writer that closed without a newline."""
        pending, self._pending = self._pending, b""
        discarding, self._discarding = self._discarding, False
        return [pending] if pending and not discarding else []


def run_daemon(config_path: Path, fifo: Path | None = None) -> int:
    """``bondha daemon``: build the daemon, wire SIGTERM/SIGINT/SIGHUP, serve."""
    daemon = Daemon(lambda: load_config(config_path), fifo)

    def stop(signum: int, _frame: Any) -> None:
        daemon.stop(f"{signal.Signals(signum).name} received")

    def reload(_signum: int, _frame: Any) -> None:
        daemon.reload()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    signal.signal(signal.SIGHUP, reload)
    with contextlib.suppress(KeyboardInterrupt):
        return daemon.run()
    return 0
