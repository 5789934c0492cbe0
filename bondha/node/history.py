"""What this node recorded, read without the server: ``bondha status --local``.

Two things from the state directory: the last keepalived event (so ``bondha status``
knows, without flags, which bond this node's keepalived state says should be active) and
the last journal records (:mod:`bondha.journal`). Reads only; standard library only.
"""

from __future__ import annotations

import logging
import textwrap
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs

from ..errors import StateError, UsageError
from ..keepalived.events import parse_fifo_line
from ..status import NodeState
from .journal import Journal, record_time
from .statedir import StateDir, Ticket

__all__ = ["LOCAL_SCHEMA", "LocalStatus", "local_status", "recorded_node_state"]

LOCAL_SCHEMA = "bondha.local/1"

log = logging.getLogger("bondha")


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def _ago(seconds: float) -> str:
    """How old a record is, in the unit an operator reads at a glance."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def _node_state(ticket: Ticket, record_path: Path) -> NodeState:
    event = parse_fifo_line(ticket.event)
    # How old: keepalived may have changed its mind since, while the hook was not run.
    age = time.time() - ticket.at
    return NodeState(event.state, event.priority,
                     source=f"{record_path}, event {ticket.seq} at {_when(ticket.at)}, "
                            f"{_ago(age)}", age=round(age, 1))


def recorded_node_state(state_dir: Path) -> NodeState | None:
    """This node's keepalived state as the hook or the daemon last recorded it.

    None when nothing was recorded, or when the record cannot be read (logged: the
    status view goes on without it).
    """
    state = StateDir(state_dir)
    try:
        ticket = state.current()
        return None if ticket is None else _node_state(ticket, state.record_path)
    except (StateError, UsageError) as exc:
        log.warning("%s; this node's keepalived state is unknown (run as the hook's user, "
                    "or pass --keepalived-state and --priority)", exc)
        return None


@attrs.frozen
class LocalStatus:
    """The state directory's view: the last event, and the last ``records`` of the journal."""

    state_dir: Path
    last_event: Ticket | None
    node: NodeState | None
    records: tuple[Mapping[str, Any], ...]
    kept: int  # records in the journal

    def to_json(self) -> dict[str, Any]:
        """The ``bondha.local/1`` document (docs/json.md)."""
        event = self.last_event
        return {
            "schema": LOCAL_SCHEMA, "state_dir": str(self.state_dir),
            "last_event": None if event is None else {
                "seq": event.seq, "event": event.event, "pid": event.pid,
                "time": datetime.fromtimestamp(event.at, timezone.utc).isoformat(
                    timespec="milliseconds")},
            "keepalived": self.node.to_json() if self.node else None,
            "records_kept": self.kept, "records": list(self.records),
        }

    def render(self, width: int = 80) -> str:
        wrap = textwrap.TextWrapper(width=width, subsequent_indent="    ",
                                    break_on_hyphens=False)
        lines: list[str] = []
        if self.node is not None and self.last_event is not None:
            lines += wrap.wrap(
                f"this node: keepalived {self.last_event.event} (event {self.last_event.seq} "
                f"at {_when(self.last_event.at)}): the {self.node.expected_active.value} bond "
                f"should be active")
        if not self.records:
            lines += wrap.wrap(f"state directory {self.state_dir}: no records yet (no hook "
                               "run and no daemon event on this node since it was made)")
            return "\n".join(lines)
        lines += wrap.wrap(f"state directory {self.state_dir}: the last {len(self.records)} "
                           f"of {self.kept} records")
        detail = textwrap.TextWrapper(width=width, initial_indent=" " * 4,
                                      subsequent_indent=" " * 6, break_on_hyphens=False)
        for record in self.records:
            head = f"{_when(record_time(record))}  {record['source']:<6}  "
            body = textwrap.TextWrapper(width=width, initial_indent=head,
                                        subsequent_indent=" " * len(head),
                                        break_on_hyphens=False)
            lines += body.wrap(_summary(record))
            for line in _details(record):
                lines += detail.wrap(line)
        return "\n".join(lines)


def _summary(record: Mapping[str, Any]) -> str:
    if record["type"] == "transition":
        role = record["role"]
        return (f"event {record['event_seq']}: {record['event']}: "
                + (f"make the {role} bond active" if role else "no change here"))
    trigger = ("drift check" if record["trigger"] == "check"
               else f"event {record['event_seq']}")
    result = record["result"]
    parts = [f"{trigger}: bond {record['active_bond_id']} ({record['role']}) "
             f"{'converged' if result == 'converged' else result.upper()}",
             f"{record['writes']} writes"]
    if record["write_failures"]:
        parts.append(f"{record['write_failures']} failed")
    if record["held_back"]:
        parts.append(f"{record['held_back']} held back")
    if record["out_of_place"]:
        parts.append(f"{record['out_of_place']} out of place")
    if record["rounds"] > 1:
        parts.append(f"{record['rounds']} rounds")
    parts.append(f"{record['duration']:.2f}s")
    return ", ".join(parts)


def _details(record: Mapping[str, Any]) -> list[str]:
    if record["type"] != "reconcile":
        return []
    lines = [f"failed: {line}" for line in record["failed"]]
    lines += [f"still needed: {line}" for line in record["remaining"]]
    for name in ("verify_error", "superseded", "error"):
        if record[name]:
            lines.append(f"{name.replace('_', ' ')}: {record[name]}")
    return lines


def local_status(state_dir: Path, last: int = 10) -> LocalStatus:
    """Read this node's state directory (never the server, never a write)."""
    state = StateDir(state_dir)
    ticket = state.current()
    records = Journal(state).read()
    node = None if ticket is None else _node_state(ticket, state.record_path)
    return LocalStatus(state_dir, ticket, node, tuple(records[-last:]) if last else (),
                       len(records))
