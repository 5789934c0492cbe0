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


@st.composite
def pairs_and_live(draw: st.DrawFn) -> tuple[Pair, dict[ObjectRef, RoutingObject]]:
    """A configured pair and a live state of its objects, enabled flags at random."""
    next_id = iter(range(1, 10_000))
    ids: dict[tuple[int, Kind], list[int]] = {}
    live: dict[ObjectRef, RoutingObject] = {}

    def add(bond: int, kind: Kind, address: str | None) -> None:
        ref = ObjectRef(bond, kind, next(next_id))
        ids.setdefault((bond, kind), []).append(ref.id)
        live[ref] = RoutingObject(ref, draw(st.booleans()), address)

    for k, kind in enumerate(Kind):
        for n in range(draw(st.integers(0, 4))):
            address = None if draw(st.integers(0, 9)) == 0 else f"10.{k}.{n}.1/32"
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
