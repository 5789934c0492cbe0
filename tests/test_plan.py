"""Properties of the pure planner: convergence, idempotence, and never two bonds at once."""

from __future__ import annotations

import json
from random import Random

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bondha.model import BondSide, Kind, ObjectRef, Pair, Role, RoutingObject
from bondha.plan import Change, Plan, desired_state, group_addresses, make_plan
from bondha.result import unserved_addresses
from tests.strategies import pairs_and_live, roles

Live = dict[ObjectRef, RoutingObject]


def apply(live: Live, changes: tuple[Change, ...]) -> Live:
    out = dict(live)
    for change in changes:
        out[change.ref] = attrs.evolve(out[change.ref], enabled=change.enabled)
    return out


def overlapping(pair: Pair, live: Live) -> set[tuple[Kind, str]]:
    """Addresses enabled on both bonds."""
    bonds: dict[tuple[Kind, str], set[int]] = {}
    for obj in live.values():
        if obj.enabled and obj.address is not None:
            bonds.setdefault((obj.ref.kind, obj.address), set()).add(obj.ref.bond_id)
    return {key for key, on in bonds.items() if len(on) > 1}


@given(pairs_and_live(), roles)
def test_applying_the_plan_reaches_the_desired_state(case: tuple[Pair, Live], role: Role) -> None:
    pair, live = case
    after = apply(live, make_plan(pair, role, live, float_unpaired=True).changes)
    assert {ref: obj.enabled for ref, obj in after.items()} == desired_state(pair, role)


@given(pairs_and_live(), roles)
def test_unpaired_objects_are_left_alone_and_the_others_reach_the_desired_state(
        case: tuple[Pair, Live], role: Role) -> None:
    pair, live = case
    plan = make_plan(pair, role, live)
    lone = {o.ref for f in group_addresses(live.values()) if f.unpaired for o in f.objects}
    assert {o.ref for o in plan.unpaired} == lone
    assert not {c.ref for c in plan.changes} & lone
    after = apply(live, plan.changes)
    want = desired_state(pair, role)
    assert {ref: obj.enabled for ref, obj in after.items() if ref not in lone} == {
        ref: enabled for ref, enabled in want.items() if ref not in lone}
    assert set(plan.unchanged) | {c.ref for c in plan.changes} | lone == set(live)


@given(pairs_and_live(), roles)
def test_planning_again_yields_the_empty_plan(case: tuple[Pair, Live], role: Role) -> None:
    pair, live = case
    once = make_plan(pair, role, live, float_unpaired=True)
    again = make_plan(pair, role, apply(live, once.changes), float_unpaired=True)
    assert not again
    assert len(again) == 0
    assert len(again.unchanged) == len(live)


@given(pairs_and_live(), roles)
def test_no_prefix_enables_an_address_on_both_bonds(case: tuple[Pair, Live], role: Role) -> None:
    pair, live = case
    plan = make_plan(pair, role, live, float_unpaired=True)
    before = overlapping(pair, live)
    changes = plan.changes
    for n in range(len(changes) + 1):
        assert overlapping(pair, apply(live, changes[:n])) <= before
    # Steps run concurrently: each address must also be safe on its own, whatever the others do.
    for step in plan.steps:
        for n in range(len(step.changes) + 1):
            assert overlapping(pair, apply(live, step.changes[:n])) <= before


@given(pairs_and_live(), roles)
def test_plan_holds_only_needed_writes_each_once(case: tuple[Pair, Live], role: Role) -> None:
    pair, live = case
    plan = make_plan(pair, role, live, float_unpaired=True)
    want = desired_state(pair, role)
    refs = [c.ref for c in plan.changes]
    assert len(refs) == len(set(refs))
    assert all(live[c.ref].enabled != c.enabled == want[c.ref] for c in plan.changes)
    assert set(refs) | set(plan.unchanged) == set(live)
    addresses = [(s.kind, s.address) for s in plan.steps if s.address is not None]
    assert len(addresses) == len(set(addresses)), "an address is split over two steps"


@given(pairs_and_live(), roles)
def test_json_has_one_entry_per_write(case: tuple[Pair, Live], role: Role) -> None:
    pair, live = case
    plan = make_plan(pair, role, live, float_unpaired=True)
    data = json.loads(json.dumps(plan.to_json()))
    assert data["schema"] == "bondha.plan/1"
    assert [(c["bond_id"], c["kind"], c["id"], c["enabled"]) for c in data["changes"]] == [
        (c.ref.bond_id, c.ref.kind.value, c.ref.id, c.enabled) for c in plan.changes]


def _pair() -> tuple[Pair, Live]:
    # Listed in a different order on the two bonds: pairing must follow the address.
    pair = Pair(BondSide(1, connected_ip_ids=(1, 2), route_ids=(7,)),
                BondSide(3, connected_ip_ids=(5, 4), route_ids=(8,)))
    objs = [
        RoutingObject(ObjectRef(1, Kind.CONNECTED_IP, 1), True, "203.0.113.1/30"),
        RoutingObject(ObjectRef(1, Kind.CONNECTED_IP, 2), True, "2001:DB8::1/64"),
        RoutingObject(ObjectRef(3, Kind.CONNECTED_IP, 4), False, "203.0.113.1/30"),
        RoutingObject(ObjectRef(3, Kind.CONNECTED_IP, 5), False, "2001:db8::1/64"),
        RoutingObject(ObjectRef(1, Kind.ROUTE, 7), True, "198.51.100.0/24"),
        RoutingObject(ObjectRef(3, Kind.ROUTE, 8), False, "198.51.100.0/24"),
    ]
    return pair, {o.ref: o for o in objs}


