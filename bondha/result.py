"""What a reconcile did: a pure value, to print, serialise and record.

``Result`` is built by :mod:`bondha.reconciler` and read by every front end and by the
node's records; it imports no HTTP or retry library.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .model import Kind, ObjectRef, RoutingObject
from .plan import Change, Plan, group_addresses

__all__ = ["Failure", "Live", "Result", "unserved_addresses"]

Live = dict[ObjectRef, RoutingObject]


@attrs.frozen
class Failure:
    """A write that did not happen, and why."""

    change: Change
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {**self.change.to_json(), "reason": self.reason}


@attrs.frozen(repr=False)
class Result:
    """What a reconcile did: the plan, the writes done, failed and held back, and the check.

    ``skipped`` are writes held back because one they wait for failed (:meth:`why_skipped`
    says which): an enable whose other bond's copy could not be disabled (an address dark
    is recoverable, two bonders claiming one address is not), a route whose connected IP
    could not be enabled, a connected IP whose routes could not be disabled.
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
    # to be written; None when no read succeeded. For the records and metrics (bondha.node.publish).
    live: Live | None = attrs.field(default=None, eq=False, repr=False)
    # What the last read still found out of place (the verification's plan, or the first
    # plan when nothing was written); None when no read succeeded. For the records, so that
    # they need not plan again.
    last_plan: Plan | None = attrs.field(default=None, eq=False, repr=False)
    # The floating addresses, as last read, that the active bond alone does not carry
    # (unserved_addresses): a run with any is not converged.
    unserved: tuple[str, ...] = ()
    held: Mapping[Change, str] = attrs.field(factory=dict, eq=False, repr=False)

    def __repr__(self) -> str:
        # Short, and of the same size for any plan: asyncio.run reprs the main task, and so
        # its result, when it restores the SIGINT handler (signal.getsignal builds an error
        # message that holds the repr): attrs' repr of every plan, change and dependency cost
        # tens of milliseconds per run at 600 addresses. The fields' own reprs stay whole.
        verdict = "dry run" if self.dry_run else (
            "converged" if self.converged else
            "superseded" if self.superseded else "not converged")
        return (f"<Result bond {self.plan.active_bond_id} ({self.plan.role.value}) {verdict}: "
                f"{len(self.plan)} planned, {len(self.done)} done, {len(self.failed)} failed, "
                f"{len(self.skipped)} held back, {len(self.remaining)} remaining, "
                f"{self.rounds} round(s)>")

    def why_skipped(self, change: Change) -> str:
        """Why ``change`` (one of ``skipped``) was held back."""
        return self.held.get(change, "the other bond's copy could not be disabled")

    @property
    def converged(self) -> bool:
        """True when the live state was read back, matches the desired state, and every
        floating address is enabled on the active bond and on no other (never while
        ``status`` would show it DARK or OVERLAP)."""
        if self.dry_run:
            return not self.plan
        return not (self.failed or self.skipped or self.remaining or self.verify_error
                    or self.superseded or self.unserved)

    def render(self) -> str:
        role = self.plan.role.value
        bond = self.plan.active_bond_id
        if self.dry_run:
            return self.plan.render()
        lines = [f"{c}: done" for c in self.done]
        lines += [f"{f.change}: FAILED: {f.reason}" for f in self.failed]
        lines += [f"{c}: NOT DONE ({self.why_skipped(c)})" for c in self.skipped]
        lines += [f"{c}: still needed after verification" for c in self.remaining]
        if self.verify_error:
            lines.append(f"verification failed: {self.verify_error}")
        if self.superseded:
            lines.append(self.superseded)
        else:
            lines += self.plan.unpaired_lines()
            lines += list(self.unserved)
        verdict = ("converged and verified" if self.converged else
                   "superseded" if self.superseded else "NOT converged")
        rounds = f", {self.rounds} rounds" if self.rounds > 1 else ""
        lines.append(f"bond {bond} ({role}) active: {verdict}; {len(self.done)} changed, "
                     f"{len(self.plan.unchanged)} already right, {len(self.failed)} failed "
                     f"({self.requests} requests{rounds}, {self.seconds:.2f}s)")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "bondha.result/2",
            "active": self.plan.role.value,
            "active_bond_id": self.plan.active_bond_id,
            "dry_run": self.dry_run,
            "converged": self.converged,
            "plan": self.plan.to_json(),
            "done": [c.to_json() for c in self.done],
            "failed": [f.to_json() for f in self.failed],
            "skipped": [{**c.to_json(), "reason": self.why_skipped(c)} for c in self.skipped],
            "remaining": [c.to_json() for c in self.remaining],
            "verify_error": self.verify_error,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rounds": self.rounds,
            "superseded": self.superseded,
            "unserved": list(self.unserved),
        }



def unserved_addresses(live: Live, active_bond_id: int) -> tuple[str, ...]:
    """Each floating address in ``live`` that the active bond alone does not carry.

    What ``status`` calls DARK (no bond) or OVERLAP (both bonds), and an address enabled only
    on the inactive bond (an unpaired object left alone there): one line each, in plan order.
    """
    enabled_on: dict[tuple[Kind, str], set[int]] = {}
    for obj in live.values():
        key = (obj.ref.kind, obj.address if obj.address is not None else f"#{obj.ref}")
        bonds = enabled_on.setdefault(key, set())
        if obj.enabled:
            bonds.add(obj.ref.bond_id)
    wrong = {key for key, on in enabled_on.items() if on != {active_bond_id}}
    if not wrong:  # the common case: no grouping, no sorting
        return ()
    lines = []
    for floating in group_addresses(o for o in live.values()
                                    if (o.ref.kind, o.address if o.address is not None
                                        else f"#{o.ref}") in wrong):
        on = {o.ref.bond_id for o in floating.objects if o.enabled}
        name = f"{floating.kind.label} {floating.address or '(no address)'}"
        what = ("DARK: enabled on no bond" if not on else
                "OVERLAP: enabled on both bonds" if len(on) > 1 else
                f"enabled on bond {next(iter(on))} only, not on the active bond")
        lines.append(f"{name}: {what}")
    return tuple(lines)
