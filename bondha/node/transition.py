"""One keepalived event on one node: recorded, serialised, applied unless a newer one came.

Both front ends go through here: the notify hook (``bondha notify``, one process per
event, overlapping as keepalived pleases) and the daemon (events from the notify_fifo).
The state directory (:mod:`bondha.statedir`) orders them: the event is recorded first,
which stops any older run before its next write; then the run waits for the apply lock
and writes only while its event is still the newest.

Between the two bonders nothing is shared but the server, so two more rules end their
races (docs/reliability.md): a MASTER run from the hook keeps checking for ``[bondha]
settle`` seconds after it verified (a peer's superseded writes may still land), and a
BACKUP right after a MASTER hands the addresses back to the peer, which is MASTER then,
once this node's own writes are all answered.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Callable

import attrs

from ..config import Config
from ..errors import ApiError, ApplyError, Superseded, UsageError
from ..keepalived.events import Event, State, parse_fifo_line
from ..model import Role
from ..plan import Plan
from ..reconciler import reconcile
from ..result import Result
from .forkorder import Fork, this_process
from .journal import reconcile_record, transition_record
from .publish import publish
from .statedir import StateDir, Ticket, state_dir_of

if TYPE_CHECKING:
    from ..client import Transport

__all__ = ["DRIFT_CONFIRM", "HANDBACK_GRACE", "apply_transition", "handback_role", "notify",
           "open_state_dir", "record_event", "settle_checks"]

log = logging.getLogger("bondha")


def open_state_dir(config: Config, environ: Mapping[str, str] = os.environ) -> StateDir:
    """The node's state directory, created if needed."""
    return StateDir(state_dir_of(config, environ)).ensure()


def _lock_wait(config: Config) -> float:
    # The holder stops at its deadline, or at its next write once our newer ticket exists;
    # twice the deadline plus one request's timeout is ample before calling it stuck.
    return 2 * config.ha.deadline + config.api.timeout


def record_event(config: Config, state: StateDir, event: Event, source: str,
                 fork: Fork | None = None) -> Ticket:
    """Record ``event`` as this node's newest (stopping any older run) and journal it.

    ``fork`` is the recording hook's fork record: an event keepalived emitted before the
    recorded newest one does not become the newest (its ticket's ``emitted_before``).
    """
    ticket = state.take_ticket(str(event), fork)
    publish(config, state, transition_record(ticket, event, source))
    return ticket


def apply_transition(
    config: Config,
    role: Role,
    state: StateDir,
    ticket: Ticket,
    *,
    transport: Transport | None = None,
    stopping: Callable[[], str | None] | None = None,
    source: str = "hook",
    trigger: str = "event",
    settle: float = 0.0,
    grace: float = 0.0,
    confirm: float = 0.0,
) -> Result:
    """Make ``role``'s bond active for ``ticket``'s event, under the node's apply lock.

    Returns a result whose ``superseded`` is set when a newer event (or ``stopping``)
    took over before or during the run; raises as :func:`~bondha.reconciler.reconcile`.
    Either way the run is journaled (``source`` "hook" or "daemon", ``trigger`` "event",
    "check" or "handback") and counted in the metrics. With ``settle`` the run, once
    verified, keeps checking (and repairing) for that many seconds; with ``grace`` it waits
    that long, holding the lock, before it reads. With ``confirm`` (the daemon's drift
    checks) a difference found is written only if it is still there that many seconds later
    and no newer event came meanwhile: the peer taking over moves the objects a moment before
    keepalived tells this node, and a repair in that moment would undo the takeover.
    """
    started = time.monotonic()

    def record(result: Result | None, error: BaseException | None) -> None:
        publish(config, state, reconcile_record(
            config.pair, role, source=source, trigger=trigger, ticket=ticket, result=result,
            error=error, seconds=time.monotonic() - started))

    try:
        result = _apply(config, role, state, ticket, transport=transport, stopping=stopping,
                        settle=settle, grace=grace, confirm=confirm)
    except Exception as exc:
        record(None, exc)
        raise
    record(result, None)
    return result


def _apply(config: Config, role: Role, state: StateDir, ticket: Ticket, *,
           transport: Transport | None,
           stopping: Callable[[], str | None] | None, settle: float,
           grace: float, confirm: float = 0.0) -> Result:
    guard = state.guard(ticket, stopping)
    try:
        with state.hold(ticket, timeout=_lock_wait(config), stopping=stopping):
            _sleep_until(time.monotonic() + grace, guard)
            if confirm > 0:
                seen = reconcile(config, role, dry_run=True, transport=transport, guard=guard)
                if not seen.plan:
                    return seen  # nothing differs: the check only read
                log.info("drift seen (%s); repaired in %.1fs unless a newer keepalived event "
                         "comes first", seen.plan.summary(), confirm)
                _sleep_until(time.monotonic() + confirm, guard)
            result = reconcile(config, role, transport=transport, guard=guard)
            if settle > 0 and result.converged:
                result = _settle(config, role, result, settle, transport=transport, guard=guard)
            return result
    except Superseded as exc:
        log.warning("%s", exc)
        return Result(Plan(role, config.pair.side(role).bond_id), superseded=str(exc))


