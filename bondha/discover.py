"""Pure: every routing object of two bonds -> the floating pairs, and a ready ``[bond]`` section.

``bondha discover`` reads the objects (reconciler.read_bonds) and hands them here.
Objects pair by the address the server reports, as the reconciler pairs them;
what cannot pair (an address on one bond only, an address twice on one bond,
no address) is listed with the reason, and so is what the operator left out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from .errors import UsageError
from .model import BondSide, Kind, Pair, Role, RoutingObject, normalize_address
from .plan import FloatingAddress, group_addresses
from .status import AddressStatus, LiveOn
from .text import plural

__all__ = ["DISCOVER_SCHEMA", "OWN_COMMENT", "Discovery", "Unpaired", "address_matches",
           "check_bonds", "discover", "parse_address", "parse_kinds"]

DISCOVER_SCHEMA = "bondha.discover/1"
OWN_COMMENT = "# Written by"  # starts the section's note; replaced, not kept, on a rewrite
_KIND_NAMES = {name: kind for kind in Kind
               for name in (kind.value, kind.config_stem, kind.config_stem + "s")}


def parse_kinds(text: str) -> tuple[Kind, ...]:
    """``connected_ips,routes`` (or the singular, as in the option names) -> kinds in order."""
    kinds = set()
    for item in (part.strip().lower().replace("-", "_") for part in text.split(",")):
        if item not in _KIND_NAMES:
            raise ValueError(f"unknown kind {item!r}; use connected_ips, routes, cpe_nat_ips")
        kinds.add(_KIND_NAMES[item])
    return tuple(sorted(kinds))


def parse_address(text: str) -> str:
    """An ``--include``/``--exclude`` value: an address, with or without a prefix length."""
    try:
        return str(ipaddress.ip_interface(text.strip()) if "/" in text
                   else ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or network") from None


def address_matches(address: str | None, wanted: str) -> bool:
    """With a prefix length, the same interface/network; without, the same IP at any prefix."""
    if address is None:
        return False
    if "/" in wanted:
        return normalize_address(wanted) == address
    try:
        return ipaddress.ip_interface(address).ip == ipaddress.ip_address(wanted)
    except ValueError:
        return False


@attrs.frozen
class Unpaired:
    """An address that will not float, and why."""

    kind: Kind
    address: str | None
    objects: tuple[RoutingObject, ...]
    reason: str

    @property
    def name(self) -> str:
        return f"{self.kind.label} {self.address or '(no address)'}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "address": self.address, "reason": self.reason,
                "objects": [{"bond_id": o.ref.bond_id, "id": o.ref.id, "enabled": o.enabled}
                            for o in self.objects]}


@attrs.frozen
class Discovery:
    """What two bonds hold: the pairs that can float, and everything else with its reason."""

    master_bond_id: int
    backup_bond_id: int
    pairs: tuple[AddressStatus, ...]
    unpaired: tuple[Unpaired, ...] = ()
    left_out: tuple[Unpaired, ...] = ()
    unmatched_includes: tuple[str, ...] = ()
    command: str = "bondha discover"

    def pair(self) -> Pair:
        """The discovered pair, ids in pair order (the old script pairs by position)."""
        def side(role: Role) -> BondSide:
            def ids(kind: Kind) -> tuple[int, ...]:
                return tuple(getattr(row, role.value)[0].ref.id
                             for row in self.pairs if row.kind is kind)

            bond_id = self.master_bond_id if role is Role.MASTER else self.backup_bond_id
            return BondSide(bond_id, ids(Kind.CONNECTED_IP), ids(Kind.ROUTE),
                            ids(Kind.CPE_NAT_IP))

        return Pair(side(Role.MASTER), side(Role.BACKUP))

    def warnings(self) -> list[str]:
        """Pairs that are unhealthy right now, and ``--include`` values that matched nothing."""
        found = []
        for row in self.pairs:
            name = f"{row.kind.label} {row.address}"
            if row.live_on is LiveOn.BOTH:
                found.append(f"{name} is enabled on both bonds right now (overlap)")
            elif row.live_on is LiveOn.NEITHER:
                found.append(f"{name} is enabled on neither bond right now (dark)")
        found.extend(f"--include {address} matches no object of bonds {self.master_bond_id} and "
                     f"{self.backup_bond_id}" for address in self.unmatched_includes)
        return found

    def bond_section(self) -> str:
        """The ``[bond]`` section, ready for swap-active-bond.conf."""
        pair = self.pair()
        lines = ["[bond]", f"{OWN_COMMENT} {self.command}: "
                           f"{plural(len(self.pairs), 'floating address', 'floating addresses')}."]
        for role in Role:
            side = pair.side(role)
            lines.append(f"{role.value}_bond_id = {side.bond_id}")
            lines.extend(f"{role.value}_{kind.config_stem}_ids = "
                         f"{', '.join(map(str, side.ids(kind)))}"
                         for kind in Kind if side.ids(kind))
        return "\n".join(lines) + "\n"

    def render(self) -> str:
        """The report as ``#`` comments, then the section: the whole text is valid INI."""
        report = [f"Bonds {self.master_bond_id} (master) and {self.backup_bond_id} (backup): "
                  f"{len(self.pairs)} floating addresses paired, {len(self.unpaired)} not "
                  f"paired, {len(self.left_out)} left out."]
        names = [f"{r.kind.label} {r.address}" for r in self.pairs]
        width = max((len(n) for n in names), default=0)
        if self.pairs:
            report.append("paired (master id, backup id):")
        for name, row in zip(names, self.pairs):
            m, b = row.master[0], row.backup[0]
            report.append(f"  {name:<{width}}  {m.ref.id} {'on' if m.enabled else 'off'}, "
                          f"{b.ref.id} {'on' if b.enabled else 'off'}")
        for title, items in (("not paired:", self.unpaired), ("left out:", self.left_out)):
            if items:
                report.append(title)
                report.extend(f"  {item.name}: {item.reason}" for item in items)
        report.extend(f"warning: {warning}" for warning in self.warnings())
        comments = [f"# {line}".rstrip() for line in report]
        return "\n".join(comments) + "\n\n" + self.bond_section()

    def to_json(self) -> dict[str, Any]:
        """The ``bondha.discover/1`` document (docs/json.md)."""
        def obj(o: RoutingObject) -> dict[str, Any]:
            return {"id": o.ref.id, "enabled": o.enabled}

        return {
            "schema": DISCOVER_SCHEMA,
            "master_bond_id": self.master_bond_id,
            "backup_bond_id": self.backup_bond_id,
            "pairs": [{"kind": r.kind.value, "address": r.address, "master": obj(r.master[0]),
                       "backup": obj(r.backup[0]), "live_on": r.live_on.value}
                      for r in self.pairs],
            "unpaired": [u.to_json() for u in self.unpaired],
            "left_out": [u.to_json() for u in self.left_out],
            "warnings": self.warnings(),
            "bond_section": self.bond_section(),
        }


