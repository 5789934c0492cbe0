"""Pure planning: (pair, desired role, live objects) -> a :class:`Plan`, a graph of writes.

Objects are grouped into floating addresses by the address the server
reports, never by their position in the config. The plan's
:class:`Dependency` edges say which write waits for which:

- one address: the disables (inactive bond) before the enables (active bond),
  so that no address is ever enabled on both bonds;
- a route and the connected IP whose network holds its gateway (same bond):
  on the active bond the connected IP is enabled before the route, on the
  inactive bond the route is disabled before the connected IP, so that no
  enabled route is ever left without a way to its gateway;
- CPE NAT IPs and the connected IPs of their bond, in the old script's order:
  disabled before them, enabled after them.

Every other pair of writes is independent: the apply step runs them
concurrently. :attr:`Plan.changes` is one order that respects every edge
(the old script's: CPE NAT IPs, routes, connected IPs off; connected IPs,
CPE NAT IPs, routes on).

An address configured on one bond only (no partner to float to) is left as it is unless
the caller opts in (``float_unpaired``): disabling it can only make the address dark, and
such an object is almost always a mistake in ``[bond]`` (a misspelt option, the bonders'
private link listed as floating).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from .dependencies import gateway_holders
from .model import Kind, ObjectRef, Pair, Role, RoutingObject

__all__ = [
    "PLAN_SCHEMA",
    "Change",
    "Dependency",
    "FloatingAddress",
    "Plan",
    "Reason",
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


class Reason(enum.Enum):
    """Why one write waits for another."""

    ADDRESS = "address"  # the same address: its other bond's copy is disabled first
    GATEWAY = "gateway"  # a route and the connected IP that holds its gateway
    CPE_NAT = "cpe_nat"  # CPE NAT IPs and the connected IPs of their bond


@attrs.frozen
class Dependency:
    """Every write in ``then`` is sent only once every write in ``first`` has been answered.

    One edge block, not one edge per pair: "every CPE NAT IP after every connected IP of the
    bond" stays linear in size.
    """

    reason: Reason
    first: tuple[Change, ...]
    then: tuple[Change, ...]

    @property
    def after(self) -> str:
        """What ``then`` waits for, as an operator reads it: ``connected IP 203.0.113.1/30``."""
        if self.reason is Reason.ADDRESS:
            return "the other bond's copy"
        kind = self.first[0].ref.kind
        if self.reason is Reason.CPE_NAT:
            return f"the {kind.label}s of bond {self.first[0].ref.bond_id}"
        if len(self.first) > 3:
            return f"{len(self.first)} {kind.label}s"
        label = kind.label if len(self.first) == 1 else f"{kind.label}s"
        return f"{label} {', '.join(c.address or f'#{c.ref.id}' for c in self.first)}"

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason.value, "after": self.after,
                "first": [c.to_json() for c in self.first],
                "then": [c.to_json() for c in self.then]}


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
    """The changes of one address, disables first (each enable waits for them)."""

    kind: Kind
    address: str | None
    changes: tuple[Change, ...]


# The old script's order of kinds ("Enable routes after connected IPs"): every dependency
# edge points forward in it, so sorting by it gives an order that is safe one by one.
_OFF_ORDER = {Kind.CPE_NAT_IP: 0, Kind.ROUTE: 1, Kind.CONNECTED_IP: 2}
_ON_ORDER = {Kind.CONNECTED_IP: 3, Kind.CPE_NAT_IP: 4, Kind.ROUTE: 5}


_KIND_ORDER = {kind: n for n, kind in enumerate(Kind)}


def _ref_key(ref: ObjectRef) -> tuple[int, int, int]:
    """ObjectRef's own order as a plain tuple: sorting attrs instances is slow at 1000s."""
    return ref.bond_id, _KIND_ORDER[ref.kind], ref.id


def _write_rank(change: Change) -> int:
    return (_ON_ORDER if change.enabled else _OFF_ORDER)[change.ref.kind]


