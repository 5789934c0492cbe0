"""read -> plan -> apply -> verify: the library's main entry point.

Every configured object is read before the first write (the preflight): a
refusal (401, 403, 404) or a missing object aborts with zero writes. The
plan's addresses are then applied concurrently, each one disable-first, and
the result is read back and compared with the desired state.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Iterable
from typing import Any, Callable, TypeVar

import attrs
import httpx

from .client import ApiClient
from .config import ApiSettings, Config
from .errors import ApiError, ApplyError, BadRequest, NotFound, PermissionDenied, Superseded
from .model import Kind, ObjectRef, Pair, Role, RoutingObject
from .plan import Change, Plan, make_plan
from .retry import RetryPolicy
from .retry import sleep as retry_sleep

__all__ = ["Failure", "Result", "aread_bonds", "aread_live", "areconcile", "read_bonds",
           "read_live", "reconcile"]

log = logging.getLogger("bondha")
T = TypeVar("T")
Live = dict[ObjectRef, RoutingObject]


@attrs.frozen
class Failure:
    """A write that did not happen, and why."""

    change: Change
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {**self.change.to_json(), "reason": self.reason}


@attrs.frozen
class Result:
    """What a reconcile did: the plan, the writes done, failed and held back, and the check.

    ``skipped`` are enables held back because the disable of the same address
    on the other bond failed: an address dark is recoverable, two bonders
    claiming one address is not.
    """

    plan: Plan
    dry_run: bool = False
    done: tuple[Change, ...] = ()
    failed: tuple[Failure, ...] = ()
    skipped: tuple[Change, ...] = ()
    remaining: tuple[Change, ...] = ()
    verify_error: str | None = None
    requests: int = 0
    seconds: float = 0.0
    rounds: int = 1  # read-plan-apply-verify passes: another one while verification differed
    superseded: str | None = None  # why a newer event (or a shutdown) stopped this run
    # The pair as last read: read back after the writes, or the first read when nothing was
    # to be written; None when no read succeeded. For the records and metrics (bondha.observe).
    live: Live | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def converged(self) -> bool:
        """True when the live state was read back and matches the desired state."""
        if self.dry_run:
            return not self.plan
        return not (self.failed or self.skipped or self.remaining or self.verify_error
                    or self.superseded)

    def render(self) -> str:
        role = self.plan.role.value
        bond = self.plan.active_bond_id
        if self.dry_run:
            return self.plan.render()
        lines = [f"{c}: done" for c in self.done]
        lines += [f"{f.change}: FAILED: {f.reason}" for f in self.failed]
        lines += [f"{c}: NOT DONE (the other bond's copy could not be disabled)"
                  for c in self.skipped]
        lines += [f"{c}: still needed after verification" for c in self.remaining]
        if self.verify_error:
            lines.append(f"verification failed: {self.verify_error}")
        if self.superseded:
            lines.append(self.superseded)
        verdict = ("converged and verified" if self.converged else
                   "superseded" if self.superseded else "NOT converged")
        rounds = f", {self.rounds} rounds" if self.rounds > 1 else ""
        lines.append(f"bond {bond} ({role}) active: {verdict}; {len(self.done)} changed, "
                     f"{len(self.plan.unchanged)} already right, {len(self.failed)} failed "
                     f"({self.requests} requests{rounds}, {self.seconds:.2f}s)")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "bondha.result/1",
            "active": self.plan.role.value,
            "active_bond_id": self.plan.active_bond_id,
            "dry_run": self.dry_run,
            "converged": self.converged,
            "plan": self.plan.to_json(),
            "done": [c.to_json() for c in self.done],
            "failed": [f.to_json() for f in self.failed],
            "skipped": [c.to_json() for c in self.skipped],
            "remaining": [c.to_json() for c in self.remaining],
            "verify_error": self.verify_error,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rounds": self.rounds,
            "superseded": self.superseded,
        }


# -- reading -------------------------------------------------------------------

async def _gather_all(aws: Iterable[Awaitable[T]]) -> list[T]:
    """``asyncio.gather``, but the first error cancels the rest (no writes after a failure
    abandons the run, no tasks left talking to a closed client)."""
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _gather_limited(limit: int, jobs: Iterable[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run ``jobs`` concurrently, at most ``limit`` at once; results in order."""
    gate = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return await _gather_all(run(job) for job in jobs)


