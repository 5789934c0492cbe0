"""One keepalived event on one node: recorded, serialised, applied unless a newer one came.

Both front ends go through here: the notify hook (``bondha notify``, one process per
event, overlapping as keepalived pleases) and the daemon (events from the notify_fifo).
The state directory (:mod:`bondha.statedir`) orders them: the event is recorded first,
which stops any older run before its next write; then the run waits for the apply lock
and writes only while its event is still the newest.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Callable

import httpx

from ..config import Config
from ..errors import Superseded
from ..keepalived.events import Event
from ..model import Role
from ..plan import Plan
from ..reconciler import reconcile
from ..result import Result
from .journal import reconcile_record, transition_record
from .publish import publish
from .statedir import StateDir, Ticket, state_dir_of

__all__ = ["apply_transition", "notify", "open_state_dir", "record_event"]

log = logging.getLogger("bondha")


def open_state_dir(config: Config, environ: Mapping[str, str] = os.environ) -> StateDir:
    """The node's state directory, created if needed."""
    return StateDir(state_dir_of(config, environ)).ensure()


def _lock_wait(config: Config) -> float:
    # The holder stops at its deadline, or at its next write once our newer ticket exists;
    # twice the deadline plus one request's timeout is ample before calling it stuck.
    return 2 * config.ha.deadline + config.api.timeout


def record_event(config: Config, state: StateDir, event: Event, source: str) -> Ticket:
    """Record ``event`` as this node's newest (stopping any older run) and journal it."""
    ticket = state.take_ticket(str(event))
    publish(config, state, transition_record(ticket, event, source))
    return ticket


def apply_transition(
    config: Config,
    role: Role,
    state: StateDir,
    ticket: Ticket,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    stopping: Callable[[], str | None] | None = None,
    source: str = "hook",
    trigger: str = "event",
) -> Result:
    """Make ``role``'s bond active for ``ticket``'s event, under the node's apply lock.

    Returns a result whose ``superseded`` is set when a newer event (or ``stopping``)
    took over before or during the run; raises as :func:`~bondha.reconciler.reconcile`.
    Either way the run is journaled (``source`` "hook" or "daemon", ``trigger`` "event"
    or "check") and counted in the metrics.
    """
    started = time.monotonic()

    def record(result: Result | None, error: BaseException | None) -> None:
        publish(config, state, reconcile_record(
            config.pair, role, source=source, trigger=trigger, ticket=ticket, result=result,
            error=error, seconds=time.monotonic() - started))

    try:
        result = _apply(config, role, state, ticket, transport=transport, stopping=stopping)
    except Exception as exc:
        record(None, exc)
        raise
    record(result, None)
    return result


def _apply(config: Config, role: Role, state: StateDir, ticket: Ticket, *,
           transport: httpx.AsyncBaseTransport | None,
           stopping: Callable[[], str | None] | None) -> Result:
    try:
        with state.hold(ticket, timeout=_lock_wait(config), stopping=stopping):
            return reconcile(config, role, transport=transport,
                             guard=state.guard(ticket, stopping))
    except Superseded as exc:
        log.warning("%s", exc)
        return Result(Plan(role, config.pair.side(role).bond_id), superseded=str(exc))


def notify(config: Config, event: Event, *,
           transport: httpx.AsyncBaseTransport | None = None) -> Result | None:
    """What the notify hook does for one event; None when the event asks for no write.

    Every event is recorded, so that a BACKUP/FAULT/STOP stops a MASTER run still retrying.
    """
    state = open_state_dir(config)
    ticket = record_event(config, state, event, "hook")
    role = event.role
    if role is None:
        log.info("keepalived %s %s is %s (priority %d): this node makes no change (event %d)",
                 event.type, event.name, event.state.value, event.priority, ticket.seq)
        return None
    log.info("keepalived %s %s is MASTER with priority %d: making the %s bond active (event %d)",
             event.type, event.name, event.priority, role.value, ticket.seq)
    return apply_transition(config, role, state, ticket, transport=transport)
