"""Pure: which bond has each floating address enabled, and what is wrong with the pair.

Used by ``bondha status`` and ``bondha check``; reads nothing itself. The
table fits 80 columns and the JSON shape is versioned (``STATUS_SCHEMA``,
documented in docs/json.md).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from typing import Any

import attrs

from .keepalived.events import State, bonder_of_priority
from .model import Kind, ObjectRef, Pair, Role, RoutingObject
from .plan import group_addresses

__all__ = ["STATUS_SCHEMA", "AddressStatus", "LiveOn", "NodeState", "Verdict", "address_status",
           "pair_findings", "render_status", "status_to_json", "unpaired_problems"]

STATUS_SCHEMA = "bondha.status/2"


class LiveOn(enum.Enum):
    """The bonds on which one floating address is enabled right now."""

    MASTER = "master"
    BACKUP = "backup"
    BOTH = "both"
    NEITHER = "neither"


class Verdict(enum.Enum):
    """What one floating address needs from the operator; worst first."""

    OVERLAP = "overlap"  # enabled on both bonds: two bonders claim the address
    DARK = "dark"  # enabled on neither: nobody answers for it
    WRONG_BOND = "wrong_bond"  # live on the bond this node's keepalived state says is not active
    UNPAIRED = "unpaired"  # configured on one bond only: it cannot float
    OK = "ok"

    @property
    def healthy(self) -> bool:
        return self is Verdict.OK

    @property
    def label(self) -> str:
        """The table's text: upper case where something is wrong, so it shows without colour."""
        return "ok" if self is Verdict.OK else self.value.replace("_", " ").upper()


@attrs.frozen
class NodeState:
    """This node's keepalived state, and so which bond should carry the addresses.

    ``source`` says where it came from ("command line" today; the daemon's state file
    is the other intended source).
    """

    state: State
    priority: int
    source: str = "command line"
    age: float | None = None  # seconds since it was recorded; None: given on the command line

    @property
    def expected_active(self) -> Role:
        """MASTER here: this node's bond; any other state: the peer's bond.

        The how-to's convention: priority 10 marks the master bonder.
        """
        mine = bonder_of_priority(self.priority)
        return mine if self.state is State.MASTER else mine.other

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state.value, "priority": self.priority, "source": self.source,
                "expected_active": self.expected_active.value, "age_seconds": self.age}


@attrs.frozen
class AddressStatus:
    """One floating address: its objects on each bond, and (if known) the bond that should win."""

    kind: Kind
    address: str | None
    master: tuple[RoutingObject, ...]
    backup: tuple[RoutingObject, ...]
    expected: Role | None = None

    @property
    def live_on(self) -> LiveOn:
        on_master = any(o.enabled for o in self.master)
        on_backup = any(o.enabled for o in self.backup)
        if on_master and on_backup:
            return LiveOn.BOTH
        if on_master:
            return LiveOn.MASTER
        return LiveOn.BACKUP if on_backup else LiveOn.NEITHER

    @property
    def verdict(self) -> Verdict:
        live_on = self.live_on
        if live_on is LiveOn.BOTH:
            return Verdict.OVERLAP
        if live_on is LiveOn.NEITHER:
            return Verdict.DARK
        if not self.master or not self.backup:
            return Verdict.UNPAIRED
        if self.expected is not None and live_on.value != self.expected.value:
            return Verdict.WRONG_BOND
        return Verdict.OK

    def to_json(self) -> dict[str, Any]:
        def side(objs: tuple[RoutingObject, ...]) -> list[dict[str, Any]]:
            return [{"id": o.ref.id, "enabled": o.enabled} for o in objs]

        return {"kind": self.kind.value, "address": self.address, "master": side(self.master),
                "backup": side(self.backup), "live_on": self.live_on.value,
                "verdict": self.verdict.value}


