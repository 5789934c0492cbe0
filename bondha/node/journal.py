"""The node's journal: one JSON record per keepalived event and per reconcile.

The notify hook and the daemon append to it (through :mod:`bondha.node.publish`);
``bondha status --local`` reads the last records without asking the server.

Format: JSON Lines in ``journal.jsonl`` of the state directory, one object per line with
``"schema": "bondha.record/1"`` (docs/json.md). Hook runs are separate processes that may
overlap, so every append happens under the state directory's ``records.lock``, as one
``write`` of one whole line. The file is bounded: an append that would take it past
:data:`MAX_BYTES` first renames it to ``journal.jsonl.1`` (dropping the older one), so at
most twice that is kept — about 4000 records, a day and a half of a daemon checking every
30 seconds. The state directory is usually ``/run/bondha``: records end with a reboot.

Standard library and pure modules only: no HTTP here.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ApplyError, RefusedError, StateError
from ..keepalived.events import Event
from ..model import Pair, Role
from ..status import Verdict, address_status
from .statedir import StateDir, Ticket

if TYPE_CHECKING:
    from ..result import Result

__all__ = ["JOURNAL_NAME", "LOCK_NAME", "MAX_BYTES", "RECORD_SCHEMA", "RESULTS", "Journal",
           "reconcile_record", "record_time", "transition_record"]

RECORD_SCHEMA = "bondha.record/1"
JOURNAL_NAME = "journal.jsonl"
MAX_BYTES = 1024 * 1024
LOCK_NAME = "records.lock"

#: The ``result`` of a reconcile record, also the ``result`` label of the metrics.
RESULTS = ("converged", "failed", "refused", "error", "superseded")

Record = dict[str, Any]


def _now() -> str:
    return datetime.fromtimestamp(time.time(), timezone.utc).isoformat(timespec="milliseconds")


def record_time(record: Mapping[str, Any]) -> float:
    """A record's ``time`` as seconds since the epoch."""
    return datetime.fromisoformat(str(record["time"])).timestamp()


def transition_record(ticket: Ticket, event: Event, source: str) -> Record:
    """A keepalived event as the hook or the daemon recorded it."""
    role = event.role
    return {"schema": RECORD_SCHEMA, "type": "transition", "time": _now(), "source": source,
            "event_seq": ticket.seq, "event": ticket.event, "state": event.state.value,
            "priority": event.priority, "role": role.value if role else None}


def reconcile_record(pair: Pair, role: Role, *, source: str, trigger: str, ticket: Ticket | None,
                     result: Result | None, error: BaseException | None,
                     seconds: float) -> Record:
    """One reconcile: its result, writes, duration, what failed and the pair after it.

    ``result`` is None when the run raised before it had one (``error`` says why);
    an :class:`~bondha.errors.ApplyError` carries its result.
    """
    if result is None and isinstance(error, ApplyError):
        result = error.result
    after = _after(pair, result)
    return {
        "schema": RECORD_SCHEMA, "type": "reconcile", "time": _now(), "source": source,
        "trigger": trigger, "event_seq": ticket.seq if ticket else None,
        "event": ticket.event if ticket else None, "role": role.value,
        "active_bond_id": pair.side(role).bond_id, "result": _result(result, error),
        "writes": len(result.done) if result else 0,
        "write_failures": len(result.failed) if result else 0,
        "held_back": len(result.skipped) if result else 0,
        "planned": len(result.plan) if result else None,
        **after,
        "rounds": result.rounds if result else 0,
        "requests": result.requests if result else 0,
        "duration": round(result.seconds if result and result.seconds else seconds, 3),
        "failed": [f"{f.change}: {f.reason}" for f in result.failed] if result else [],
        "remaining": [str(c) for c in result.remaining] if result else [],
        "verify_error": result.verify_error if result else None,
        "superseded": result.superseded if result else None,
        "error": str(error) if error is not None else None,
    }


def _result(result: Result | None, error: BaseException | None) -> str:
    if isinstance(error, RefusedError):
        return "refused"
    if isinstance(error, ApplyError):
        return "failed"
    if error is not None or result is None:
        return "error"
    if result.superseded:
        return "superseded"
    return "converged" if result.converged else "failed"


def _after(pair: Pair, result: Result | None) -> dict[str, int | None]:
    """Objects out of place, and addresses on both or neither bond, as last read.

    The reconcile already planned against that read (``result.last_plan``): it is counted,
    not planned again.
    """
    if result is None or result.live is None or result.last_plan is None:
        return {"out_of_place": None, "overlap": None, "dark": None}
    rows = address_status(pair, result.live)
    return {"out_of_place": len(result.last_plan),
            "overlap": sum(r.verdict is Verdict.OVERLAP for r in rows),
            "dark": sum(r.verdict is Verdict.DARK for r in rows)}


class Journal:
    """The journal file of one state directory."""

    def __init__(self, state: StateDir, max_bytes: int = MAX_BYTES) -> None:
        self.state = state
        self.path = state.path / JOURNAL_NAME
        self.max_bytes = max_bytes

    @property
    def older_path(self) -> Path:
        return self.path.with_name(JOURNAL_NAME + ".1")

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record; the caller holds :data:`LOCK_NAME` (:mod:`bondha.node.publish`)."""
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        try:
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size and size + len(line) > self.max_bytes:
                os.replace(self.path, self.older_path)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StateError(f"{self.path}: cannot append a record: "
                             f"{exc.strerror or exc}") from None

    def read(self) -> list[Record]:
        """Every record kept, oldest first; a line that is not a record is skipped."""
        records: list[Record] = []
        for path in (self.older_path, self.path):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StateError(f"{path}: cannot read the records: "
                                 f"{exc.strerror or exc}") from None
            for line in text.splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a full disk, or not ours
                if isinstance(record, dict) and record.get("schema") == RECORD_SCHEMA:
                    records.append(record)
        return records