async def _read_kind(api: ApiClient, bond_id: int, kind: Kind, ids: tuple[int, ...]) -> Live:
    """The configured objects of one kind on one bond: one list read where the server serves it."""
    wanted = {ObjectRef(bond_id, kind, i) for i in ids}
    try:
        listed = {o.ref: o for o in await api.list_objects(bond_id, kind, ids)}
    except (NotFound, PermissionDenied, BadRequest) as exc:
        # No list for us here (an older server, a narrow permission): the detail reads
        # below then name the exact id that fails, which is what the operator needs.
        log.debug("list of %s on bond %d unusable (%s); reading objects one by one",
                  kind.value, bond_id, exc)
        listed = {}
    missing = sorted(wanted - listed.keys())
    for obj in await _gather_all(api.get_object(ref) for ref in missing):
        listed[obj.ref] = obj
    return listed


async def aread_live(api: ApiClient, pair: Pair) -> Live:
    """Read every configured object of the pair, collections concurrently."""
    jobs = [
        functools.partial(_read_kind, api, side.bond_id, kind, side.ids(kind))
        for side in (pair.master, pair.backup) for kind in Kind if side.ids(kind)
    ]
    live: Live = {}
    for part in await _gather_limited(api.pool_size, jobs):
        live.update(part)
    return live


async def aread_bonds(api: ApiClient, bond_ids: Iterable[int],
                      kinds: Iterable[Kind]) -> list[RoutingObject]:
    """Every object of ``kinds`` on each bond, configured or not (for ``bondha discover``)."""
    jobs = [functools.partial(api.list_objects, bond_id, kind)
            for bond_id in bond_ids for kind in kinds]
    return [obj for part in await _gather_limited(api.pool_size, jobs) for obj in part]


# -- writing -------------------------------------------------------------------

@attrs.define
class _Outcome:
    done: list[Change] = attrs.Factory(list)
    failed: list[Failure] = attrs.Factory(list)
    skipped: list[Change] = attrs.Factory(list)
    final: list[ApiError] = attrs.Factory(list)  # failures no further round can fix
    superseded: str | None = None
    read_back: Live | None = None  # the pair as verification read it


async def _apply_step(api: ApiClient, changes: tuple[Change, ...], out: _Outcome,
                      on_disable_failure: str) -> None:
    """One address: its disables, then (unless a disable failed and the policy holds) its
    enables. ``on_disable_failure`` "enable" lets the enable go ahead anyway."""
    held_back = False
    for change in changes:
        if change.enabled and held_back:
            log.error("NOT enabling %s: the other bond's copy is still enabled", change.ref)
            out.skipped.append(change)
            continue
        try:
            await api.set_enabled(change.ref, change.enabled)
        except Superseded as exc:
            out.superseded = str(exc)
            return
        except ApiError as exc:
            log.error("%s: failed: %s", change, exc)
            out.failed.append(Failure(change, str(exc)))
            if not exc.retryable:
                out.final.append(exc)
            if change.enabled:
                continue
            if on_disable_failure == "hold":
                held_back = True
            elif any(c.enabled for c in changes):
                log.warning("enabling the other copy of %s anyway ([bondha] on_disable_failure"
                            " = enable): both bonds claim it until the disable succeeds",
                            change.address or change.ref)
        else:
            log.info("%sd %s", change.verb, change.ref if not change.address
                     else f"{change.ref} ({change.address})")
            out.done.append(change)


async def apply_plan(api: ApiClient, plan: Plan, on_disable_failure: str = "hold") -> _Outcome:
    out = _Outcome()
    await _gather_limited(api.pool_size, [
        functools.partial(_apply_step, api, step.changes, out, on_disable_failure)
        for step in plan.steps])
    return out


# -- the entry points ------------------------------------------------------------

