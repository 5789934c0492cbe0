"""read -> plan -> apply -> verify: the library's main entry point.

Every configured object is read before the first write (the preflight): a
refusal (401, 403, 404) or a missing object aborts with zero writes. The
plan's addresses are then applied concurrently, each one disable-first, and
the result is read back and compared with the desired state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Callable

from .client import ApiClient, client_for
from .config import ApiSettings, Config
from .errors import ApiError, ApplyError, Superseded
from .live import aread_bonds, aread_live
from .model import Kind, Role, RoutingObject
from .plan import Change, Plan, make_plan
from .result import Failure, Live, Result, unserved_addresses
from .retry import sleep as retry_sleep
from .writes import Outcome, apply_plan

if TYPE_CHECKING:
    from .client import Transport

__all__ = ["Failure", "Result", "aread_bonds", "aread_live", "areconcile", "read_bonds",
           "read_live", "reconcile"]

log = logging.getLogger("bondha")


# -- the rounds --------------------------------------------------------------------

_MIN_ROUND_SECONDS = 0.2  # a round needs at least this long before the deadline to be worth it
_MAX_CONTESTED_ROUNDS = 3  # rounds whose writes all landed yet verification differed


async def _read_in_rounds(api: ApiClient, config: Config, round_: int) -> Live:
    """The live state; a fault a retry can fix is retried in further rounds until the deadline.

    A refusal (401/403/404) or a garbled answer is raised at once: no round can fix it.
    """
    while True:
        try:
            return await aread_live(api, config.pair)
        except ApiError as exc:
            if not exc.retryable or not await _wait_for_round(api, round_, exc):
                raise
            round_ += 1


async def _wait_for_round(api: ApiClient, round_: int, why: object) -> bool:
    """Back off before round ``round_ + 1``; False when the deadline leaves no room for it."""
    remaining = api.policy.remaining()
    # Each call of a round already backs off exponentially: rounds themselves wait one
    # first delay, so that more of them fit the deadline.
    wait = api.policy.backoff(1)
    if remaining is not None and remaining - wait < _MIN_ROUND_SECONDS:
        return False
    until = "" if remaining is None else f", until the deadline {remaining:.1f}s from now"
    log.warning("round %d did not converge (%s); another round in %.1fs%s", round_, why, wait,
                until)
    await retry_sleep(wait, api.guard)
    return True


async def areconcile(
    config: Config,
    role: Role,
    *,
    dry_run: bool = False,
    transport: Transport | None = None,
    pool_size: int | None = None,
    guard: Callable[[], None] | None = None,
) -> Result:
    """Make ``role``'s bond the active one; see :func:`reconcile`."""
    started = time.monotonic()
    async with client_for(config, transport, pool_size, guard) as api:
        try:
            return await _rounds(api, config, role, dry_run, started)
        except ApiError as exc:  # no Result to carry them: the records still count the requests
            exc.requests = api.counters.reads + api.counters.writes
            raise
        except Superseded as exc:
            log.warning("%s", exc)
            return Result(Plan(role, config.pair.side(role).bond_id), superseded=str(exc),
                          requests=api.counters.reads + api.counters.writes,
                          seconds=time.monotonic() - started)


async def _rounds(api: ApiClient, config: Config, role: Role, dry_run: bool,
                  started: float) -> Result:
    """read -> plan -> apply -> verify, again while verification differs and time is left."""
    live = await _read_in_rounds(api, config, 1)  # preflight: a refusal raises before writes
    plan = first_plan = make_plan(config.pair, role, live,
                                  float_unpaired=config.ha.float_unpaired)
    # A converged pair is the daemon's every-interval case: not worth a line at info.
    log.log(logging.INFO if plan else logging.DEBUG, "bond %d (%s) to be active: %s",
            plan.active_bond_id, role.value, plan.summary(), extra={"reported": True})
    if dry_run or not plan:
        return Result(plan, dry_run=dry_run, requests=api.counters.reads,
                      seconds=time.monotonic() - started, live=live, last_plan=plan,
                      unserved=unserved_addresses(live, plan.active_bond_id))
    done: list[Change] = []
    verified_last: Plan | None = None
    round_, contested = 1, 0
    while True:
        out = await apply_plan(api, plan, config.ha.on_disable_failure)
        done += out.done
        verified, verify_error = await _verify(api, config, role, out)
        verified_last = verified
        plan = verified or plan
        remaining = verified.changes if verified else ()
        converged = not (remaining or verify_error or out.failed or out.skipped)
        if out.superseded:
            log.warning("%s", out.superseded)
        if converged or out.superseded or out.final:
            break
        if not (out.failed or verify_error):  # every write landed, yet something differs
            contested += 1
            log.warning("verification: %s changed back (another writer?)",
                        ", ".join(map(str, remaining)))
            if contested >= _MAX_CONTESTED_ROUNDS:
                break
        if not await _wait_for_round(api, round_, _why(out, verify_error, remaining)):
            break
        round_ += 1
        if verify_error is not None:
            try:
                plan = make_plan(config.pair, role, await _read_in_rounds(api, config, round_),
                                 float_unpaired=config.ha.float_unpaired)
            except ApiError as exc:
                verify_error = str(exc)
                break
            verify_error = None
    for change in remaining:
        if change not in out.skipped and change not in (f.change for f in out.failed):
            log.error("verification: %s is still needed", change)
    counters = api.counters
    return Result(first_plan, dry_run=False, done=_in_plan_order(first_plan, done),
                  failed=tuple(out.failed), skipped=tuple(out.skipped), remaining=remaining,
                  verify_error=verify_error, requests=counters.reads + counters.writes,
                  seconds=time.monotonic() - started, rounds=round_, superseded=out.superseded,
                  live=out.read_back, last_plan=verified_last,
                  unserved=() if out.read_back is None else
                  unserved_addresses(out.read_back, first_plan.active_bond_id),
                  held=out.held)


