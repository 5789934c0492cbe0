"""Pure planning: (pair, desired role, live objects) -> an ordered :class:`Plan`.

Objects are grouped into floating addresses by the address the server
reports, never by their position in the config. Within an address the
disables (inactive bond) come before the enables (active bond), so that no
prefix of a plan, applied in order, ever leaves an address enabled on both
bonds. Addresses are independent of each other, which is what lets the
apply step run them concurrently.

An address configured on one bond only (no partner to float to) is left as it is unless
the caller opts in (``float_unpaired``): disabling it can only make the address dark, and
such an object is almost always a mistake in ``[bond]`` (a misspelt option, the bonders'
private link listed as floating).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .model import Kind, ObjectRef, Pair, Role, RoutingObject

__all__ = [
    "PLAN_SCHEMA",
    "Change",
    "FloatingAddress",
    "Plan",
    "Step",
    "desired_state",
    "group_addresses",
    "make_plan",
]

PLAN_SCHEMA = "bondha.plan/1"

Live = Mapping[ObjectRef, RoutingObject]


@attrs.frozen
class Change:
    """One write: ``PATCH {"enabled": enabled}`` on ``ref``."""

    ref: ObjectRef
    enabled: bool
    address: str | None = None

    @property
    def verb(self) -> str:
        return "enable" if self.enabled else "disable"

    def __str__(self) -> str:
        where = f" ({self.address})" if self.address else ""
        return f"{self.verb} {self.ref}{where}"

    def to_json(self) -> dict[str, Any]:
        return {
            "bond_id": self.ref.bond_id,
            "kind": self.ref.kind.value,
            "id": self.ref.id,
            "enabled": self.enabled,
            "address": self.address,
        }


@attrs.frozen
class FloatingAddress:
    """Every configured object of one kind that carries one address, on either bond.

    An object whose address the server did not report floats alone (``address`` None).
    """

    kind: Kind
    address: str | None
    objects: tuple[RoutingObject, ...]

    @property
    def name(self) -> str:
        return self.address or f"#{self.objects[0].ref.id}"

    @property
    def unpaired(self) -> bool:
        """An address the server reported on one bond only: it has no partner to float to.

        An object without an address floats alone, as ever: bondha cannot tell its partner.
        """
        return self.address is not None and len({o.ref.bond_id for o in self.objects}) == 1


@attrs.frozen
class Step:
    """The changes of one address, to be applied in this order (disables first)."""

    kind: Kind
    address: str | None
    changes: tuple[Change, ...]


@attrs.frozen
class Plan:
    """An immutable, ordered set of writes that makes ``role``'s bond the active one.

    Falsy when there is nothing to do.
    """

    role: Role
    active_bond_id: int
    steps: tuple[Step, ...] = ()
    unchanged: tuple[ObjectRef, ...] = ()
    # Configured objects whose address has no copy on the other bond, left as they are.
    unpaired: tuple[RoutingObject, ...] = ()

    @property
    def changes(self) -> tuple[Change, ...]:
        """Every write, in an order that is safe to apply one after the other."""
        return tuple(c for step in self.steps for c in step.changes)

    def __bool__(self) -> bool:
        return bool(self.steps)

    def __len__(self) -> int:
        return sum(len(s.changes) for s in self.steps)

    def summary(self) -> str:
        counts: dict[tuple[str, int], int] = {}
        for change in self.changes:
            key = (change.verb, change.ref.bond_id)
            counts[key] = counts.get(key, 0) + 1
        parts = [f"{n} to {verb} on bond {bond}" for (verb, bond), n in sorted(
            counts.items(), key=lambda item: (item[0][0] != "disable", item[0][1]))]
        parts.append(f"{len(self.unchanged)} already right")
        if self.unpaired:
            parts.append(f"{len(self.unpaired)} left alone (no partner on the other bond)")
        return ", ".join(parts)

    def unpaired_lines(self) -> list[str]:
        """One line per object left alone, saying why and how to float it anyway."""
        return [f"left alone: {o.ref} ({o.address}, {'on' if o.enabled else 'off'}): its "
                f"address is on no other bond of the pair, so disabling it could only make "
                f"it dark; fix [bond] (or set [bondha] float_unpaired = true)"
                for o in self.unpaired]

    def render(self) -> str:
        """The plan as an operator reads it: one aligned line per address, then the summary."""
        head = f"Plan: make bond {self.active_bond_id} ({self.role.value}) active"
        if not self:
            text = f"{head}: nothing to do, {len(self.unchanged)} objects already right."
            return "\n".join([text, *self.unpaired_lines()])
        names = [(step.kind.label, step.address or "(no address)") for step in self.steps]
        kind_width = max(len(kind) for kind, _ in names)
        address_width = max(len(address) for _, address in names)
        lines = [f"{head}:"]
        for (kind, address), step in zip(names, self.steps):
            actions = ", then ".join(
                f"{c.verb} {c.ref.id} on bond {c.ref.bond_id}" for c in step.changes)
            lines.append(f"  {kind:<{kind_width}}  {address:<{address_width}}  {actions}")
        lines += self.unpaired_lines()
        lines.append(f"Summary: {self.summary()}.")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The ``bondha.plan/1`` document (docs/json.md)."""
        return {
            "schema": PLAN_SCHEMA,
            "active": self.role.value,
            "active_bond_id": self.active_bond_id,
            "changes": [c.to_json() for c in self.changes],
            "unchanged": len(self.unchanged),
            "addresses": [
                {"kind": step.kind.value, "address": step.address,
                 "changes": [c.to_json() for c in step.changes]}
                for step in self.steps
            ],
            "summary": self.summary(),
            "unpaired": [{"bond_id": o.ref.bond_id, "kind": o.ref.kind.value, "id": o.ref.id,
                          "enabled": o.enabled, "address": o.address} for o in self.unpaired],
        }