#: Seconds a handback waits (its node's own writes all answered) before it reads: the peer's
#: MASTER run has usually moved everything by then, so the handback only reads, instead of
#: writing every object a second time.
HANDBACK_GRACE = 0.5
#: Seconds a drift the daemon found must last before it is repaired (``confirm``): longer
#: than keepalived takes to tell this node that the peer took over.
DRIFT_CONFIRM = 0.5
_FIRST_SETTLE_GAP = 0.25  # seconds to the first check of the settle window; gaps then double


def settle_checks(settle: float) -> tuple[float, ...]:
    """When the settle window checks, in seconds after the verification: 0.25, 0.75,
    1.75, 3.75, ... (each gap twice the one before) and always at ``settle`` itself."""
    offsets: list[float] = []
    gap, at = _FIRST_SETTLE_GAP, _FIRST_SETTLE_GAP
    while at < settle:
        offsets.append(at)
        gap *= 2
        at += gap
    return (*offsets, settle) if settle > 0 else ()


def _settle(config: Config, role: Role, verified: Result, settle: float, *,
            transport: Transport | None, guard: Callable[[], None]) -> Result:
    """Hold the verified state for ``settle`` seconds: read again at growing gaps, repair.

    A peer whose MASTER run was superseded stops before its next write, but the writes
    it had already sent still land, possibly after this run's verification. Each check is
    a whole reconcile (reads only while the pair stays right); a newer event on this node
    ends the window at once (``guard``).
    """
    started = time.monotonic()
    result = verified
    for offset in settle_checks(settle):
        try:
            _sleep_until(started + offset, guard)
        except Superseded as exc:
            return attrs.evolve(result, superseded=str(exc))
        try:
            check = reconcile(config, role, transport=transport, guard=guard)
        except ApplyError:
            raise  # the pair changed and could not be written back: not converged
        except ApiError as exc:
            # A read failed (the server slow or away): no sign of a change, and the run
            # has verified already. Say so and keep watching.
            log.warning("settle: check %.2fs after verification could not read the pair (%s)",
                        offset, exc)
            continue
        if check.done:
            log.warning("settle: the pair changed %.2fs after verification (a peer's late "
                        "write?); repaired: %s", offset, ", ".join(map(str, check.done)))
        result = attrs.evolve(result, done=result.done + check.done,
                              requests=result.requests + check.requests,
                              seconds=verified.seconds + time.monotonic() - started,
                              superseded=check.superseded, live=check.live or result.live)
        if check.superseded:
            break
    return result


def _sleep_until(when: float, guard: Callable[[], None]) -> None:
    while True:
        guard()
        left = when - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))


def handback_role(ticket: Ticket) -> Role | None:
    """The bond to hand the addresses back to, when ``ticket``'s event ends a mastership.

    Only for BACKUP right after MASTER (of the same instance) on this node: keepalived
    leaves MASTER for BACKUP only on hearing a peer of higher priority, so that peer is
    MASTER now and wants its own bond active. FAULT and STOP say nothing about the peer
    (it may be down): they hand nothing back, and the peer's settle window covers them.
    """
    if ticket.previous is None:
        return None
    try:
        event, before = parse_fifo_line(ticket.event), parse_fifo_line(ticket.previous)
    except UsageError:
        return None
    was = before.role
    if event.state is not State.BACKUP or was is None or before.name != event.name:
        return None
    return was.other


def notify(config: Config, event: Event, *,
           transport: Transport | None = None) -> Result | None:
    """What the notify hook does for one event; None when the event asks for no write.

    Every event is recorded, so that a BACKUP/FAULT/STOP stops a MASTER run still retrying.
    The event's place is keepalived's order of emission, told by this process's fork
    record; an event emitted before one already recorded makes no change.
    """
    state = open_state_dir(config)
    ticket = record_event(config, state, event, "hook", this_process())
    role = event.role
    if ticket.emitted_before is not None:
        reason = (f"event {ticket.seq} ({ticket.event}) was emitted by keepalived before "
                  f"event {ticket.emitted_before}, which was recorded first: superseded")
        log.warning("%s", reason)
        if role is None:
            return None
        return Result(Plan(role, config.pair.side(role).bond_id), superseded=reason)
    if role is None:
        back = handback_role(ticket)
        if back is None:
            log.info("keepalived %s %s is %s (priority %d): this node makes no change "
                     "(event %d)", event.type, event.name, event.state.value, event.priority,
                     ticket.seq)
            return None
        log.info("keepalived %s %s is BACKUP after MASTER (priority %d): the peer is MASTER; "
                 "handing the addresses back to the %s bond (event %d)", event.type,
                 event.name, event.priority, back.value, ticket.seq)
        return apply_transition(config, back, state, ticket, transport=transport,
                                trigger="handback", grace=HANDBACK_GRACE)
    log.info("keepalived %s %s is MASTER with priority %d: making the %s bond active (event %d)",
             event.type, event.name, event.priority, role.value, ticket.seq)
    return apply_transition(config, role, state, ticket, transport=transport,
                            settle=config.ha.settle)
