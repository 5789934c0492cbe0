"""The plan as a graph: no write, in any order the graph allows, breaks a route's gateway.

A route is *broken* when it is enabled and every configured connected IP of its bond whose
network holds its gateway is disabled (a route whose gateway is in none of them cannot be
broken by the plan). The checks below compute that with ipaddress on their own, not with
bondha.dependencies.
"""

from __future__ import annotations

import ipaddress
import json

import attrs
from hypothesis import given
from hypothesis import strategies as st

from bondha.model import BondSide, Kind, ObjectRef, Pair, Role, RoutingObject
from bondha.plan import Change, Plan, Reason, desired_state, make_plan
from tests.strategies import pairs_and_live, roles

Live = dict[ObjectRef, RoutingObject]


def apply(live: Live, changes: tuple[Change, ...]) -> Live:
    out = dict(live)
    for change in changes:
        out[change.ref] = attrs.evolve(out[change.ref], enabled=change.enabled)
    return out


def holders(live: Live, route: RoutingObject) -> list[RoutingObject]:
    try:
        gateway = ipaddress.ip_address(route.gateway or "")
    except ValueError:
        return []
    found = []
    for obj in live.values():
        if obj.ref.kind is not Kind.CONNECTED_IP or obj.ref.bond_id != route.ref.bond_id:
            continue
        if obj.address is not None and gateway in ipaddress.ip_interface(obj.address).network:
            found.append(obj)
    return found


def broken(live: Live) -> set[ObjectRef]:
    out = set()
    for obj in live.values():
        if obj.ref.kind is Kind.ROUTE and obj.enabled:
            held_by = holders(live, obj)
            if held_by and not any(conn.enabled for conn in held_by):
                out.add(obj.ref)
    return out


def overlapping(live: Live) -> set[tuple[Kind, str]]:
    bonds: dict[tuple[Kind, str], set[int]] = {}
    for obj in live.values():
        if obj.enabled and obj.address is not None:
            bonds.setdefault((obj.ref.kind, obj.address), set()).add(obj.ref.bond_id)
    return {key for key, on in bonds.items() if len(on) > 1}


def assert_each_write_is_safe(live: Live, order: tuple[Change, ...]) -> Live:
    """Every write, applied in ``order``, breaks no gateway and overlaps no address anew."""
    state = live
    for change in order:
        after = apply(state, (change,))
        assert broken(after) <= broken(state), f"{change} breaks {broken(after) - broken(state)}"
        assert overlapping(after) <= overlapping(state), f"{change} overlaps an address"
        state = after
    return state


def any_order(plan: Plan, data: st.DataObject) -> tuple[Change, ...]:
    """One order in which the writes may land when every write that the graph allows to be
    in flight at once is: each write after every write it waits for, the rest at random."""
    waits = plan.waits()
    landed: list[Change] = []
    pending = list(plan.changes)
    while pending:
        ready = [c for c in pending
                 if all(first in landed for d in waits.get(c, ()) for first in d.first)]
        assert ready, "the dependencies have a cycle"
        change = data.draw(st.sampled_from(ready))
        pending.remove(change)
        landed.append(change)
    return tuple(landed)


@given(pairs_and_live(), roles)
def test_no_prefix_breaks_a_gateway_or_overlaps(case: tuple[Pair, Live], role: Role) -> None:
    pair, live = case
    # float_unpaired: every object moves, so that the invariants hold for all of them (an
    # unpaired object left alone is checked in test_plan and test_first_hour).
    assert_each_write_is_safe(live, make_plan(pair, role, live, float_unpaired=True).changes)


@given(pairs_and_live(), roles, st.data())
def test_no_interleaving_the_graph_allows_breaks_a_gateway_or_overlaps(
        case: tuple[Pair, Live], role: Role, data: st.DataObject) -> None:
    pair, live = case
    plan = make_plan(pair, role, live, float_unpaired=True)
    after = assert_each_write_is_safe(live, any_order(plan, data))
    assert {ref: obj.enabled for ref, obj in after.items()} == desired_state(pair, role)


@given(pairs_and_live(), roles)
def test_the_listed_order_respects_every_dependency(case: tuple[Pair, Live], role: Role) -> None:
    pair, live = case
    plan = make_plan(pair, role, live)
    position = {change: n for n, change in enumerate(plan.changes)}
    planned = set(position)
    for dependency in plan.dependencies:
        assert dependency.first
        assert dependency.then
        assert set(dependency.first) <= planned
        assert set(dependency.then) <= planned
        assert max(position[c] for c in dependency.first) < min(
            position[c] for c in dependency.then)


