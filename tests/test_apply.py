"""send_in_order: each write only after what it waits for is answered, many at once otherwise.

``send`` here stands for the server: it records when each write starts and is answered,
answers after a short sleep, and fails the writes it is told to.
"""

from __future__ import annotations

import asyncio

import pytest

from bondha.apply import Held, Sent, send_in_order
from bondha.model import Kind, ObjectRef, Role
from bondha.plan import Change, Dependency, Plan, Reason, Step


def change(kind: Kind, object_id: int, enabled: bool, bond: int | None = None) -> Change:
    return Change(ObjectRef(bond or (3 if enabled else 1), kind, object_id), enabled)


def failover(per_kind: int) -> Plan:
    """Route i via connected IP i; one CPE NAT IP per index; bond 1 to 3."""
    steps, deps = [], []
    for i in range(per_kind):
        for kind, base in ((Kind.CONNECTED_IP, 0), (Kind.ROUTE, 100), (Kind.CPE_NAT_IP, 200)):
            off, on = change(kind, base + i, False), change(kind, base + 1000 + i, True)
            steps.append(Step(kind, f"{kind.value}-{i}", (off, on)))
            deps.append(Dependency(Reason.ADDRESS, (off,), (on,)))
        conn_off, conn_on = steps[-3].changes
        route_off, route_on = steps[-2].changes
        deps.append(Dependency(Reason.GATEWAY, (conn_on,), (route_on,)))
        deps.append(Dependency(Reason.GATEWAY, (route_off,), (conn_off,)))
    conns = [s.changes for s in steps if s.kind is Kind.CONNECTED_IP]
    nats = [s.changes for s in steps if s.kind is Kind.CPE_NAT_IP]
    deps.append(Dependency(Reason.CPE_NAT, tuple(n[0] for n in nats), tuple(c[0] for c in conns)))
    deps.append(Dependency(Reason.CPE_NAT, tuple(c[1] for c in conns), tuple(n[1] for n in nats)))
    return Plan(Role.BACKUP, 3, tuple(steps), (), dependencies=tuple(deps))


class Server:
    def __init__(self, fail: frozenset[Change] = frozenset(), stop_at: int | None = None) -> None:
        self.fail = fail
        self.stop_at = stop_at
        self.log: list[tuple[str, Change]] = []  # ("sent" | "answered", change)
        self.in_flight = 0
        self.most_in_flight = 0

    async def send(self, write: Change) -> Sent:
        if self.stop_at is not None and len(self.log) >= self.stop_at:
            return Sent.STOP
        self.log.append(("sent", write))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.001)
        self.in_flight -= 1
        self.log.append(("answered", write))
        return Sent.FAILED if write in self.fail else Sent.DONE

    def sent(self) -> list[Change]:
        return [c for event, c in self.log if event == "sent"]


def run(plan: Plan, limit: int, server: Server, **kwargs: object) -> tuple[Held, ...]:
    return asyncio.run(send_in_order(plan, limit, server.send, **kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize("limit", [1, 4, 64])
def test_every_write_is_sent_after_what_it_waits_for_is_answered(limit: int) -> None:
    plan = failover(6)
    server = Server()
    assert run(plan, limit, server) == ()
    assert sorted(server.sent(), key=str) == sorted(plan.changes, key=str)
    position = {(event, c): n for n, (event, c) in enumerate(server.log)}
    for dependency in plan.dependencies:
        for first in dependency.first:
            for then in dependency.then:
                assert position["answered", first] < position["sent", then]
    assert server.most_in_flight <= limit


def test_writes_run_concurrently_where_the_graph_allows() -> None:
    server = Server()
    run(failover(10), 16, server)
    assert server.most_in_flight == 16  # 20 writes wait for nothing at the start


def test_a_failure_holds_back_what_waits_for_it_and_what_waits_for_that() -> None:
    plan = failover(2)
    route_off = change(Kind.ROUTE, 100, False)
    server = Server(fail=frozenset({route_off}))
    held = run(plan, 4, server)
    # Connected IP 0 waits for route 100; its copy 1000 for it; route 1100 for its copy;
    # without go_ahead the CPE NAT IPs' edge to every connected IP holds them too.
    assert sorted((h.change.ref.id, h.blocker.ref.id, h.blocker_failed) for h in held) == [
        (0, 100, True), (1000, 0, False), (1100, 100, True), (1200, 1000, False),
        (1201, 1000, False)]
    assert {h.change for h in held}.isdisjoint(server.sent())
    assert len(server.sent()) == len(plan.changes) - 5


def test_go_ahead_lets_a_write_through_despite_a_failed_predecessor() -> None:
    plan = failover(1)
    nat_off = change(Kind.CPE_NAT_IP, 200, False)
    server = Server(fail=frozenset({nat_off}))

    def go_ahead(write: Change, dependency: Dependency, blocker: Change) -> bool:
        return dependency.reason is Reason.CPE_NAT

    held = run(plan, 4, server, go_ahead=go_ahead)
    assert [h.change.ref.id for h in held] == [1200]  # the NAT IP's own copy, not the others
    assert change(Kind.CONNECTED_IP, 0, False) in server.sent()


def test_stop_sends_nothing_more_and_waits_for_what_is_in_flight() -> None:
    server = Server(stop_at=6)  # three writes sent and answered, then STOP
    run(failover(4), 1, server)
    assert len(server.sent()) == 3
    assert server.in_flight == 0


def test_an_error_in_send_cancels_the_writes_in_flight() -> None:
    started: list[Change] = []

    async def send(write: Change) -> Sent:
        started.append(write)
        if len(started) == 3:
            raise RuntimeError("boom")
        await asyncio.sleep(10)
        return Sent.DONE

    async def main() -> None:
        with pytest.raises(RuntimeError, match="boom"):
            await send_in_order(failover(4), 8, send)
        assert all(task.done() for task in asyncio.all_tasks() - {asyncio.current_task()})

    asyncio.run(main())


def test_an_empty_plan_sends_nothing() -> None:
    server = Server()
    assert run(Plan(Role.MASTER, 1), 4, server) == ()
    assert server.log == []
