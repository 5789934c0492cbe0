"""Hypothesis strategies shared by the property tests: pairs and their live states."""

from __future__ import annotations

from hypothesis import strategies as st

from bondha.model import BondSide, Kind, ObjectRef, Pair, Role, RoutingObject

MASTER_BOND = 1
BACKUP_BOND = 2

roles = st.sampled_from(Role)

# Where one floating address lives: on both bonds (the normal case), on one only
# (unpaired), or twice on one bond (a config mistake the plan must still handle).
placements = st.sampled_from(["both", "both", "both", "master", "backup", "master-twice"])

# A route's gateway: in connected IP n's /30 (10.0.n.0/30, when that connected IP exists),
# in no configured connected IP, missing, or text that is no address.
gateways = st.sampled_from([None, "10.0.0.2", "10.0.1.2", "10.0.2.2", "10.0.3.2", "10.0.0.1",
                            "10.0.9.2", "2001:db8::2", "not an address"])


def _address(kind: Kind, n: int) -> str:
    if kind is Kind.CONNECTED_IP:
        return f"10.0.{n}.1/30"
    if kind is Kind.ROUTE:
        return f"172.16.{n}.0/24"
    return f"10.2.{n}.1/32"


@st.composite
def pairs_and_live(draw: st.DrawFn) -> tuple[Pair, dict[ObjectRef, RoutingObject]]:
    """A configured pair and a live state of its objects, enabled flags at random.

    Routes get a gateway at random, usually in one of the connected IPs: each copy of a
    route may name another gateway (the plan must not assume the two bonds agree).
    """
    next_id = iter(range(1, 10_000))
    ids: dict[tuple[int, Kind], list[int]] = {}
    live: dict[ObjectRef, RoutingObject] = {}

    def add(bond: int, kind: Kind, address: str | None) -> None:
        ref = ObjectRef(bond, kind, next(next_id))
        ids.setdefault((bond, kind), []).append(ref.id)
        gateway = draw(gateways) if kind is Kind.ROUTE else None
        live[ref] = RoutingObject(ref, draw(st.booleans()), address, gateway)

    for kind in Kind:
        for n in range(draw(st.integers(0, 4))):
            address = None if draw(st.integers(0, 9)) == 0 else _address(kind, n)
            placement = draw(placements)
            if placement in ("both", "master", "master-twice"):
                add(MASTER_BOND, kind, address)
            if placement == "master-twice" and address is not None:
                add(MASTER_BOND, kind, address)
            if placement in ("both", "backup"):
                add(BACKUP_BOND, kind, address)

    def side(bond: int) -> BondSide:
        return BondSide(bond, *(tuple(ids.get((bond, kind), ())) for kind in Kind))

    return Pair(side(MASTER_BOND), side(BACKUP_BOND)), live