def desired_state(pair: Pair, role: Role) -> dict[ObjectRef, bool]:
    """Every configured object mapped to whether it should be enabled."""
    active = pair.side(role).bond_id
    return {ref: ref.bond_id == active for ref in pair.refs()}


def group_addresses(objects: Iterable[RoutingObject]) -> tuple[FloatingAddress, ...]:
    """Group objects into floating addresses, in a deterministic order."""
    groups: dict[tuple[Kind, str], list[RoutingObject]] = {}
    for obj in sorted(objects, key=lambda o: o.ref):
        key = (obj.ref.kind, obj.address if obj.address is not None else f"#{obj.ref}")
        groups.setdefault(key, []).append(obj)
    ordered = sorted(groups.values(), key=lambda objs: (objs[0].ref.kind, objs[0].ref))
    return tuple(
        FloatingAddress(objs[0].ref.kind, objs[0].address, tuple(objs)) for objs in ordered
    )


def make_plan(pair: Pair, role: Role, live: Live, *, float_unpaired: bool = False) -> Plan:
    """The writes that take ``live`` to the state where ``role``'s bond is active.

    ``live`` must hold every configured object (the read step guarantees it). Objects whose
    address is on one bond only are left alone (``Plan.unpaired``) unless ``float_unpaired``.
    """
    want = desired_state(pair, role)
    missing = [str(ref) for ref in want if ref not in live]
    if missing:
        raise ValueError(f"live state lacks {', '.join(missing)}")
    steps: list[Step] = []
    unchanged: list[ObjectRef] = []
    unpaired: list[RoutingObject] = []
    for floating in group_addresses(live[ref] for ref in want):
        if floating.unpaired and not float_unpaired:
            unpaired.extend(floating.objects)
            continue
        wrong = [o for o in floating.objects if o.enabled != want[o.ref]]
        unchanged.extend(o.ref for o in floating.objects if o.enabled == want[o.ref])
        if wrong:
            ordered = sorted(wrong, key=lambda o: (want[o.ref], o.ref))  # disables first
            steps.append(Step(floating.kind, floating.address, tuple(
                Change(o.ref, want[o.ref], o.address) for o in ordered)))
    return Plan(role, pair.side(role).bond_id, tuple(steps), tuple(sorted(unchanged)),
                tuple(sorted(unpaired, key=lambda o: o.ref)))
