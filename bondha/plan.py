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


@attrs.frozen(cache_hash=True)  # a key of every table of the write graph (bondha.apply)
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
        return self._to_json({c: c.to_json() for c in (*self.first, *self.then)})

    def _to_json(self, documents: Mapping[Change, dict[str, Any]]) -> dict[str, Any]:
        # ``documents``: the changes' to_json(), made once per plan, not once per edge block.
        known = documents.get
        return {"reason": self.reason.value, "after": self.after,
                "first": [known(c) or c.to_json() for c in self.first],
                "then": [known(c) or c.to_json() for c in self.then]}


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

    def _named_waits(self) -> dict[Change, list[str]]:
        """Each write that waits for more than its address's other copy, mapped to the
        :attr:`Dependency.after` of each (made once per edge block, not once per write)."""
        found: dict[Change, list[str]] = {}
        for dependency in self.dependencies:
            if dependency.reason is Reason.ADDRESS:
                continue
            after = dependency.after
            for change in dependency.then:
                found.setdefault(change, []).append(after)
        return found

    def __bool__(self) -> bool:
        return bool(self.steps)

    def __len__(self) -> int:
        return sum(len(s.changes) for s in self.steps)

    def summary(self) -> str:
        return self._summary(self.changes)

    def _summary(self, changes: tuple[Change, ...]) -> str:
        counts: dict[tuple[str, int], int] = {}
        for change in changes:
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
        named = self._named_waits()
        lines = [f"{head}:"]
        for (kind, address), step in zip(names, self.steps):
            actions = ", then ".join(
                f"{c.verb} {c.ref.id} on bond {c.ref.bond_id}{_after_text(named.get(c))}"
                for c in step.changes)
            lines.append(f"  {kind:<{kind_width}}  {address:<{address_width}}  {actions}")
        lines += self.unpaired_lines()
        lines.append(f"Summary: {self.summary()}.")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The ``bondha.plan/1`` document (docs/json.md)."""
        named = self._named_waits()
        documents = {c: c.to_json() for step in self.steps for c in step.changes}
        entries = {c: {**document, "after": list(named.get(c, ()))}
                   for c, document in documents.items()}
        changes = self.changes
        return {
            "schema": PLAN_SCHEMA,
            "active": self.role.value,
            "active_bond_id": self.active_bond_id,
            "changes": [entries[c] for c in changes],
            "unchanged": len(self.unchanged),
            "addresses": [
                {"kind": step.kind.value, "address": step.address,
                 "changes": [entries[c] for c in step.changes]}
                for step in self.steps
            ],
            "summary": self._summary(changes),
            "unpaired": [{"bond_id": o.ref.bond_id, "kind": o.ref.kind.value, "id": o.ref.id,
                          "enabled": o.enabled, "address": o.address} for o in self.unpaired],
            "dependencies": [d._to_json(documents) for d in self.dependencies],
        }


def _after_text(named: list[str] | None) -> str:
    """`` (after connected IP 203.0.113.1/30)``; the address's own order goes without saying."""
    return f" (after {' and '.join(named)})" if named else ""


def desired_state(pair: Pair, role: Role) -> dict[ObjectRef, bool]:
    """Every configured object mapped to whether it should be enabled."""
    active = pair.side(role).bond_id
    return {ref: ref.bond_id == active for ref in pair.refs()}


def group_addresses(objects: Iterable[RoutingObject]) -> tuple[FloatingAddress, ...]:
    """Group objects into floating addresses, in a deterministic order."""
    groups: dict[tuple[Kind, str], list[RoutingObject]] = {}
    # One sort, by kind, then by ref: each group's objects come out in ref order, and the
    # groups in the order of their first objects (kind, then ref), with no second sort.
    for obj in sorted(objects, key=_kind_then_ref):
        key = (obj.ref.kind, obj.address if obj.address is not None else f"#{obj.ref}")
        groups.setdefault(key, []).append(obj)
    return tuple(
        FloatingAddress(objs[0].ref.kind, objs[0].address, tuple(objs)) for objs in groups.values()
    )


def _kind_then_ref(obj: RoutingObject) -> tuple[int, int, int]:
    # (kind, ref) as plain ints, in that order: ref's own kind then adds nothing.
    ref = obj.ref
    return _KIND_ORDER[ref.kind], ref.bond_id, ref.id


def make_plan(pair: Pair, role: Role, live: Live, *, float_unpaired: bool = False) -> Plan:
    """The writes that take ``live`` to the state where ``role``'s bond is active.

    ``live`` must hold every configured object (the read step guarantees it). Objects whose
    address is on one bond only are left alone (``Plan.unpaired``) unless ``float_unpaired``.
    """
    objects = _configured(pair, live)
    # desired_state(pair, role), without a lookup per object: on the active bond, enabled.
    active = pair.side(role).bond_id
    steps: list[Step] = []
    unchanged: list[ObjectRef] = []
    unpaired: list[RoutingObject] = []
    dependencies: list[Dependency] = []
    for floating in group_addresses(objects):
        if floating.unpaired and not float_unpaired:
            unpaired.extend(floating.objects)
            continue
        offs: list[Change] = []  # the inactive bond's copies, disabled first
        ons: list[Change] = []
        for obj in floating.objects:  # in ref order, so each list is too
            ref = obj.ref
            on = ref.bond_id == active
            if obj.enabled == on:
                unchanged.append(ref)
            else:
                (ons if on else offs).append(Change(ref, on, obj.address))
        if offs or ons:
            steps.append(Step(floating.kind, floating.address, (*offs, *ons)))
            if offs and ons:
                dependencies.append(Dependency(Reason.ADDRESS, tuple(offs), tuple(ons)))
    planned = {c.ref: c for step in steps for c in step.changes}
    dependencies += _gateway_dependencies(planned, objects)
    dependencies += _cpe_nat_dependencies(planned)
    return Plan(role, active, tuple(steps), tuple(sorted(unchanged, key=_ref_key)),
                tuple(sorted(unpaired, key=lambda o: _ref_key(o.ref))), tuple(dependencies))


def _configured(pair: Pair, live: Live) -> list[RoutingObject]:
    """The objects of ``live`` that ``pair`` configures, each once (in no particular order:
    the planner sorts); ValueError naming each configured object that ``live`` lacks."""
    ids: dict[tuple[int, Kind], set[int]] = {}
    for side in (pair.master, pair.backup):
        for kind in Kind:
            ids.setdefault((side.bond_id, kind), set()).update(side.ids(kind))
    # One pass over ``live`` with plain keys: no ObjectRef made, hashed and compared per id.
    objects = [obj for ref, obj in live.items() if ref.id in ids.get((ref.bond_id, ref.kind), ())]
    if len(objects) != sum(len(configured) for configured in ids.values()):
        missing = [str(ref) for ref in dict.fromkeys(pair.refs()) if ref not in live]
        raise ValueError(f"live state lacks {', '.join(missing)}")
    return objects


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
