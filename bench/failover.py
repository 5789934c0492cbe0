#!/usr/bin/env python3
"""Failover benchmark: the old notify script against ``bondha apply``, as whole processes.

For each scenario (latency, objects per kind) a stand-in management server is started as
its own process (``python -m bondha.testing --fixture pair:N --latency L``). Then, several
times each and interleaved, (a) the model of the old script (``old_swap_active_bond.py``)
and (b) ``bondha apply`` fail the pair over, every run in the opposite direction of the one
before, so each run moves every floating address. Wall time is measured from process start
to exit; requests, connections, writes and the dark and overlap time of every floating
address are measured by the server itself (``/_standin/stats``), not estimated here. After
every run the server's objects are checked: each address enabled on the new active bond
only, or the run counts as not converged.

    .venv/bin/python bench/failover.py                       # the issue's three scenarios
    .venv/bin/python bench/failover.py --scenario 0.02:20 --runs 3
    .venv/bin/python bench/failover.py --no-table --plot docs/failover-scaling.png

``--plot`` needs matplotlib: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OLD_SCRIPT = HERE / "old_swap_active_bond.py"
TOOLS = ("old", "bondha")
# The targets: bondha's median wall time as a fraction of the old script's.
WALL_TARGETS = {(0.02, 20): 0.15, (0.02, 100): 0.10, (0.005, 200): 0.10}
DARK_TARGET = 0.05
DEFAULT_SCENARIOS = ("0.02:20", "0.02:100", "0.005:200")


@dataclass(frozen=True)
class Scenario:
    latency: float
    per_kind: int

    @property
    def addresses(self) -> int:
        return 3 * self.per_kind

    @classmethod
    def parse(cls, text: str) -> Scenario:
        latency, _, per_kind = text.partition(":")
        try:
            return cls(float(latency), int(per_kind))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected LATENCY:OBJECTS_PER_KIND (e.g. 0.02:20), not {text!r}") from None


@dataclass(frozen=True)
class Run:
    """One whole-process failover as the server saw it."""

    tool: str
    wall: float
    exit_code: int
    converged: bool
    requests: int
    connections: int
    writes: int
    dark_seconds: float
    longest_dark_seconds: float
    overlap_moments: int


class StandIn:
    """A ``python -m bondha.testing`` process with a generated pair, and its control API."""

    def __init__(self, scenario: Scenario, workdir: Path, pool_size: int | None) -> None:
        self.config = workdir / "swap-active-bond.conf"
        ready = workdir / "ready"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bondha.testing", "--fixture", f"pair:{scenario.per_kind}",
             "--latency", str(scenario.latency), "--write-config", str(self.config),
             "--ready-file", str(ready)],
            stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the stand-in server did not start")
            time.sleep(0.02)
        self.url = ready.read_text().strip()
        if pool_size is not None:
            with self.config.open("a") as stream:
                stream.write(f"[bondha]\npool_size = {pool_size}\n")
        self.active = "master"  # pair_fixture enables the master bond's copies

    def control(self, method: str, name: str) -> Any:
        request = urllib.request.Request(f"{self.url}/_standin/{name}", method=method,
                                         data=b"{}" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)

    def converged(self, active_bond: int) -> bool:
        """Every object enabled on the active bond and disabled on the other."""
        return all(record["enabled"] == (record["bond_id"] == active_bond)
                   for record in self.control("GET", "objects"))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _bondha_command() -> list[str]:
    """The installed ``bondha`` entry point next to this interpreter (what operators run)."""
    script = Path(sys.executable).parent / "bondha"
    if script.exists():
        return [str(script)]
    found = shutil.which("bondha")
    return [found] if found else [sys.executable, "-m", "bondha"]


def command(tool: str, config: Path, role: str) -> list[str]:
    if tool == "old":
        # keepalived's arguments: MASTER with priority 10 on the master bonder, 9 on the backup.
        priority = "10" if role == "master" else "9"
        return [sys.executable, str(OLD_SCRIPT), "--config", str(config),
                "INSTANCE", "VI_1", "MASTER", priority]
    return [*_bondha_command(), "--config", str(config), "apply", "--active", role]


def run_once(tool: str, standin: StandIn) -> Run:
    role = "backup" if standin.active == "master" else "master"
    standin.control("POST", "reset")
    started = time.perf_counter()
    done = subprocess.run(command(tool, standin.config, role), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - started
    stats = standin.control("GET", "stats")
    standin.active = role
    active_bond = 1 if role == "master" else 2  # pair_fixture's bond ids
    converged = standin.converged(active_bond)
    if done.returncode != 0 or not converged:
        sys.stderr.write(f"warning: {tool} exit {done.returncode}, converged={converged}:\n"
                         f"{done.stderr[-2000:]}\n")
    report = stats["address_report"]
    return Run(tool, wall, done.returncode, converged, stats["requests"], stats["connections"],
               len(stats["writes"]), report["dark_seconds"], report["longest_dark_seconds"],
               report["overlap_moments"])


def measure(scenario: Scenario, runs: int, pool_size: int | None) -> dict[str, list[Run]]:
    """``runs`` failovers per tool, interleaved so that drift hits both alike."""
    results: dict[str, list[Run]] = {tool: [] for tool in TOOLS}
    with tempfile.TemporaryDirectory(prefix="bondha-bench-") as workdir:
        standin = StandIn(scenario, Path(workdir), pool_size)
        try:
            for _ in range(runs):
                for tool in TOOLS:
                    results[tool].append(run_once(tool, standin))
        finally:
            standin.stop()
    return results


# -- the table ---------------------------------------------------------------------------

COLUMNS = ("latency", "objects/kind", "addresses", "tool", "wall s (median)", "requests",
           "connections", "writes", "dark address-s", "longest dark s", "overlap moments",
           "converged")


def _median(runs: list[Run], field: str) -> float:
    return float(statistics.median(getattr(run, field) for run in runs))


def table_rows(scenario: Scenario, results: dict[str, list[Run]]) -> list[list[str]]:
    rows = []
    for tool in TOOLS:
        runs = results[tool]
        rows.append([
            f"{scenario.latency * 1000:g} ms", str(scenario.per_kind), str(scenario.addresses),
            tool if tool == "old" else "bondha apply",
            f"{_median(runs, 'wall'):.3f}", f"{_median(runs, 'requests'):g}",
            f"{_median(runs, 'connections'):g}", f"{_median(runs, 'writes'):g}",
            f"{_median(runs, 'dark_seconds'):.2f}", f"{_median(runs, 'longest_dark_seconds'):.3f}",
            str(max(run.overlap_moments for run in runs)),
            f"{sum(run.converged for run in runs)}/{len(runs)}",
        ])
    return rows


def ratios(scenario: Scenario, results: dict[str, list[Run]]) -> dict[str, float]:
    old, new = results["old"], results["bondha"]
    return {
        "wall": _median(new, "wall") / _median(old, "wall"),
        "dark": _median(new, "dark_seconds") / max(_median(old, "dark_seconds"), 1e-9),
        "connections": _median(new, "connections") / max(_median(old, "connections"), 1),
    }


def verdict(scenario: Scenario, ratio: dict[str, float], pool_size: int) -> list[str]:
    lines = []
    target = WALL_TARGETS.get((scenario.latency, scenario.per_kind))
    wall = f"wall {ratio['wall']:.3f}x"
    if target is not None:
        wall += f" (target <= {target}x: {'met' if ratio['wall'] <= target else 'MISSED'})"
    lines.append(wall)
    lines.append(f"dark {ratio['dark']:.4f}x (target <= {DARK_TARGET}x: "
                 f"{'met' if ratio['dark'] <= DARK_TARGET else 'MISSED'})")
    return lines


def markdown(rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    return (f"{os.cpu_count()} cores (nproc), {platform.machine()}, Python "
            f"{platform.python_version()}, {platform.system()} {platform.release()}")


def _pool_size(pool_size: int | None) -> int:
    if pool_size is not None:
        return pool_size
    from bondha.config import HaSettings

    return HaSettings().pool_size


# -- the plot ----------------------------------------------------------------------------

def plot(path: Path, latency: float, sizes: Sequence[int], runs: int,
         pool_size: int | None) -> dict[str, Any]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("--plot needs matplotlib: pip install -e '.[bench]'")
    walls: dict[str, list[float]] = {tool: [] for tool in TOOLS}
    for per_kind in sizes:
        results = measure(Scenario(latency, per_kind), runs, pool_size)
        for tool in TOOLS:
            walls[tool].append(_median(results[tool], "wall"))
        print(f"plot: {per_kind:5d} objects/kind: old {walls['old'][-1]:.3f}s, "
              f"bondha {walls['bondha'][-1]:.3f}s", flush=True)
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=100)
    axes.plot(sizes, walls["old"], "o-", label="old script (sequential, new connection each)")
    axes.plot(sizes, walls["bondha"], "s-",
              label=f"bondha apply (pool of {_pool_size(pool_size)} keep-alive connections)")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("floating objects per kind (x3 kinds; each on both bonds)")
    axes.set_ylabel("wall time of the whole process, s (median)")
    axes.set_title(f"Failover time vs object count, {latency * 1000:g} ms server latency, "
                   f"{os.cpu_count()} cores")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    print(f"plot written to {path}")
    return {"latency": latency, "sizes": list(sizes), "runs": runs, "wall": walls}


# -- the command line --------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", type=Scenario.parse,
                        metavar="LATENCY:OBJECTS_PER_KIND",
                        help=f"repeatable (default: {' '.join(DEFAULT_SCENARIOS)})")
    parser.add_argument("--runs", type=int, default=5, help="runs per tool (default %(default)s)")
    parser.add_argument("--pool-size", type=int,
                        help="bondha's [bondha] pool_size (default: bondha's default)")
    parser.add_argument("--no-table", action="store_true", help="skip the scenarios")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="also sweep sizes and plot")
    parser.add_argument("--plot-latency", type=float, default=0.02)
    parser.add_argument("--plot-sizes", default="10,30,100,300,1000",
                        help="objects per kind (default %(default)s)")
    parser.add_argument("--plot-runs", type=int, default=1)
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every run here")
    args = parser.parse_args(argv)
    scenarios = args.scenario or [Scenario.parse(text) for text in DEFAULT_SCENARIOS]
    pool_size = _pool_size(args.pool_size)
    output: dict[str, Any] = {"machine": machine(), "pool_size": pool_size, "scenarios": []}
    print(f"machine: {machine()}; bondha pool_size {pool_size}; {args.runs} runs per tool")
    if not args.no_table:
        rows: list[list[str]] = []
        notes: list[str] = []
        for scenario in scenarios:
            results = measure(scenario, args.runs, args.pool_size)
            rows += table_rows(scenario, results)
            ratio = ratios(scenario, results)
            notes.append(f"{scenario.latency * 1000:g} ms, {scenario.addresses} addresses: "
                         + "; ".join(verdict(scenario, ratio, pool_size)))
            output["scenarios"].append({**asdict(scenario), "ratios": ratio, "runs": {
                tool: [asdict(run) for run in runs] for tool, runs in results.items()}})
            print(f"... {notes[-1]}", flush=True)
        print()
        print(markdown(rows))
        print()
        print("bondha / old, medians:")
        for note in notes:
            print(f"- {note}")
    if args.plot:
        output["plot"] = plot(args.plot, args.plot_latency,
                              [int(size) for size in args.plot_sizes.split(",")],
                              args.plot_runs, args.pool_size)
    if args.json:
        args.json.write_text(json.dumps(output, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