def address_status(
    pair: Pair, live: Mapping[ObjectRef, RoutingObject], node: NodeState | None = None
) -> tuple[AddressStatus, ...]:
    """One row per floating address, in the plan's order."""
    master = pair.master.bond_id
    expected = node.expected_active if node else None
    return tuple(
        AddressStatus(
            floating.kind, floating.address,
            tuple(o for o in floating.objects if o.ref.bond_id == master),
            tuple(o for o in floating.objects if o.ref.bond_id != master),
            expected,
        )
        for floating in group_addresses(live[ref] for ref in pair.refs() if ref in live)
    )


def status_to_json(pair: Pair, rows: tuple[AddressStatus, ...],
                   node: NodeState | None = None) -> dict[str, Any]:
    """The ``bondha.status/2`` document (docs/json.md)."""
    counts = {verdict.value: sum(r.verdict is verdict for r in rows) for verdict in Verdict}
    return {"schema": STATUS_SCHEMA, "master_bond_id": pair.master.bond_id,
            "backup_bond_id": pair.backup.bond_id,
            "keepalived": node.to_json() if node else None,
            "healthy": all(r.verdict.healthy for r in rows), "counts": counts,
            "addresses": [r.to_json() for r in rows]}


# -- the table ---------------------------------------------------------------------------------

_KIND_SHORT = {Kind.CONNECTED_IP: "ip", Kind.ROUTE: "route", Kind.CPE_NAT_IP: "nat"}
_GREEN, _RED, _YELLOW, _RESET = "\x1b[32m", "\x1b[1;31m", "\x1b[33m", "\x1b[0m"
_COLOUR = {Verdict.OK: _GREEN, Verdict.OVERLAP: _RED, Verdict.DARK: _RED,
           Verdict.WRONG_BOND: _YELLOW, Verdict.UNPAIRED: _YELLOW}


def _objects(objs: tuple[RoutingObject, ...]) -> str:
    return ", ".join(f"{o.ref.id} {'on' if o.enabled else 'off'}" for o in objs) or "-"


def render_status(pair: Pair, rows: tuple[AddressStatus, ...], *,
                  node: NodeState | None = None, colour: bool = False, width: int = 80) -> str:
    """A table an operator reads at a glance, ``width`` columns wide (colour adds no width).

    An address too long for its column gets a line of its own, the row follows indented.
    """
    head = f"master bond {pair.master.bond_id}, backup bond {pair.backup.bond_id}"
    if node:
        expected = pair.side(node.expected_active).bond_id
        source = "" if node.source == "command line" else f" (from {node.source})"
        head += (f"; this node is keepalived {node.state.value}, priority {node.priority}"
                 f"{source}: bond {expected} ({node.expected_active.value}) should be active")
    header = ("kind", "address", "master", "backup", "verdict")
    cells = [(_KIND_SHORT[r.kind], r.address or "(none)", _objects(r.master), _objects(r.backup),
              r.verdict.label) for r in rows]
    widths = [max([len(header[i]), *(len(c[i]) for c in cells)]) for i in range(5)]
    fixed = widths[0] + widths[2] + widths[3] + widths[4] + 4 * 2
    widths[1] = max(len(header[1]), min(widths[1], width - fixed))

    def line(values: tuple[str, ...], verdict: Verdict | None = None) -> list[str]:
        kind, address, master, backup, text = values
        if colour and verdict is not None:
            text = f"{_COLOUR[verdict]}{text}{_RESET}"
        rest = f"{master:<{widths[2]}}  {backup:<{widths[3]}}  {text}"
        if len(address) > widths[1]:
            return [f"{kind:<{widths[0]}}  {address}",
                    f"{'':<{widths[0]}}  {'':<{widths[1]}}  {rest}".rstrip()]
        return [f"{kind:<{widths[0]}}  {address:<{widths[1]}}  {rest}".rstrip()]

    lines = [*_wrap(head, width), *line(header)]
    for row, values in zip(rows, cells):
        lines.extend(line(values, row.verdict))
    lines.append(_summary(rows, colour))
    return "\n".join(lines)


