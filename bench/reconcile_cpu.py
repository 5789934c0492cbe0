"""In-process CPU of a big failover's reconcile and of ``make_plan`` alone, for two or more
checkouts in the same run: ``python bench/reconcile_cpu.py BASELINE OTHER...``.

A stand-in server (``python -m bondha.testing --fixture pair:N``, its own process) serves a
pair of N floating objects per kind. For each checkout in turn (interleaved, every run in
the opposite direction), a child process with that checkout on its path and the CLI's
logging set up as ``bondha apply`` does (stderr to a null device) times, in CPU seconds:
``reconcile`` (the whole failover, first thing after the imports as in ``bondha apply``:
reads, every write, the verification), the result's text and its ``--json`` document (what
``bondha apply`` prints), and ``make_plan`` of the next failover on the pair as read back
(the median of several calls). Interpreter start-up and imports are left out:
``bench/notify_cpu.py`` counts whole processes.

Printed: per checkout the median of each figure over the runs, and its ratio to the first
checkout. Run by hand, never in CI. Each checkout is byte-compiled first, as an installed
bondha is (``PYTHONDONTWRITEBYTECODE`` would otherwise leave every process compiling);
``--style`` picks how the server writes and accepts (``bench/failover.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from failover import byte_compile

# Runs in the child, with one checkout first on sys.path.
CHILD = r"""
import io, json, logging, os, statistics, sys, time
import bondha
from bondha.cli.output import print_json
from bondha.config import load_config
from bondha.log import setup_logging
from bondha.model import Role
from bondha.plan import make_plan
from bondha.reconciler import reconcile

config_path, active, plan_calls = sys.argv[1], Role(sys.argv[2]), int(sys.argv[3])
setup_logging(0, syslog=False, report_on_stdout=True)
config = load_config(config_path)
started = time.process_time()
result = reconcile(config, active)  # first, as in `bondha apply`: nothing read or parsed yet
reconciled = time.process_time() - started
started = time.process_time()
text = result.render()
rendered = time.process_time() - started
stdout, sys.stdout = sys.stdout, io.StringIO()
started = time.process_time()
print_json(result.to_json())  # what --json prints
documented = time.process_time() - started
sys.stdout = stdout
plans = []
for _ in range(plan_calls):  # the next failover's plan, from the pair as read back
    started = time.process_time()
    make_plan(config.pair, active.other, result.live)
    plans.append(time.process_time() - started)
assert result.converged and len(result.done) == len(result.plan), result.render()[-300:]
print(json.dumps({"package": bondha.__file__,
                  "make_plan": statistics.median(plans), "reconcile": reconciled,
                  "render": rendered,
                  "json": documented, "writes": len(result.done)}))
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("roots", nargs="+", help="checkouts; the first is the baseline")
    parser.add_argument("--objects", type=int, default=200, help="floating objects per kind")
    parser.add_argument("--latency", type=float, default=0.005, help="server latency, seconds")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--style", choices=("proxy", "stdlib", "close"), default="proxy",
                        help="how the server writes and accepts (default %(default)s)")
    parser.add_argument("--plan-calls", type=int, default=7,
                        help="make_plan calls per run (their median counts)")
    args = parser.parse_args()
    figures = ("reconcile", "render", "json", "make_plan")
    for root in args.roots:
        byte_compile(Path(root) / "bondha")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ready, config = work / "ready", work / "c.conf"
        server = subprocess.Popen([sys.executable, "-m", "bondha.testing", "--fixture",
                                   f"pair:{args.objects}", "--latency", str(args.latency),
                                   "--ready-file", str(ready), "--write-config", str(config),
                                   "--style", args.style])
        try:
            while not ready.exists():
                time.sleep(0.05)
            seen: dict[str, dict[str, list[float]]] = {
                root: {name: [] for name in figures} for root in args.roots}
            active = "backup"  # the fixture starts with the master bond active
            for run in range(args.runs):
                for root in args.roots if run % 2 == 0 else args.roots[::-1]:
                    env = {**os.environ, "PYTHONPATH": root, "BONDHA_SYSLOG": "0"}
                    with open(os.devnull, "w") as null:
                        done = subprocess.run(
                            [sys.executable, "-c", CHILD, str(config), active,
                             str(args.plan_calls)],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=null,
                            check=False, text=True)
                    if done.returncode != 0:
                        sys.stderr.write(f"{root}: exit {done.returncode}\n{done.stdout}")
                        return 1
                    numbers = json.loads(done.stdout.splitlines()[-1])
                    if not numbers["package"].startswith(str(Path(root).resolve())):
                        sys.stderr.write(f"{root}: imported {numbers['package']} instead\n")
                        return 1
                    for name in figures:
                        seen[root][name].append(numbers[name])
                    active = "master" if active == "backup" else "backup"
        finally:
            server.terminate()
            server.wait()
    base = {name: statistics.median(seen[args.roots[0]][name]) for name in figures}
    print(f"{args.objects} objects per kind, {args.latency * 1000:g} ms, {args.runs} runs; "
          "CPU ms, median (ratio to the first checkout)")
    print(f"{'checkout':<40}" + "".join(f"{name:>22}" for name in figures))
    for root in args.roots:
        cells = []
        for name in figures:
            value = statistics.median(seen[root][name])
            cells.append(f"{value * 1000:9.1f} ({value / base[name]:.3f}x)")
        print(f"{Path(root).name:<40}" + "".join(f"{cell:>22}" for cell in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
