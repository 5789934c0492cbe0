#!/usr/bin/env python3
"""Graph or phases? Times the write part of a failover both ways, in one process.

bondha sends each write once every write it waits for has been answered (a dependency
graph, bondha/apply.py). The simpler alternative is ordered phases: the old script's six
groups (CPE NAT IPs, routes, connected IPs off; connected IPs, CPE NAT IPs, routes on), one
after the other, each group's writes concurrently over the same pool. Both keep every
dependency; this measures which is faster. Against a stand-in server process with a fixed
latency (as in bench/failover.py), the pair is failed over from the master to the backup
bond, alternately by graph, by phases and (the baseline of what any order costs) by address
only as bondha wrote before the graph, with the same client, the same plan and the same
pool; only the writes are timed (the reads before and after are the same for both). The
server counts dark time and dependency violations.

    .venv/bin/python bench/write_order.py                      # 20 ms; 10, 20, 100 per kind
    .venv/bin/python bench/write_order.py --latency 0.005 --sizes 200 --runs 9
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bondha.apply import Sent, send_in_order
from bondha.client import ApiClient
from bondha.config import load_config
from bondha.model import Kind, Role
from bondha.plan import Change, Plan, make_plan
from bondha.reconciler import aread_live

sys.path.insert(0, str(Path(__file__).resolve().parent))
from failover import Scenario, StandIn  # the same stand-in process

_OFF = (Kind.CPE_NAT_IP, Kind.ROUTE, Kind.CONNECTED_IP)
_ON = (Kind.CONNECTED_IP, Kind.CPE_NAT_IP, Kind.ROUTE)


async def by_graph(api: ApiClient, plan: Plan) -> None:
    async def send(change: Change) -> Sent:
        await api.set_enabled(change.ref, change.enabled)
        return Sent.DONE

    await send_in_order(plan, api.pool_size, send)


async def by_phases(api: ApiClient, plan: Plan) -> None:
    gate = asyncio.Semaphore(api.pool_size)

    async def send(change: Change) -> None:
        async with gate:
            await api.set_enabled(change.ref, change.enabled)

    phases = [(kind, False) for kind in _OFF] + [(kind, True) for kind in _ON]
    for kind, enabled in phases:
        await asyncio.gather(*(send(c) for c in plan.changes
                               if c.ref.kind is kind and c.enabled is enabled))


async def by_address(api: ApiClient, plan: Plan) -> None:
    """bondha before the graph: addresses concurrently, each disable then enable, and no
    other order (breaks gateways; here as the baseline of what the order costs)."""
    gate = asyncio.Semaphore(api.pool_size)

    async def step(changes: tuple[Change, ...]) -> None:
        async with gate:
            for change in changes:
                await api.set_enabled(change.ref, change.enabled)

    await asyncio.gather(*(step(s.changes) for s in plan.steps))


STRATEGIES = {"graph": by_graph, "phases": by_phases, "address": by_address}


def one_run(standin: StandIn, per_kind: int, strategy: str,
            pool_size: int) -> tuple[float, float, int]:
    """(seconds of writes, dark address-seconds, dependency violations) of one failover."""
    standin.force(1)  # back to the master bond, through the control API (not writes)
    config = load_config(standin.config)

    async def run() -> float:
        async with ApiClient(config.api, pool_size=pool_size) as api:
            plan = make_plan(config.pair, Role.BACKUP, await aread_live(api, config.pair))
            standin.control("POST", "reset")
            started = time.perf_counter()
            await STRATEGIES[strategy](api, plan)
            return time.perf_counter() - started

    seconds = asyncio.run(run())
    stats = standin.control("GET", "stats")
    assert len(stats["writes"]) == 6 * per_kind, "a write was lost"
    return seconds, stats["address_report"]["dark_seconds"], stats["dependency_violations"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--sizes", default="10,20,100", help="objects per kind")
    parser.add_argument("--runs", type=int, default=7, help="runs per strategy")
    parser.add_argument("--pool-size", type=int, default=16)
    args = parser.parse_args(argv)
    print(f"latency {args.latency * 1000:g} ms, pool {args.pool_size}, {args.runs} runs each, "
          "medians; only the writes are timed")
    print("| objects/kind | writes | graph s | phases s | phases / graph | address only s | "
          "graph dark address-s | phases dark address-s | violations (graph, phases, address"
          " only) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for per_kind in (int(size) for size in args.sizes.split(",")):
        figures: dict[str, list[tuple[float, float, int]]] = {name: [] for name in STRATEGIES}
        with tempfile.TemporaryDirectory(prefix="bondha-bench-") as workdir:
            standin = StandIn(Scenario(args.latency, per_kind), Path(workdir), None)
            try:
                for _ in range(args.runs):
                    for name in STRATEGIES:
                        figures[name].append(one_run(standin, per_kind, name, args.pool_size))
            finally:
                standin.stop()
        wall = {name: statistics.median(f[0] for f in runs) for name, runs in figures.items()}
        dark = {name: statistics.median(f[1] for f in runs) for name, runs in figures.items()}
        worst = {name: max(f[2] for f in runs) for name, runs in figures.items()}
        print(f"| {per_kind} | {6 * per_kind} | {wall['graph']:.3f} | {wall['phases']:.3f} | "
              f"{wall['phases'] / wall['graph']:.2f}x | {wall['address']:.3f} | "
              f"{dark['graph']:.2f} | {dark['phases']:.2f} | "
              f"{worst['graph']}, {worst['phases']}, {worst['address']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