def _summary(rows: tuple[AddressStatus, ...], colour: bool) -> str:
    bad = [r for r in rows if not r.verdict.healthy]
    if not bad:
        text = f"{len(rows)} addresses, all ok"
        return f"{_GREEN}{text}{_RESET}" if colour else text
    counts = ", ".join(f"{n} {v.value.replace('_', ' ')}" for v in Verdict if not v.healthy
                       for n in [sum(r.verdict is v for r in bad)] if n)
    text = f"{len(rows)} addresses, {len(bad)} UNHEALTHY: {counts}"
    return f"{_RED}{text}{_RESET}" if colour else text


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def pair_findings(pair: Pair, live: Mapping[ObjectRef, RoutingObject]) -> list[str]:
    """What in the live pair breaks the drop-in assumptions, one warning line each."""
    findings = []
    for kind in Kind:
        for m_id, b_id in zip(pair.master.ids(kind), pair.backup.ids(kind)):
            m = live.get(ObjectRef(pair.master.bond_id, kind, m_id))
            b = live.get(ObjectRef(pair.backup.bond_id, kind, b_id))
            if m and b and m.address != b.address:
                findings.append(
                    f"{m.ref} ({m.address}) and {b.ref} ({b.address}) stand at the same position "
                    f"in the config but carry different addresses; bondha pairs by address")
    for row in address_status(pair, live):
        name = f"{row.kind.label} {row.address or '(no address)'}"
        for role, objs in (("master", row.master), ("backup", row.backup)):
            if len(objs) > 1:
                findings.append(f"{name} is configured {len(objs)} times on the {role} bond "
                                f"({', '.join(str(o.ref.id) for o in objs)})")
        if not row.master or not row.backup:
            continue  # unpaired_problems
        if row.live_on in (LiveOn.BOTH, LiveOn.NEITHER):
            where = "both bonds" if row.live_on is LiveOn.BOTH else "neither bond"
            findings.append(f"{name} is {row.verdict.value} right now (enabled on {where})")
    return findings


def unpaired_problems(pair: Pair, live: Mapping[ObjectRef, RoutingObject]) -> list[str]:
    """The floating addresses configured on one bond only, one line each.

    Such an object cannot float: disabling it can only make its address dark, so the plan
    leaves it alone (unless ``[bondha] float_unpaired``) and ``check`` calls it an error. Two
    lone connected IPs, one per bond, that are two hosts of one network are most likely the
    bonders' private link, which keepalived needs and which must never be disabled.
    """
    rows = [r for r in address_status(pair, live)
            if r.address is not None and not (r.master and r.backup)]
    problems: list[str] = []
    links: dict[str, dict[str, RoutingObject]] = {}
    for row in rows:
        if row.kind is Kind.CONNECTED_IP:
            network = _network(row.address)
            if network is not None:
                side = "master" if row.master else "backup"
                links.setdefault(network, {}).setdefault(side, (row.master or row.backup)[0])
    private = {net: found for net, found in links.items() if len(found) == 2}
    for net, found in private.items():
        m, b = found["master"], found["backup"]
        problems.append(
            f"connected IPs {m.ref.id} on bond {m.ref.bond_id} ({m.address}) and {b.ref.id} "
            f"on bond {b.ref.bond_id} ({b.address}) are two hosts of one network {net}, as "
            f"the bonders' private link (VRRP) is: it must never float; remove both ids from "
            f"[bond]")
    for row in rows:
        if row.kind is Kind.CONNECTED_IP and _network(row.address) in private:
            continue
        side = "master" if row.master else "backup"
        other = "backup" if row.master else "master"
        ids = ", ".join(str(o.ref.id) for o in (row.master or row.backup))
        problems.append(
            f"{row.kind.label} {row.address} exists only on the {side} bond ({ids}): it has no "
            f"partner to float to, and disabling it would make it dark; list its copy on the "
            f"{other} bond in [bond] (or set [bondha] float_unpaired = true)")
    return problems


def _network(address: str | None) -> str | None:
    try:
        interface = ipaddress.ip_interface(address or "")
    except ValueError:
        return None
    if interface.network.num_addresses == 1 or interface.ip == interface.network.network_address:
        return None  # a single host or a whole network: not one host of a link
    return str(interface.network)
