"""The Result value: what a reconcile did, as the front ends and the records read it."""

from __future__ import annotations

from bondha.model import ObjectRef, Pair, Role, RoutingObject
from bondha.plan import make_plan
from bondha.result import Failure, Result
from bondha.testing import pair_fixture


def _failover(per_kind: int) -> tuple[Pair, dict[ObjectRef, RoutingObject]]:
    fixture = pair_fixture(per_kind)
    live = {r.ref: RoutingObject(r.ref, r.enabled, r.address, r.gateway)
            for r in fixture.objects}
    return fixture.pair(), live


def test_repr_of_a_big_result_is_as_short_as_that_of_a_small_one() -> None:
    # asyncio.run reprs its main task, and so the Result it returns, on every run.
    reprs = []
    for per_kind in (1, 200):
        pair, live = _failover(per_kind)
        plan = make_plan(pair, Role.BACKUP, live)
        changes = plan.changes
        result = Result(plan, done=changes[1:], failed=(Failure(changes[0], "refused"),),
                        live=live, last_plan=plan)
        reprs.append(repr(result))
    small, big = reprs
    assert big == ("<Result bond 2 (backup) not converged: 1200 planned, 1199 done, 1 failed, "
                   "0 held back, 0 remaining, 1 round(s)>")
    assert small == big.replace("1200", "6").replace("1199", "5")


def test_repr_says_dry_run_and_superseded() -> None:
    pair, live = _failover(1)
    plan = make_plan(pair, Role.BACKUP, live)
    assert repr(Result(plan, dry_run=True)).startswith("<Result bond 2 (backup) dry run: 6 planned")
    assert " superseded: 6 planned, 0 done" in repr(Result(plan, superseded="a newer event"))
    assert " converged: 0 planned" in repr(Result(make_plan(pair, Role.MASTER, live)))
