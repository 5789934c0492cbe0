"""Pure: which bond has each floating address enabled, and what is wrong with the pair.

Used by ``bondha status`` and ``bondha check``; reads nothing itself.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

from .model import Kind, ObjectRef, Pair, RoutingObject
from .plan import group_addresses

__all__ = ["STATUS_SCHEMA", "AddressStatus", "Verdict", "address_status", "pair_findings",
           "render_status"]

STATUS_SCHEMA = "bondha.status/1"


class Verdict(enum.Enum):
    """Where one floating address is live."""

    MASTER = "master"
    BACKUP = "backup"
    OVERLAP = "overlap"  # enabled on both bonds: two bonders claim the address
    DARK = "dark"  # enabled on neither: nobody answers for it

    @property
    def healthy(self) -> bool:
        return self in (Verdict.MASTER, Verdict.BACKUP)


@attrs.frozen
class AddressStatus:
    kind: Kind
    address: str | None
    master: tuple[RoutingObject, ...]
    backup: tuple[RoutingObject, ...]

    @property
    def verdict(self) -> Verdict:
        on_master = any(o.enabled for o in self.master)
        on_backup = any(o.enabled for o in self.backup)
        if on_master and on_backup:
            return Verdict.OVERLAP
        if on_master:
            return Verdict.MASTER
        return Verdict.BACKUP if on_backup else Verdict.DARK

    def to_json(self) -> dict[str, Any]:
        def side(objs: tuple[RoutingObject, ...]) -> list[dict[str, Any]]:
            return [{"id": o.ref.id, "enabled": o.enabled} for o in objs]

        return {"kind": self.kind.value, "address": self.address, "master": side(self.master),
                "backup": side(self.backup), "verdict": self.verdict.value}


def address_status(
    pair: Pair, live: Mapping[ObjectRef, RoutingObject]
) -> tuple[AddressStatus, ...]:
    """One row per floating address, in the plan's order."""
    master = pair.master.bond_id
    return tuple(
        AddressStatus(
            floating.kind, floating.address,
            tuple(o for o in floating.objects if o.ref.bond_id == master),
            tuple(o for o in floating.objects if o.ref.bond_id != master),
        )
        for floating in group_addresses(live[ref] for ref in pair.refs() if ref in live)
    )


def render_status(pair: Pair, rows: tuple[AddressStatus, ...]) -> str:
    def ids(objs: tuple[RoutingObject, ...]) -> str:
        return ",".join(f"{o.ref.id}{'+' if o.enabled else '-'}" for o in objs) or "none"

    lines = [f"{'kind':<13} {'address':<28} {'master ' + str(pair.master.bond_id):<10} "
             f"{'backup ' + str(pair.backup.bond_id):<10} verdict"]
    for row in rows:
        verdict = row.verdict.value if row.verdict.healthy else row.verdict.value.upper() + " !"
        lines.append(f"{row.kind.label:<13} {row.address or '(none)':<28} {ids(row.master):<10} "
                     f"{ids(row.backup):<10} {verdict}")
    bad = sum(not r.verdict.healthy for r in rows)
    health = f"{bad} UNHEALTHY" if bad else "all healthy"
    lines.append(f"{len(rows)} addresses; {health} (id+ enabled, id- disabled)")
    return "\n".join(lines)


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
            side = "master" if row.master else "backup"
            findings.append(f"{name} exists only on the {side} bond: it has no partner to float to")
        elif not row.verdict.healthy:
            where = "both bonds" if row.verdict is Verdict.OVERLAP else "neither bond"
            findings.append(f"{name} is {row.verdict.value} right now (enabled on {where})")
    return findings