@attrs.frozen
class Plan:
    """An immutable graph of writes that makes ``role``'s bond the active one.

    ``steps`` group the writes by address (for reading); ``dependencies`` say which write
    waits for which. Falsy when there is nothing to do.
    """

    role: Role
    active_bond_id: int
    steps: tuple[Step, ...] = ()
    unchanged: tuple[ObjectRef, ...] = ()
    # Configured objects whose address has no copy on the other bond, left as they are.
    unpaired: tuple[RoutingObject, ...] = ()
    dependencies: tuple[Dependency, ...] = ()

    @property
    def changes(self) -> tuple[Change, ...]:
        """Every write, in an order that is safe to apply one after the other."""
        return tuple(sorted((c for step in self.steps for c in step.changes), key=_write_rank))

    def waits(self) -> dict[Change, tuple[Dependency, ...]]:
        """Each write that waits for others, mapped to what it waits for."""
        found: dict[Change, list[Dependency]] = {}
        for dependency in self.dependencies:
            for change in dependency.then:
                found.setdefault(change, []).append(dependency)
        return {change: tuple(deps) for change, deps in found.items()}

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
        waits = self.waits()
        lines = [f"{head}:"]
        for (kind, address), step in zip(names, self.steps):
            actions = ", then ".join(
                f"{c.verb} {c.ref.id} on bond {c.ref.bond_id}{_after_text(waits.get(c, ()))}"
                for c in step.changes)
            lines.append(f"  {kind:<{kind_width}}  {address:<{address_width}}  {actions}")
        lines += self.unpaired_lines()
        lines.append(f"Summary: {self.summary()}.")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The ``bondha.plan/1`` document (docs/json.md)."""
        waits = self.waits()
        entries = {c: {**c.to_json(), "after": [d.after for d in waits.get(c, ())
                                                if d.reason is not Reason.ADDRESS]}
                   for step in self.steps for c in step.changes}
        return {
            "schema": PLAN_SCHEMA,
            "active": self.role.value,
            "active_bond_id": self.active_bond_id,
            "changes": [entries[c] for c in self.changes],
            "unchanged": len(self.unchanged),
            "addresses": [
                {"kind": step.kind.value, "address": step.address,
                 "changes": [entries[c] for c in step.changes]}
                for step in self.steps
            ],
            "summary": self.summary(),
            "unpaired": [{"bond_id": o.ref.bond_id, "kind": o.ref.kind.value, "id": o.ref.id,
                          "enabled": o.enabled, "address": o.address} for o in self.unpaired],
            "dependencies": [d.to_json() for d in self.dependencies],
        }


def _after_text(waits: tuple[Dependency, ...]) -> str:
    """`` (after connected IP 203.0.113.1/30)``; the address's own order goes without saying."""
    named = [d.after for d in waits if d.reason is not Reason.ADDRESS]
    return f" (after {' and '.join(named)})" if named else ""


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
    dependencies: list[Dependency] = []
    for floating in group_addresses(live[ref] for ref in want):
        if floating.unpaired and not float_unpaired:
            unpaired.extend(floating.objects)
            continue
        wrong = [o for o in floating.objects if o.enabled != want[o.ref]]
        unchanged.extend(o.ref for o in floating.objects if o.enabled == want[o.ref])
        if wrong:
            ordered = sorted(wrong, key=lambda o: (want[o.ref], o.ref))  # disables first
            step = Step(floating.kind, floating.address, tuple(
                Change(o.ref, want[o.ref], o.address) for o in ordered))
            steps.append(step)
            offs = tuple(c for c in step.changes if not c.enabled)
            ons = tuple(c for c in step.changes if c.enabled)
            if offs and ons:
                dependencies.append(Dependency(Reason.ADDRESS, offs, ons))
    planned = {c.ref: c for step in steps for c in step.changes}
    dependencies += _gateway_dependencies(planned, [live[ref] for ref in want])
    dependencies += _cpe_nat_dependencies(planned)
    return Plan(role, pair.side(role).bond_id, tuple(steps), tuple(sorted(unchanged)),
                tuple(sorted(unpaired, key=lambda o: o.ref)), tuple(dependencies))


def _gateway_dependencies(planned: Mapping[ObjectRef, Change],
                          objects: Iterable[RoutingObject]) -> Iterator[Dependency]:
    """Per connected IP being written: the routes through it go on after it, off before it.

    Routes and connected IPs left as they are need no edge: an enabled connected IP that
    stays enabled already carries its routes, and a route that stays disabled needs none.
    """
    through: dict[ObjectRef, list[ObjectRef]] = {}
    for route, holders in gateway_holders(objects).items():
        for holder in holders:
            through.setdefault(holder, []).append(route)
    for holder in sorted(through, key=_ref_key):
        connected = planned.get(holder)
        if connected is None:
            continue
        routes = tuple(planned[r] for r in through[holder]
                       if r in planned and planned[r].enabled == connected.enabled)
        if not routes:
            continue
        if connected.enabled:
            yield Dependency(Reason.GATEWAY, (connected,), routes)
        else:
            yield Dependency(Reason.GATEWAY, routes, (connected,))


def _cpe_nat_dependencies(planned: Mapping[ObjectRef, Change]) -> Iterator[Dependency]:
    """Per bond: its CPE NAT IPs off before its connected IPs, on after them."""
    by_bond: dict[tuple[int, Kind, bool], list[Change]] = {}
    for ref, change in planned.items():  # plan order: deterministic, and no slow sort
        by_bond.setdefault((ref.bond_id, ref.kind, change.enabled), []).append(change)
    for (bond_id, kind, enabled), nat_ips in by_bond.items():
        connected = by_bond.get((bond_id, Kind.CONNECTED_IP, enabled))
        if kind is not Kind.CPE_NAT_IP or not connected:
            continue
        if enabled:
            yield Dependency(Reason.CPE_NAT, tuple(connected), tuple(nat_ips))
        else:
            yield Dependency(Reason.CPE_NAT, tuple(nat_ips), tuple(connected))