@given(pairs_and_live(), roles)
def test_only_real_needs_make_edges(case: tuple[Pair, Live], role: Role) -> None:
    """A gateway edge joins a route and a connected IP of one bond that holds its gateway;
    a route whose gateway no configured connected IP holds waits for no connected IP."""
    pair, live = case
    plan = make_plan(pair, role, live)
    for dependency in plan.dependencies:
        if dependency.reason is not Reason.GATEWAY:
            continue
        for first in dependency.first:
            for then in dependency.then:
                route, conn = (first, then) if first.ref.kind is Kind.ROUTE else (then, first)
                assert route.ref.kind is Kind.ROUTE
                assert conn.ref.kind is Kind.CONNECTED_IP
                assert live[conn.ref] in holders(live, live[route.ref])
    for change in plan.changes:
        if change.ref.kind is Kind.ROUTE and not holders(live, live[change.ref]):
            assert all(d.reason is not Reason.GATEWAY for d in plan.waits().get(change, ()))


# -- the how-to's pair, by hand ------------------------------------------------------------

def _example() -> tuple[Pair, Live]:
    pair = Pair(BondSide(1, (1,), (7,), (10,)), BondSide(3, (4,), (8,), (11,)))
    objs = [
        RoutingObject(ObjectRef(1, Kind.CONNECTED_IP, 1), True, "203.0.113.1/30"),
        RoutingObject(ObjectRef(3, Kind.CONNECTED_IP, 4), False, "203.0.113.1/30"),
        RoutingObject(ObjectRef(1, Kind.ROUTE, 7), True, "198.51.100.0/24", "203.0.113.2"),
        RoutingObject(ObjectRef(3, Kind.ROUTE, 8), False, "198.51.100.0/24", "203.0.113.2"),
        RoutingObject(ObjectRef(1, Kind.CPE_NAT_IP, 10), True, "203.0.113.9/32"),
        RoutingObject(ObjectRef(3, Kind.CPE_NAT_IP, 11), False, "203.0.113.9/32"),
    ]
    return pair, {o.ref: o for o in objs}


def test_failover_writes_in_the_old_scripts_order_and_says_why() -> None:
    pair, live = _example()
    plan = make_plan(pair, Role.BACKUP, live)
    assert [(c.ref.id, c.enabled) for c in plan.changes] == [
        (10, False), (7, False), (1, False), (4, True), (11, True), (8, True)]
    lines = [" ".join(line.split()) for line in plan.render().splitlines()]
    assert lines[1:4] == [
        "connected IP 203.0.113.1/30 disable 1 on bond 1 (after route 198.51.100.0/24 and "
        "the CPE NAT IPs of bond 1), then enable 4 on bond 3",
        "route 198.51.100.0/24 disable 7 on bond 1, then enable 8 on bond 3 "
        "(after connected IP 203.0.113.1/30)",
        "CPE NAT IP 203.0.113.9/32 disable 10 on bond 1, then enable 11 on bond 3 "
        "(after the connected IPs of bond 3)",
    ]


def test_json_names_each_wait_and_lists_the_edges() -> None:
    pair, live = _example()
    data = json.loads(json.dumps(make_plan(pair, Role.BACKUP, live).to_json()))
    assert data["schema"] == "bondha.plan/1"  # fields added only: readers of /1 still work
    after = {(c["id"], c["enabled"]): c["after"] for c in data["changes"]}
    assert after == {
        (10, False): [], (7, False): [],
        (1, False): ["route 198.51.100.0/24", "the CPE NAT IPs of bond 1"],
        (4, True): [], (11, True): ["the connected IPs of bond 3"],
        (8, True): ["connected IP 203.0.113.1/30"],
    }
    edges = {(d["reason"], tuple(c["id"] for c in d["first"]), tuple(c["id"] for c in d["then"]))
             for d in data["dependencies"]}
    assert edges == {("address", (1,), (4,)), ("address", (7,), (8,)),
                     ("address", (10,), (11,)), ("gateway", (4,), (8,)),
                     ("gateway", (7,), (1,)), ("cpe_nat", (10,), (1,)),
                     ("cpe_nat", (4,), (11,))}


def test_a_route_already_right_needs_no_edge() -> None:
    """Connected IP 4 is already enabled on the new bond: route 8 waits only for its copy."""
    pair, live = _example()
    live[ObjectRef(3, Kind.CONNECTED_IP, 4)] = attrs.evolve(
        live[ObjectRef(3, Kind.CONNECTED_IP, 4)], enabled=True)
    plan = make_plan(pair, Role.BACKUP, live)
    route_8 = next(c for c in plan.changes if c.ref.id == 8)
    assert [d.reason for d in plan.waits()[route_8]] == [Reason.ADDRESS]
