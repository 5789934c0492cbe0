#!/usr/bin/env python3
"""Failover benchmark: the old notify script against ``bondha apply``, as whole processes.

For each scenario (latency, objects per kind) a stand-in management server is started as
its own process (``python -m bondha.testing --fixture pair:N --latency L``). Then, several
times each and interleaved, (a) the model of the old script (``old_swap_active_bond.py``)
and (b) ``bondha apply`` fail the pair over, every run in the opposite direction of the one
before, so each run moves every floating address. Wall time is measured from process start
to exit; requests, connections, writes and the dark and overlap time of every floating
address are measured by the server itself (``/_standin/stats``), not estimated here, and so
are *dependency violations*: writes that left an enabled route without an enabled connected IP
holding its gateway (route i's gateway lies in connected IP i). After every run the server's
objects are checked: each address enabled on the new active bond only, or the run counts as
not converged.

    .venv/bin/python bench/failover.py                       # the issue's three scenarios
    .venv/bin/python bench/failover.py --scenario 0.02:20 --runs 3
    .venv/bin/python bench/failover.py --before ../other-checkout --scenario 0.02:10
    .venv/bin/python bench/failover.py --strict --scenario 0.02:10   # the server refuses them
    .venv/bin/python bench/failover.py --no-table --plot docs/failover-scaling.png

``--before DIR`` adds a third tool: the bondha package of another checkout (e.g. the commit
before a change), run as ``python -m bondha`` with that checkout first on the path; bondha
itself then runs the same way, so both pay the same start-up.

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
LABELS = {"old": "old", "before": "bondha before", "bondha": "bondha apply"}
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
    dependency_violations: int  # accepted writes that left a route without its gateway
    dependency_refusals: int  # the same, refused by a --strict server


class StandIn:
    """A ``python -m bondha.testing`` process with a generated pair, and its control API."""

    def __init__(self, scenario: Scenario, workdir: Path, pool_size: int | None,
                 strict: bool = False) -> None:
        self.config = workdir / "swap-active-bond.conf"
        ready = workdir / "ready"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bondha.testing", "--fixture", f"pair:{scenario.per_kind}",
             "--latency", str(scenario.latency), "--write-config", str(self.config),
             "--ready-file", str(ready), *(["--strict-dependencies"] if strict else [])],
            stdout=subprocess.DEVNULL, cwd=HERE.parent)
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

    def force(self, active_bond: int) -> None:
        """Put every object where ``active_bond`` active wants it (control API, no write),
        so that a run that did not converge does not spoil the next tool's run."""
        for record in self.control("GET", "objects"):
            wanted = record["bond_id"] == active_bond
            if record["enabled"] != wanted:
                request = urllib.request.Request(
                    f"{self.url}/_standin/objects/{record['bond_id']}/{record['kind']}/"
                    f"{record['id']}", method="POST",
                    data=json.dumps({"enabled": wanted}).encode())
                with urllib.request.urlopen(request, timeout=60):
                    pass

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


def command(tool: str, config: Path, role: str, before: Path | None = None) -> list[str]:
    if tool == "old":
        # keepalived's arguments: MASTER with priority 10 on the master bonder, 9 on the backup.
        priority = "10" if role == "master" else "9"
        return [sys.executable, str(OLD_SCRIPT), "--config", str(config),
                "INSTANCE", "VI_1", "MASTER", priority]
    bondha = [sys.executable, "-m", "bondha"] if before else _bondha_command()
    return [*bondha, "--config", str(config), "apply", "--active", role]


def _environment(tool: str, before: Path | None) -> dict[str, str] | None:
    """With --before, each bondha runs from its own checkout (first on the path)."""
    if before is None or tool == "old":
        return None
    tree = before if tool == "before" else HERE.parent
    return {**os.environ, "PYTHONPATH": str(tree.resolve())}


def run_once(tool: str, standin: StandIn, before: Path | None = None) -> Run:
    role = "backup" if standin.active == "master" else "master"
    standin.control("POST", "reset")
    started = time.perf_counter()
    # cwd: not a checkout, so that `python -m bondha` imports the one PYTHONPATH names.
    done = subprocess.run(command(tool, standin.config, role, before), capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, check=False,
                          env=_environment(tool, before), cwd=standin.config.parent)
    wall = time.perf_counter() - started
    stats = standin.control("GET", "stats")
    standin.active = role
    active_bond = 1 if role == "master" else 2  # pair_fixture's bond ids
    converged = standin.converged(active_bond)
    if done.returncode != 0 or not converged:
        sys.stderr.write(f"warning: {tool} exit {done.returncode}, converged={converged}:\n"
                         f"{done.stderr[-600:]}\n")
        standin.force(active_bond)
    report = stats["address_report"]
    return Run(tool, wall, done.returncode, converged, stats["requests"], stats["connections"],
               len(stats["writes"]), report["dark_seconds"], report["longest_dark_seconds"],
               report["overlap_moments"], stats.get("dependency_violations", 0),
               stats.get("dependency_refusals", 0))


