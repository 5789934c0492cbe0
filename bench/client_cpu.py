#!/usr/bin/env python3
"""The client's CPU per failover, inside one process: bondha's own cost, start-up excluded.

A whole-process benchmark (``failover.py``) is dominated by round trips and start-up; what
the client itself spends per request hides in it. Here a stand-in server (its own process,
as in ``failover.py``) serves a generated pair, and each tree runs ``bondha.reconcile`` in a
process of its own, several failovers in a row, timing each with ``time.process_time()``
(the client's CPU) and the wall clock. Trees are interleaved run by run, so drift in the
machine's speed hits them alike; the figure is the median, and the ratio to the first tree.

    .venv/bin/python bench/client_cpu.py --tree before=../old-checkout --tree after=.
    .venv/bin/python bench/client_cpu.py --scenario 0.005:200 --style close --tree now=.

A tree is a checkout: its ``bondha`` package is put first on ``PYTHONPATH``. Run it with
an interpreter whose environment has no editable install of bondha (an editable install's
import hook wins over ``PYTHONPATH``), e.g. a virtual environment with ``pip install .``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from failover import STYLES, Scenario, StandIn, byte_compile

_MEASURE = """
import json, sys, time
from pathlib import Path
import bondha
from bondha.model import Role
config = bondha.load_config(Path(sys.argv[1]))
role = Role.BACKUP if sys.argv[2] == "backup" else Role.MASTER
cpu, wall = [], []
for _ in range(int(sys.argv[3])):
    started_cpu, started = time.process_time(), time.perf_counter()
    result = bondha.reconcile(config, role)
    cpu.append(time.process_time() - started_cpu)
    wall.append(time.perf_counter() - started)
    if not result.converged:
        sys.exit("not converged")
    role = Role.MASTER if role is Role.BACKUP else Role.BACKUP
print(json.dumps({"package": bondha.__file__, "cpu": cpu, "wall": wall}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, metavar="NAME=DIR",
                        help="a checkout to measure (repeatable; the first is the baseline)")
    parser.add_argument("--scenario", default="0.005:200", metavar="LATENCY:PER_KIND",
                        help="server latency in seconds and objects per kind (default "
                             "0.005:200: 600 addresses, 1,200 writes)")
    parser.add_argument("--style", choices=STYLES, default="proxy")
    parser.add_argument("--runs", type=int, default=7, help="processes per tree")
    parser.add_argument("--failovers", type=int, default=2, help="failovers per process")
    args = parser.parse_args()
    trees = dict(item.split("=", 1) for item in args.tree)
    latency, per_kind = args.scenario.split(":")
    scenario = Scenario(float(latency), int(per_kind))
    figures: dict[str, dict[str, list[float]]] = {name: {"cpu": [], "wall": []}
                                                  for name in trees}
    for tree in trees.values():
        byte_compile(Path(tree) / "bondha")
    with tempfile.TemporaryDirectory(prefix="bondha-cpu-") as workdir:
        standin = StandIn(scenario, Path(workdir), None, args.style)
        try:
            for _ in range(args.runs):
                for name, tree in trees.items():
                    env = dict(standin.env, PYTHONPATH=str(Path(tree).resolve()))
                    out = subprocess.run(
                        [sys.executable, "-c", _MEASURE, str(standin.config),
                         "backup" if standin.active == "master" else "master",
                         str(args.failovers)],
                        capture_output=True, text=True, check=True, env=env,
                        stdin=subprocess.DEVNULL, cwd=workdir)  # not a checkout's own dir
                    if args.failovers % 2:
                        standin.active = "backup" if standin.active == "master" else "master"
                    measured = json.loads(out.stdout.splitlines()[-1])
                    if not measured["package"].startswith(str(Path(tree).resolve())):
                        sys.exit(f"{name}: imported {measured['package']}, not {tree}")
                    for what in ("cpu", "wall"):
                        figures[name][what].extend(measured[what])
        finally:
            standin.stop()
    baseline = next(iter(trees))
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; style "
          f"{args.style}, {scenario.latency * 1000:g} ms, {3 * scenario.per_kind} addresses; "
          f"{args.runs} processes x {args.failovers} failovers per tree")
    print("| tree | CPU s per failover (median) | vs " + baseline + " | wall s (median) | vs "
          + baseline + " |")
    print("|---|---|---|---|---|")
    base_cpu = statistics.median(figures[baseline]["cpu"])
    base_wall = statistics.median(figures[baseline]["wall"])
    for name, measured in figures.items():
        cpu, wall = statistics.median(measured["cpu"]), statistics.median(measured["wall"])
        print(f"| {name} | {cpu:.3f} | {cpu / base_cpu:.2f}x | {wall:.3f} | "
              f"{wall / base_wall:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
