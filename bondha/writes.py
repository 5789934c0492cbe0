"""Applying a plan's writes in the order the bonders need, concurrently where it allows.

Each write is sent once every write it waits for (:attr:`bondha.plan.Plan.dependencies`)
has been answered (:func:`bondha.apply.send_in_order`). A write whose predecessor failed is
held back: an enable whose other bond's copy could not be disabled (``[bondha]
on_disable_failure = hold``; an address dark is recoverable, two bonders claiming one
address is not), a route whose connected IP could not be enabled, a connected IP whose
routes could not be disabled.
"""

from __future__ import annotations

import logging

import attrs

from .apply import Held, Sent, send_in_order
from .client import ApiClient
from .errors import ApiError, Superseded
from .plan import Change, Dependency, Plan, Reason
from .result import Failure, Live

__all__ = ["Outcome", "apply_plan"]

log = logging.getLogger("bondha")


@attrs.define
class Outcome:
    done: list[Change] = attrs.Factory(list)
    failed: list[Failure] = attrs.Factory(list)
    skipped: list[Change] = attrs.Factory(list)
    held: dict[Change, str] = attrs.Factory(dict)  # why each skipped write was held back
    final: list[ApiError] = attrs.Factory(list)  # failures no further round can fix
    superseded: str | None = None
    read_back: Live | None = None  # the pair as verification read it


async def apply_plan(api: ApiClient, plan: Plan, on_disable_failure: str = "hold") -> Outcome:
    """Send the plan's writes in dependency order (bondha.apply), within the pool.

    A write whose predecessor failed is held back; ``on_disable_failure`` "enable" lets an
    enable go ahead although the disable of its other bond's copy failed.
    """
    out = Outcome()

    async def send(change: Change) -> Sent:
        try:
            await api.set_enabled(change.ref, change.enabled)
        except Superseded as exc:
            out.superseded = str(exc)
            return Sent.STOP
        except ApiError as exc:
            log.error("%s: failed: %s", change, exc)
            out.failed.append(Failure(change, str(exc)))
            if not exc.retryable:
                out.final.append(exc)
            return Sent.FAILED
        # "reported": the result printed at the end lists it too (bondha.log)
        log.info("%sd %s", change.verb, change.ref if not change.address
                 else f"{change.ref} ({change.address})", extra={"reported": True})
        out.done.append(change)
        return Sent.DONE

    def go_ahead(change: Change, dependency: Dependency, blocker: Change) -> bool:
        if dependency.reason is Reason.CPE_NAT:
            # Order only: which connected IP a CPE NAT IP needs is not in the API, so one
            # failed CPE NAT IP write must not hold back every connected IP of its bond.
            log.debug("%s goes ahead although %s did not happen", change, blocker)
            return True
        if dependency.reason is not Reason.ADDRESS or on_disable_failure != "enable":
            return False
        log.warning("enabling the other copy of %s anyway ([bondha] on_disable_failure"
                    " = enable): both bonds claim it until the disable succeeds",
                    change.address or change.ref)
        return True

    for held in await send_in_order(plan, api.pool_size, send, go_ahead):
        out.skipped.append(held.change)
        out.held[held.change] = _held_reason(held)
        if held.dependency.reason is Reason.ADDRESS:
            log.error("NOT enabling %s: the other bond's copy is still enabled", held.change.ref)
        else:
            log.error("NOT %s: %s", held.change, out.held[held.change])
    return out


def _held_reason(held: Held) -> str:
    if held.dependency.reason is Reason.ADDRESS:
        return "the other bond's copy could not be disabled"
    what = "failed" if held.blocker_failed else "was held back"
    return f"it waits for {held.blocker} ({held.dependency.reason.value}), which {what}"
