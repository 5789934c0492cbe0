"""Applying a plan's writes: each address disable-first, addresses concurrently.

An enable is held back when the disable of the same address on the other bond failed
(``[bondha] on_disable_failure = hold``): an address dark is recoverable, two bonders
claiming one address is not.
"""

from __future__ import annotations

import functools
import logging

import attrs

from .client import ApiClient
from .concurrency import gather_limited
from .errors import ApiError, Superseded
from .plan import Change, Plan
from .result import Failure, Live

__all__ = ["Outcome", "apply_plan"]

log = logging.getLogger("bondha")


@attrs.define
class Outcome:
    done: list[Change] = attrs.Factory(list)
    failed: list[Failure] = attrs.Factory(list)
    skipped: list[Change] = attrs.Factory(list)
    final: list[ApiError] = attrs.Factory(list)  # failures no further round can fix
    superseded: str | None = None
    read_back: Live | None = None  # the pair as verification read it


async def _apply_step(api: ApiClient, changes: tuple[Change, ...], out: Outcome,
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
            # "reported": the result printed at the end lists it too (bondha.log)
            log.info("%sd %s", change.verb, change.ref if not change.address
                     else f"{change.ref} ({change.address})", extra={"reported": True})
            out.done.append(change)


async def apply_plan(api: ApiClient, plan: Plan, on_disable_failure: str = "hold") -> Outcome:
    out = Outcome()
    await gather_limited(api.pool_size, [
        functools.partial(_apply_step, api, step.changes, out, on_disable_failure)
        for step in plan.steps])
    return out