async def _verify(api: ApiClient, config: Config, role: Role,
                  out: Outcome) -> tuple[Plan | None, str | None]:
    """Read back: the plan of what still differs, or why the read failed."""
    if out.superseded is not None:
        return None, None
    try:
        out.read_back = await aread_live(api, config.pair)
        return make_plan(config.pair, role, out.read_back,
                         float_unpaired=config.ha.float_unpaired), None
    except ApiError as exc:
        if not exc.retryable:
            out.final.append(exc)
        return None, str(exc)


def _in_plan_order(plan: Plan, done: list[Change]) -> tuple[Change, ...]:
    """Plan order, not finish order; writes of later rounds (changed back meanwhile) last."""
    finished = set(done)  # sets: a 600-address failover would spend seconds in list scans
    first = tuple(c for c in plan.changes if c in finished)
    planned = set(first)
    return first + tuple(c for c in done if c not in planned)


def _why(out: Outcome, verify_error: str | None, remaining: tuple[Change, ...]) -> str:
    if out.failed:
        return f"{len(out.failed)} write(s) failed"
    if verify_error:
        return f"verification read failed: {verify_error}"
    return f"{len(remaining)} object(s) still differ"


def reconcile(
    config: Config,
    role: Role,
    *,
    dry_run: bool = False,
    transport: Transport | None = None,
    pool_size: int | None = None,
    guard: Callable[[], None] | None = None,
) -> Result:
    """Make ``role``'s bond the active one, verify it, and say what was done.

    Raises a :class:`~bondha.errors.RefusedError` (401/403/404, unknown id)
    before any write, an :class:`~bondha.errors.ApiError` when the live state
    cannot be read, and :class:`~bondha.errors.ApplyError` (carrying the
    :class:`Result`) when writes were made but the pair did not converge.
    With ``dry_run`` nothing is written and the result carries the plan.

    Faults a retry can fix are retried until ``[bondha] deadline``; when verification finds
    a difference (a lost write, another writer) the run plans and applies again within it.
    ``guard`` is called before every write and may raise
    :class:`~bondha.errors.Superseded`; the run then stops writing and returns a result
    whose ``superseded`` says why (no ApplyError: a newer run owns the outcome).
    """
    # A transport with an event loop of its own (the daemon's warm connections, which
    # live on that loop) runs the whole reconcile there.
    run = getattr(transport, "run", None) or asyncio.run
    result = run(areconcile(config, role, dry_run=dry_run, transport=transport,
                            pool_size=pool_size, guard=guard))
    if not result.dry_run and not result.converged and not result.superseded:
        raise ApplyError(f"bond {result.plan.active_bond_id} ({role.value}) is not fully "
                         f"active: {len(result.failed)} failed, {len(result.skipped)} held "
                         f"back, {len(result.remaining)} still wrong after verification"
                         + (f", {len(result.unserved)} address(es) not on the active bond alone"
                            if result.unserved else ""), result)
    return result


def read_live(
    config: Config,
    *,
    transport: Transport | None = None,
    pool_size: int | None = None,
) -> Live:
    """Read every configured object of the pair (no writes)."""

    async def run() -> Live:
        async with client_for(config, transport, pool_size) as api:
            return await aread_live(api, config.pair)

    return asyncio.run(run())


def read_bonds(
    settings: ApiSettings,
    bond_ids: Iterable[int],
    kinds: Iterable[Kind] = tuple(Kind),
    *,
    transport: Transport | None = None,
) -> list[RoutingObject]:
    """Every object of ``kinds`` on each bond (no writes); needs only ``[bondingadmin]``."""

    async def run() -> list[RoutingObject]:
        async with ApiClient(settings, transport=transport) as api:
            return await aread_bonds(api, bond_ids, kinds)

    return asyncio.run(run())