def test_objects_pair_by_address_not_by_position() -> None:
    _, live = _pair()
    groups = group_addresses(live.values())
    assert [(g.address, [o.ref.id for o in g.objects]) for g in groups] == [
        ("203.0.113.1/30", [1, 4]), ("2001:db8::1/64", [2, 5]), ("198.51.100.0/24", [7, 8])]


def test_failover_plan_disables_then_enables_each_address() -> None:
    pair, live = _pair()
    plan = make_plan(pair, Role.BACKUP, live)
    # The old script's order of kinds: routes off, connected IPs off, connected IPs on, routes on.
    assert [(c.ref.id, c.enabled) for c in plan.changes] == [
        (7, False), (1, False), (2, False), (4, True), (5, True), (8, True)]
    assert [[(c.ref.id, c.enabled) for c in step.changes] for step in plan.steps] == [
        [(1, False), (4, True)], [(2, False), (5, True)], [(7, False), (8, True)]]
    assert plan.summary() == "3 to disable on bond 1, 3 to enable on bond 3, 0 already right"
    lines = plan.render().splitlines()
    assert lines[0] == "Plan: make bond 3 (backup) active:"
    assert " ".join(lines[1].split()) == (
        "connected IP 203.0.113.1/30 disable 1 on bond 1, then enable 4 on bond 3")
    assert len({line.index("disable") for line in lines[1:4]}) == 1  # aligned
    assert lines[-1] == f"Summary: {plan.summary()}."
    data = plan.to_json()
    assert data["schema"] == "bondha.plan/1"
    assert [(a["address"], [c["id"] for c in a["changes"]]) for a in data["addresses"]] == [
        ("203.0.113.1/30", [1, 4]), ("2001:db8::1/64", [2, 5]), ("198.51.100.0/24", [7, 8])]
    by_address = [c for a in data["addresses"] for c in a["changes"]]
    assert sorted(data["changes"], key=by_address.index) == by_address


def test_converged_pair_gives_the_empty_plan() -> None:
    pair, live = _pair()
    plan = make_plan(pair, Role.MASTER, live)
    assert plan == Plan(Role.MASTER, 1, (), tuple(sorted(live)))
    assert "nothing to do, 6 objects already right" in plan.render()


@given(pairs_and_live(), roles)
def test_unserved_is_empty_exactly_when_the_active_bond_alone_carries_every_address(
        case: tuple[Pair, Live], role: Role) -> None:
    pair, live = case
    active = pair.side(role).bond_id
    lines = unserved_addresses(live, active)
    expected = [f for f in group_addresses(live.values())
                if {o.ref.bond_id for o in f.objects if o.enabled} != {active}]
    assert len(lines) == len(expected)
    after = apply(live, make_plan(pair, role, live, float_unpaired=True).changes)
    lone_on_one_bond = [f for f in group_addresses(after.values())
                        if {o.ref.bond_id for o in f.objects} == {pair.side(role.other).bond_id}]
    # A plan that floats every object leaves unserved only addresses without a copy on the
    # active bond: no write can serve those.
    assert len(unserved_addresses(after, active)) == len(lone_on_one_bond)


@given(pairs_and_live(), st.randoms(use_true_random=False))
def test_addresses_group_in_kind_then_ref_order_whatever_the_input_order(
        case: tuple[Pair, Live], random: Random) -> None:
    _, live = case
    objects = list(live.values())
    random.shuffle(objects)
    groups = group_addresses(objects)
    assert groups == group_addresses(live.values())
    assert sorted(groups, key=lambda g: (g.kind, g.objects[0].ref)) == list(groups)
    for group in groups:
        assert list(group.objects) == sorted(group.objects, key=lambda o: o.ref)
        assert {(o.ref.kind, o.address) for o in group.objects} == {(group.kind, group.address)}
    assert sorted(o.ref for g in groups for o in g.objects) == sorted(live)


@given(pairs_and_live(), roles)
def test_each_address_disables_first_and_the_plan_lists_what_stays_in_ref_order(
        case: tuple[Pair, Live], role: Role) -> None:
    pair, live = case
    plan = make_plan(pair, role, live, float_unpaired=True)
    want = desired_state(pair, role)
    for step in plan.steps:
        enabled = [c.enabled for c in step.changes]
        assert enabled == sorted(enabled)  # disables first
        for verb in (False, True):
            refs = [c.ref for c in step.changes if c.enabled is verb]
            assert refs == sorted(refs)
    assert list(plan.unchanged) == sorted(ref for ref in want if live[ref].enabled == want[ref])


def test_a_live_state_without_a_configured_object_is_refused_naming_each() -> None:
    pair, live = _pair()
    del live[ObjectRef(3, Kind.CONNECTED_IP, 5)]
    del live[ObjectRef(1, Kind.ROUTE, 7)]
    other_bond_copy = ObjectRef(3, Kind.ROUTE, 7)  # an unconfigured object does not stand in
    live[other_bond_copy] = RoutingObject(other_bond_copy, True, "198.51.100.0/24")
    with pytest.raises(ValueError, match=r"^live state lacks route 7 on bond 1, "
                                         r"connected IP 5 on bond 3$"):
        make_plan(pair, Role.BACKUP, live)
