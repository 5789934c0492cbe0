"""keepalived's side: notify arguments or notify_fifo lines -> an event -> the role to make active.

The how-to's convention: the same config on both bonders, priority 10 marks
the master bonder, and only a MASTER transition acts. Pure: no I/O.
"""

from __future__ import annotations

import enum
import shlex
from collections.abc import Sequence

import attrs

from ..errors import UsageError
from ..model import Role

__all__ = ["MASTER_PRIORITY", "Event", "State", "bonder_of_priority", "parse_fifo_line",
           "parse_notify_args", "role_for"]

MASTER_PRIORITY = 10


def bonder_of_priority(priority: int) -> Role:
    """Which bonder a keepalived priority marks: 10 the master bonder, any other the backup.

    The how-to's convention, defined here only: the same config on both bonders, and the
    priority is how a notify or a FIFO line says which bonder it comes from.
    """
    return Role.MASTER if priority == MASTER_PRIORITY else Role.BACKUP


class State(enum.Enum):
    MASTER = "MASTER"
    BACKUP = "BACKUP"
    FAULT = "FAULT"
    STOP = "STOP"


@attrs.frozen
class Event:
    """One keepalived transition: ``TYPE NAME STATE PRIORITY``."""

    type: str
    name: str
    state: State
    priority: int

    def __str__(self) -> str:
        return f"{self.type} {self.name} {self.state.value} {self.priority}"

    @property
    def role(self) -> Role | None:
        """The bond this node makes active, or None where the event asks for no write."""
        return role_for(self)


def parse_notify_args(args: Sequence[str]) -> Event:
    """Validate keepalived's four notify arguments (TYPE and NAME are not used to decide)."""
    if len(args) != 4:
        raise UsageError(f"notify takes 4 arguments TYPE NAME STATE PRIORITY "
                         f"(e.g. INSTANCE VI_1 MASTER 10), got {len(args)}: {' '.join(args)!r}")
    kind, name, state_text, priority_text = (a.strip() for a in args)
    if not kind or not name:
        raise UsageError("notify: TYPE and NAME must not be empty")
    try:
        state = State(state_text.upper())
    except ValueError:
        raise UsageError(f"notify: unknown STATE {state_text!r}; expected one of "
                         f"{', '.join(s.value for s in State)}") from None
    # isascii: str.isdigit() also accepts "²" and other digits int() refuses (a fuzzer found it).
    if not (priority_text.isascii() and priority_text.isdigit()) or not (
            0 <= int(priority_text) <= 255):
        raise UsageError(f"notify: PRIORITY {priority_text!r} is not a whole number from 0 to 255")
    return Event(kind, name, state, int(priority_text))


def parse_fifo_line(line: str) -> Event:
    """One line of keepalived's notify_fifo, e.g. ``INSTANCE "VI_1" MASTER 10``.

    The name comes in double quotes (keepalived 2.x); the same four fields as the notify
    arguments follow. Anything else is a UsageError naming the line.
    """
    shown = repr(line if len(line) <= 80 else line[:77] + "...")
    try:
        fields = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"notify_fifo line {shown}: {exc}") from None
    try:
        return parse_notify_args(fields)
    except UsageError as exc:
        raise UsageError(f"notify_fifo line {shown}: {str(exc).removeprefix('notify: ')}"
                         ) from None


def role_for(event: Event) -> Role | None:
    """The bond this node makes active, or None where the event asks for no write."""
    if event.state is not State.MASTER:
        return None
    return bonder_of_priority(event.priority)