def _why_unpaired(floating: FloatingAddress, master: int, backup: int) -> str | None:
    """None when the address pairs one object on each bond."""
    if floating.address is None:
        return "the server reports no address for it"
    on = {bond: [o.ref.id for o in floating.objects if o.ref.bond_id == bond]
          for bond in (master, backup)}
    twice = [f"{len(ids)} times on bond {bond} (ids {', '.join(map(str, ids))})"
             for bond, ids in on.items() if len(ids) > 1]
    if twice:
        return f"{' and '.join(twice)}: which one floats is ambiguous"
    for bond, other in ((master, backup), (backup, master)):
        if not on[other]:
            return f"only on bond {bond} (id {on[bond][0]}): no partner to float to"
    return None


def check_bonds(master_bond_id: int, backup_bond_id: int) -> None:
    """Two different bonds, or UsageError (checked before anything is read)."""
    if master_bond_id == backup_bond_id:
        raise UsageError(f"discover: the master and the backup bond must differ "
                         f"(both are {master_bond_id})")


def discover(
    master_bond_id: int,
    backup_bond_id: int,
    objects: Iterable[RoutingObject],
    *,
    kinds: Sequence[Kind] = tuple(Kind),
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    command: str = "bondha discover",
) -> Discovery:
    """Pair the objects of the two bonds by address.

    ``include`` (if given) keeps only the addresses it names, ``exclude`` drops
    addresses; both take an IP (any prefix length) or an exact address with prefix.
    """
    check_bonds(master_bond_id, backup_bond_id)
    pairs: list[AddressStatus] = []
    unpaired: list[Unpaired] = []
    left_out: list[Unpaired] = []
    bonds = (master_bond_id, backup_bond_id)
    mine = [o for o in objects if o.ref.bond_id in bonds]
    for floating in group_addresses(mine):
        objs = floating.objects
        if floating.kind not in kinds:
            left_out.append(Unpaired(floating.kind, floating.address, objs, "kind not chosen "
                                     "(--kinds)"))
            continue
        if include and not any(address_matches(floating.address, a) for a in include):
            left_out.append(Unpaired(floating.kind, floating.address, objs, "not in --include"))
            continue
        excluded = next((a for a in exclude if address_matches(floating.address, a)), None)
        if excluded is not None:
            left_out.append(Unpaired(floating.kind, floating.address, objs,
                                     f"--exclude {excluded}"))
            continue
        reason = _why_unpaired(floating, master_bond_id, backup_bond_id)
        if reason is not None:
            unpaired.append(Unpaired(floating.kind, floating.address, objs, reason))
            continue
        pairs.append(AddressStatus(
            floating.kind, floating.address,
            tuple(o for o in objs if o.ref.bond_id == master_bond_id),
            tuple(o for o in objs if o.ref.bond_id == backup_bond_id)))
    unmatched = tuple(a for a in include
                      if not any(address_matches(o.address, a) for o in mine))
    return Discovery(master_bond_id, backup_bond_id, tuple(pairs), tuple(unpaired),
                     tuple(left_out), unmatched, command)
