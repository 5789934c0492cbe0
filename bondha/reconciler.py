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
from .config import Config
from .errors import ApiError, ApplyError, BadRequest, NotFound, PermissionDenied
from .model import Kind, ObjectRef, Pair, Role, RoutingObject
from .plan import Change, Plan, make_plan
from .retry import RetryPolicy

__all__ = ["Failure", "Result", "aread_live", "areconcile", "read_live", "reconcile"]

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

    @property
    def converged(self) -> bool:
        """True when the live state was read back and matches the desired state."""
        if self.dry_run:
            return not self.plan
        return not (self.failed or self.skipped or self.remaining or self.verify_error)

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
        verdict = ("converged and verified" if self.converged else "NOT converged")
        lines.append(f"bond {bond} ({role}) active: {verdict}; {len(self.done)} changed, "
                     f"{len(self.plan.unchanged)} already right, {len(self.failed)} failed "
                     f"({self.requests} requests, {self.seconds:.2f}s)")
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
        }


# -- reading -------------------------------------------------------------------

async def _gather_limited(limit: int, jobs: Iterable[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run ``jobs`` concurrently, at most ``limit`` at once; results in order."""
    gate = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    tasks = [asyncio.ensure_future(run(job)) for job in jobs]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        # The first failure ends the batch: cancel the others and wait for them, so that no
        # request is still in flight (and no connection left open) when the client closes.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _read_kind(api: ApiClient, bond_id: int, kind: Kind, ids: tuple[int, ...]) -> Live:
    """The configured objects of one kind on one bond: one list read where the server serves it."""
    wanted = {ObjectRef(bond_id, kind, i) for i in ids}
    try:
        listed = {o.ref: o for o in await api.list_objects(bond_id, kind) if o.ref in wanted}
    except (NotFound, PermissionDenied, BadRequest) as exc:
        # No list for us here (an older server, a narrow permission): the detail reads
        # below then name the exact id that fails, which is what the operator needs.
        log.debug("list of %s on bond %d unusable (%s); reading objects one by one",
                  kind.value, bond_id, exc)
        listed = {}
    missing = sorted(wanted - listed.keys())
    reads = [functools.partial(api.get_object, ref) for ref in missing]
    for obj in await _gather_limited(len(reads) or 1, reads):
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


# -- writing -------------------------------------------------------------------

@attrs.define
class _Outcome:
    done: list[Change] = attrs.Factory(list)
    failed: list[Failure] = attrs.Factory(list)
    skipped: list[Change] = attrs.Factory(list)


async def _apply_step(api: ApiClient, changes: tuple[Change, ...], out: _Outcome) -> None:
    """One address: its disables, then (only if they all worked) its enables."""
    held_back = False
    for change in changes:
        if change.enabled and held_back:
            log.error("NOT enabling %s: the other bond's copy is still enabled", change.ref)
            out.skipped.append(change)
            continue
        try:
            await api.set_enabled(change.ref, change.enabled)
        except ApiError as exc:
            log.error("%s: failed: %s", change, exc)
            out.failed.append(Failure(change, str(exc)))
            held_back = held_back or not change.enabled
        else:
            log.info("%sd %s", change.verb, change.ref if not change.address
                     else f"{change.ref} ({change.address})")
            out.done.append(change)


async def apply_plan(api: ApiClient, plan: Plan) -> _Outcome:
    out = _Outcome()
    await _gather_limited(api.pool_size, [
        functools.partial(_apply_step, api, step.changes, out) for step in plan.steps])
    return out


# -- the entry points ------------------------------------------------------------

def _client(config: Config, transport: httpx.AsyncBaseTransport | None,
            pool_size: int | None) -> ApiClient:
    """A client whose retries all end by the config's deadline, counted from now."""
    policy = RetryPolicy(config.api.attempts, config.api.attempt_delay,
                         deadline_at=time.monotonic() + config.ha.deadline)
    return ApiClient(config.api, policy=policy, transport=transport,
                     pool_size=pool_size or config.ha.pool_size)


async def areconcile(
    config: Config,
    role: Role,
    *,
    dry_run: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    pool_size: int | None = None,
) -> Result:
    """Make ``role``'s bond the active one; see :func:`reconcile`."""
    started = time.monotonic()
    async with _client(config, transport, pool_size) as api:
        live = await aread_live(api, config.pair)  # preflight: raises before writes
        plan = make_plan(config.pair, role, live)
        log.info("bond %d (%s) to be active: %s", plan.active_bond_id, role.value, plan.summary())
        if dry_run or not plan:
            return Result(plan, dry_run=dry_run, requests=api.counters.reads,
                          seconds=time.monotonic() - started)
        out = await apply_plan(api, plan)
        remaining: tuple[Change, ...] = ()
        verify_error = None
        try:
            remaining = make_plan(config.pair, role, await aread_live(api, config.pair)).changes
        except ApiError as exc:
            verify_error = str(exc)
        for change in remaining:
            if change not in out.skipped and change not in (f.change for f in out.failed):
                log.error("verification: %s is still needed", change)
        counters = api.counters
        return Result(plan, False, tuple(out.done), tuple(out.failed), tuple(out.skipped),
                      remaining, verify_error, counters.reads + counters.writes,
                      time.monotonic() - started)


def reconcile(
    config: Config,
    role: Role,
    *,
    dry_run: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    pool_size: int | None = None,
) -> Result:
    """Make ``role``'s bond the active one, verify it, and say what was done.

    Raises a :class:`~bondha.errors.RefusedError` (401/403/404, unknown id)
    before any write, an :class:`~bondha.errors.ApiError` when the live state
    cannot be read, and :class:`~bondha.errors.ApplyError` (carrying the
    :class:`Result`) when writes were made but the pair did not converge.
    With ``dry_run`` nothing is written and the result carries the plan.
    """
    result = asyncio.run(areconcile(config, role, dry_run=dry_run, transport=transport,
                                    pool_size=pool_size))
    if not result.dry_run and not result.converged:
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