def _client(config: Config, transport: httpx.AsyncBaseTransport | None,
            pool_size: int | None, guard: Callable[[], None] | None = None) -> ApiClient:
    """A client whose retries all end by the config's deadline, counted from now."""
    # No single wait longer than a quarter of the deadline: several tries always fit in it.
    policy = RetryPolicy(config.api.attempts, config.api.attempt_delay,
                         max_delay=min(RetryPolicy.max_delay_default, config.ha.deadline / 4),
                         deadline_at=time.monotonic() + config.ha.deadline)
    return ApiClient(config.api, policy=policy, transport=transport,
                     pool_size=pool_size or config.ha.pool_size, guard=guard)


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
    log.warning("round %d did not converge (%s); another round in %.1fs", round_, why, wait)
    await retry_sleep(wait, api.guard)
    return True


async def areconcile(
    config: Config,
    role: Role,
    *,
    dry_run: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    pool_size: int | None = None,
    guard: Callable[[], None] | None = None,
) -> Result:
    """Make ``role``'s bond the active one; see :func:`reconcile`."""
    started = time.monotonic()
    async with _client(config, transport, pool_size, guard) as api:
        try:
            return await _rounds(api, config, role, dry_run, started)
        except Superseded as exc:
            log.warning("%s", exc)
            return Result(Plan(role, config.pair.side(role).bond_id), superseded=str(exc),
                          requests=api.counters.reads + api.counters.writes,
                          seconds=time.monotonic() - started)


async def _rounds(api: ApiClient, config: Config, role: Role, dry_run: bool,
                  started: float) -> Result:
    """read -> plan -> apply -> verify, again while verification differs and time is left."""
    live = await _read_in_rounds(api, config, 1)  # preflight: a refusal raises before writes
    plan = first_plan = make_plan(config.pair, role, live)
    # A converged pair is the daemon's every-interval case: not worth a line at info.
    log.log(logging.INFO if plan else logging.DEBUG, "bond %d (%s) to be active: %s",
            plan.active_bond_id, role.value, plan.summary())
    if dry_run or not plan:
        return Result(plan, dry_run=dry_run, requests=api.counters.reads,
                      seconds=time.monotonic() - started, live=live)
    done: list[Change] = []
    round_, contested = 1, 0
    while True:
        out = await apply_plan(api, plan, config.ha.on_disable_failure)
        done += out.done
        verified, verify_error = await _verify(api, config, role, out)
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
                plan = make_plan(config.pair, role, await _read_in_rounds(api, config, round_))
            except ApiError as exc:
                verify_error = str(exc)
                break
            verify_error = None
    for change in remaining:
        if change not in out.skipped and change not in (f.change for f in out.failed):
            log.error("verification: %s is still needed", change)
    counters = api.counters
    return Result(first_plan, False, _in_plan_order(first_plan, done), tuple(out.failed),
                  tuple(out.skipped), remaining, verify_error, counters.reads + counters.writes,
                  time.monotonic() - started, rounds=round_, superseded=out.superseded,
                  live=out.read_back)


async def _verify(api: ApiClient, config: Config, role: Role,
                  out: _Outcome) -> tuple[Plan | None, str | None]:
    """Read back: the plan of what still differs, or why the read failed."""
    if out.superseded is not None:
        return None, None
    try:
        out.read_back = await aread_live(api, config.pair)
        return make_plan(config.pair, role, out.read_back), None
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


def _why(out: _Outcome, verify_error: str | None, remaining: tuple[Change, ...]) -> str:
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
    transport: httpx.AsyncBaseTransport | None = None,
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
                         f"back, {len(result.remaining)} still wrong after verification", result)
    return result


def read_live(
    config: Config,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    pool_size: int | None = None,
) -> Live:
    """Read every configured object of the pair (no writes)."""

    async def run() -> Live:
        async with _client(config, transport, pool_size) as api:
            return await aread_live(api, config.pair)

    return asyncio.run(run())


def read_bonds(
    settings: ApiSettings,
    bond_ids: Iterable[int],
    kinds: Iterable[Kind] = tuple(Kind),
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[RoutingObject]:
    """Every object of ``kinds`` on each bond (no writes); needs only ``[bondingadmin]``."""

    async def run() -> list[RoutingObject]:
        async with ApiClient(settings, transport=transport) as api:
            return await aread_bonds(api, bond_ids, kinds)

    return asyncio.run(run())