def measure(scenario: Scenario, runs: int, pool_size: int | None,
            before: Path | None = None, strict: bool = False) -> dict[str, list[Run]]:
    """``runs`` failovers per tool, interleaved so that drift hits all alike."""
    tools = tools_for(before)
    results: dict[str, list[Run]] = {tool: [] for tool in tools}
    with tempfile.TemporaryDirectory(prefix="bondha-bench-") as workdir:
        standin = StandIn(scenario, Path(workdir), pool_size, strict)
        try:
            for _ in range(runs):
                for tool in tools:
                    results[tool].append(run_once(tool, standin, before))
        finally:
            standin.stop()
    return results


def tools_for(before: Path | None) -> tuple[str, ...]:
    return ("old", "before", "bondha") if before else TOOLS


# -- the table ---------------------------------------------------------------------------

COLUMNS = ("latency", "objects/kind", "addresses", "tool", "wall s (median)", "requests",
           "connections", "writes", "dark address-s", "longest dark s", "overlap moments",
           "dependency violations", "converged")


def _median(runs: list[Run], field: str) -> float:
    return float(statistics.median(getattr(run, field) for run in runs))


def table_rows(scenario: Scenario, results: dict[str, list[Run]]) -> list[list[str]]:
    rows = []
    for tool, runs in results.items():
        violations = [run.dependency_violations + run.dependency_refusals for run in runs]
        rows.append([
            f"{scenario.latency * 1000:g} ms", str(scenario.per_kind), str(scenario.addresses),
            LABELS[tool],
            f"{_median(runs, 'wall'):.3f}", f"{_median(runs, 'requests'):g}",
            f"{_median(runs, 'connections'):g}", f"{_median(runs, 'writes'):g}",
            f"{_median(runs, 'dark_seconds'):.2f}", f"{_median(runs, 'longest_dark_seconds'):.3f}",
            str(max(run.overlap_moments for run in runs)),
            f"{statistics.median(violations):g} (max {max(violations)})"
            + (" refused" if any(run.dependency_refusals for run in runs) else ""),
            f"{sum(run.converged for run in runs)}/{len(runs)}",
        ])
    return rows


def ratios(scenario: Scenario, results: dict[str, list[Run]]) -> dict[str, float]:
    old, new = results["old"], results["bondha"]
    out = {
        "wall": _median(new, "wall") / _median(old, "wall"),
        "dark": _median(new, "dark_seconds") / max(_median(old, "dark_seconds"), 1e-9),
        "connections": _median(new, "connections") / max(_median(old, "connections"), 1),
    }
    if "before" in results:
        before = results["before"]
        out["wall_before"] = _median(before, "wall") / _median(old, "wall")
        out["wall_after_vs_before"] = _median(new, "wall") / _median(before, "wall")
    return out


def verdict(scenario: Scenario, ratio: dict[str, float], pool_size: int) -> list[str]:
    lines = []
    target = WALL_TARGETS.get((scenario.latency, scenario.per_kind))
    wall = f"wall {ratio['wall']:.3f}x"
    if target is not None:
        wall += f" (target <= {target}x: {'met' if ratio['wall'] <= target else 'MISSED'})"
    lines.append(wall)
    lines.append(f"dark {ratio['dark']:.4f}x (target <= {DARK_TARGET}x: "
                 f"{'met' if ratio['dark'] <= DARK_TARGET else 'MISSED'})")
    if "wall_before" in ratio:
        lines.append(f"bondha before {ratio['wall_before']:.3f}x; after / before "
                     f"{ratio['wall_after_vs_before']:.3f}x")
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
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="also run the bondha package of this checkout (a baseline)")
    parser.add_argument("--strict", action="store_true",
                        help="the server refuses writes that break a route's gateway (400)")
    args = parser.parse_args(argv)
    scenarios = args.scenario or [Scenario.parse(text) for text in DEFAULT_SCENARIOS]
    pool_size = _pool_size(args.pool_size)
    output: dict[str, Any] = {"machine": machine(), "pool_size": pool_size, "scenarios": []}
    if args.before is not None and not (args.before / "bondha" / "__init__.py").is_file():
        parser.error(f"--before {args.before}: no bondha package there")
    print(f"machine: {machine()}; bondha pool_size {pool_size}; {args.runs} runs per tool"
          + ("; strict server" if args.strict else ""))
    if not args.no_table:
        rows: list[list[str]] = []
        notes: list[str] = []
        for scenario in scenarios:
            results = measure(scenario, args.runs, args.pool_size, args.before, args.strict)
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
