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
from collections.abc import Mapping
from typing import Callable

import httpx

from .config import Config
from .errors import Superseded
from .keepalived import Event, role_for
from .model import Role
from .plan import Plan
from .reconciler import Result, reconcile
from .statedir import StateDir, Ticket, state_dir_path

__all__ = ["apply_transition", "notify", "open_state_dir"]

log = logging.getLogger("bondha")


def open_state_dir(config: Config, environ: Mapping[str, str] = os.environ) -> StateDir:
    """The node's state directory, created if needed."""
    return StateDir(state_dir_path(config.ha.state_dir, environ)).ensure()


def _lock_wait(config: Config) -> float:
    # The holder stops at its deadline, or at its next write once our newer ticket exists;
    # twice the deadline plus one request's timeout is ample before calling it stuck.
    return 2 * config.ha.deadline + config.api.timeout


def apply_transition(
    config: Config,
    role: Role,
    state: StateDir,
    ticket: Ticket,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    stopping: Callable[[], str | None] | None = None,
) -> Result:
    """Make ``role``'s bond active for ``ticket``'s event, under the node's apply lock.

    Returns a result whose ``superseded`` is set when a newer event (or ``stopping``)
    took over before or during the run; raises as :func:`~bondha.reconciler.reconcile`.
    """
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
    ticket = state.take_ticket(str(event))
    role = role_for(event)
    if role is None:
        log.info("keepalived %s %s is %s (priority %d): this node makes no change (event %d)",
                 event.type, event.name, event.state.value, event.priority, ticket.seq)
        return None
    log.info("keepalived %s %s is MASTER with priority %d: making the %s bond active (event %d)",
             event.type, event.name, event.priority, role.value, ticket.seq)
    return apply_transition(config, role, state, ticket, transport=transport)
