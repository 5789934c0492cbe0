#!/usr/bin/env python3
"""Failover benchmark: the old notify script against ``bondha apply``, as whole processes.

For each server style (``proxy``, ``stdlib``, ``close``, ``tls``: how the server's HTTP layer
writes and accepts, see ``bondha.testing.styles``) and each scenario (latency, objects per
kind) a stand-in management server is started as its own process
(``python -m bondha.testing --fixture pair:N --latency L --style S``). Then, several
times each and interleaved, (a) the model of the old script (``old_swap_active_bond.py``)
and (b) ``bondha apply`` fail the pair over, every run in the opposite direction of the one
before, so each run moves every floating address. Wall time is measured from process start
to exit; requests, connections, writes and the dark and overlap time of every floating
address are measured by the server itself (``/_standin/stats``), not estimated here. After
every run the server's objects are checked: each address enabled on the new active bond
only, or the run counts as not converged. The longest gap between two writes landing on
the server is each run's stall figure. The server also counts *dependency violations*:
writes that left an enabled route without an enabled connected IP holding its gateway
(route i's gateway lies in connected IP i); ``--strict`` makes it refuse them (400).

Each table has a floor column: what no client could beat on this machine, measured in the
same run: the interpreter's start-up with the apply path's imports, one round trip to
read, the write plan's critical path in round trips (``pool_size`` requests per round),
one round trip to verify. A round trip is the median of a kept-alive request to the same
server (a new connection each for the ``close`` style).

    .venv/bin/python bench/failover.py                       # every style, the issue's scenarios
    .venv/bin/python bench/failover.py --scenario 0.02:20 --style stdlib --runs 20
    .venv/bin/python bench/failover.py --soak --style stdlib  # 30 failovers, random faults
    .venv/bin/python bench/failover.py --before ../other-checkout --scenario 0.02:10
    .venv/bin/python bench/failover.py --strict --scenario 0.02:10   # the server refuses them
    .venv/bin/python bench/failover.py --no-table --plot docs/failover-scaling.png

``--before DIR`` adds a tool ``before``: the bondha package of another checkout (e.g. the
commit before a change), run as ``python -m bondha`` with that checkout first on the path;
bondha itself then runs the same way, so both pay the same start-up. ``--compare
NAME=COMMAND`` adds any other bondha build as a command.

``--plot`` needs matplotlib: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OLD_SCRIPT = HERE / "old_swap_active_bond.py"
TOOLS = ("old", "bondha")
# --compare NAME=COMMAND and --before DIR: other bondha builds run interleaved with these.
COMPARE: dict[str, list[str]] = {}
# --before DIR: the checkout each bondha tool imports from (PYTHONPATH), by tool name.
TREES: dict[str, Path] = {}


def byte_compile(package: Path) -> None:
    """Compile ``package``'s modules for this interpreter, as pip and the Debian package do
    when they install bondha. A checkout run where ``PYTHONDONTWRITEBYTECODE`` is set (some
    CI and container images set it) would otherwise compile every module from source in
    every process: 40-50 ms of start-up that no installed bondha pays."""
    import compileall

    compileall.compile_dir(str(package), quiet=1)


def tools() -> tuple[str, ...]:
    return (*TOOLS, *COMPARE)


# The targets: bondha's median wall time as a fraction of the old script's.
WALL_TARGETS = {(0.02, 20): 0.15, (0.002, 10): 1.0, (0.02, 100): 0.10, (0.005, 200): 0.10}
DARK_TARGET = 0.05
FLOOR_TARGET = 1.3
SOAK_TARGET = 0.3
STALL_LIMIT = 0.2
DEFAULT_SCENARIOS = ("0.02:20", "0.002:10", "0.02:100", "0.005:200")
STYLES = ("proxy", "stdlib", "close", "tls")


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
    longest_write_gap: float = 0.0  # seconds between two writes landing: a stall shows here
    cpu: float = 0.0  # the process's user + system seconds: less at the mercy of other load
    dependency_violations: int = 0  # accepted writes that left a route without its gateway
    dependency_refusals: int = 0  # the same, refused by a --strict server
    most_open: int = 0  # connections open at once, at most, as the server counted them
    server_cpu: float = 0.0  # the stand-in process's CPU seconds during the run (Linux)


def make_certificate(workdir: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA), by the openssl command line."""
    cert, key = workdir / "server.pem", workdir / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    return cert, key


class StandIn:
    """A ``python -m bondha.testing`` process with a generated pair, and its control API."""

    def __init__(self, scenario: Scenario, workdir: Path, pool_size: int | None,
                 style: str = "proxy", extra: Sequence[str] = ()) -> None:
        self.config = workdir / "swap-active-bond.conf"
        self.style = style
        self.env = dict(os.environ)
        ready = workdir / "ready"
        tls: list[str] = []
        if style == "tls":
            cert, key = make_certificate(workdir)
            tls = ["--tls-cert", str(cert), "--tls-key", str(key),
                   "--config-option", f"ca_bundle={cert}"]
            self.env["SSL_CERT_FILE"] = str(cert)  # the old script trusts the system's CAs
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bondha.testing", "--fixture", f"pair:{scenario.per_kind}",
             "--latency", str(scenario.latency), "--write-config", str(self.config),
             "--ready-file", str(ready), "--style", style, *tls, *extra],
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

    def control(self, method: str, name: str, body: Any = None) -> Any:
        data = json.dumps(body if body is not None else {}).encode() if method == "POST" else None
        request = urllib.request.Request(f"{self.url}/_standin/{name}", method=method,
                                         data=data)
        context = None
        if self.url.startswith("https:"):
            import ssl

            context = ssl.create_default_context(cafile=self.env["SSL_CERT_FILE"])
        with urllib.request.urlopen(request, timeout=60, context=context) as response:
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
                self.control("POST", f"objects/{record['bond_id']}/{record['kind']}/"
                             f"{record['id']}", {"enabled": wanted})

    def cpu(self) -> float:
        """The stand-in's user + system CPU seconds so far (0 where /proc is missing). Its
        threads share one interpreter lock: a run cannot end sooner than the client's
        start-up plus this, whatever the client does."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

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
    bondha = COMPARE.get(tool) or (
        [sys.executable, "-m", "bondha"] if TREES else _bondha_command())
    return [*bondha, "--config", str(config), "apply", "--active", role]


def _environment(tool: str, env: dict[str, str]) -> dict[str, str]:
    """With --before, each bondha runs from its own checkout (first on the path)."""
    tree = TREES.get(tool)
    return env if tree is None else {**env, "PYTHONPATH": str(tree.resolve())}


def run_once(tool: str, standin: StandIn) -> Run:
    role = "backup" if standin.active == "master" else "master"
    standin.control("POST", "reset")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = standin.cpu()
    started = time.perf_counter()
    # cwd: not a checkout, so that `python -m bondha` imports the one PYTHONPATH names.
    done = subprocess.run(command(tool, standin.config, role), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False,
                          env=_environment(tool, standin.env), cwd=standin.config.parent)
    wall = time.perf_counter() - started
    server_cpu = standin.cpu() - server_before
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    stats = standin.control("GET", "stats")
    standin.active = role
    active_bond = 1 if role == "master" else 2  # pair_fixture's bond ids
    converged = standin.converged(active_bond)
    if done.returncode != 0 or not converged:
        sys.stderr.write(f"warning: {tool} exit {done.returncode}, converged={converged}:\n"
                         f"{done.stderr[-600:]}\n")
        standin.force(active_bond)
    report = stats["address_report"]
    landed = sorted(write["at"] for write in stats["writes"])
    gap = max((b - a for a, b in zip(landed, landed[1:])), default=0.0)
    return Run(tool, wall, done.returncode, converged, stats["requests"], stats["connections"],
               len(stats["writes"]), report["dark_seconds"], report["longest_dark_seconds"],
               report["overlap_moments"], gap, cpu, stats.get("dependency_violations", 0),
               stats.get("dependency_refusals", 0), stats.get("most_open", 0), server_cpu)


def measure(scenario: Scenario, runs: int, pool_size: int | None, style: str = "proxy",
            floor: Floor | None = None, strict: bool = False) -> dict[str, list[Run]]:
    """``runs`` failovers per tool, interleaved so that drift hits both alike; ``floor``
    gets this server's round trip and the plan's critical path."""
    results: dict[str, list[Run]] = {tool: [] for tool in tools()}
    with tempfile.TemporaryDirectory(prefix="bondha-bench-") as workdir:
        standin = StandIn(scenario, Path(workdir), pool_size, style,
                          ["--strict-dependencies"] if strict else [])
        try:
            if floor is not None:
                floor.rtt = round_trip(standin)
                floor.rounds = write_rounds(standin, _pool_size(pool_size))
            for _ in range(runs):
                for tool in tools():
                    results[tool].append(run_once(tool, standin))
                if floor is not None:
                    floor.startups.append(wall_of(floor.command))
        finally:
            standin.stop()
    return results


# -- the floor ---------------------------------------------------------------------------

@dataclass
class Floor:
    """What no client could beat: start-up, then read, the writes' critical path, verify."""

    command: list[str]  # the start-up, timed once per run pair (same load as the runs)
    startups: list[float] = field(default_factory=list)
    rtt: float = 0.0
    rounds: int = 0

    @property
    def startup(self) -> float:
        return float(statistics.median(self.startups)) if self.startups else 0.0

    @property
    def seconds(self) -> float:
        return self.startup + self.rtt * (1 + self.rounds + 1)


def startup_command() -> list[str]:
    """A process that imports what ``bondha apply`` imports (as it imported them), and exits."""
    with tempfile.TemporaryDirectory(prefix="bondha-bench-") as workdir:
        standin = StandIn(Scenario(0.0, 2), Path(workdir), None)
        try:
            traced = subprocess.run(
                [sys.executable, "-X", "importtime", "-m", "bondha", "--config",
                 str(standin.config), "apply", "--active", "backup"],
                capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
        finally:
            standin.stop()
    names = [line.rsplit("|", 1)[1].strip() for line in traced.stderr.splitlines()
             if line.startswith("import time:") and "|" in line]
    names = [name for name in names if name and name != "package"]
    code = (f"import importlib\nfor name in {names!r}:\n    try:\n"
            "        importlib.import_module(name)\n    except Exception:\n        pass\n")
    return [sys.executable, "-c", code]


def wall_of(command: Sequence[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - started


def round_trip(standin: StandIn, samples: int = 15) -> float:
    """Median time of one GET of a collection: kept alive (ACKed at once, as a client that
    knows Nagle's trap does), or on a new connection each for the ``close`` style."""
    import base64
    import configparser
    import http.client
    import socket
    import ssl
    from urllib.parse import urlsplit

    parser = configparser.ConfigParser()
    parser.read(standin.config)
    section = parser["bondingadmin"]
    token = base64.b64encode(f"{section['user']}:{section['passwd']}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}
    parts = urlsplit(standin.url)

    def connect() -> http.client.HTTPConnection:
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=standin.env["SSL_CERT_FILE"])
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.netloc, context=context)
        else:
            connection = http.client.HTTPConnection(parts.netloc)
        connection.connect()
        return connection

    walls = []
    connection = connect()
    for _ in range(samples + 1):
        if standin.style == "close":
            connection.close()
            started = time.perf_counter()
            connection = connect()
        else:
            started = time.perf_counter()
        connection.request("GET", "/api/v3/bonds/1/routes/", headers=headers)
        quickack = getattr(socket, "TCP_QUICKACK", None)
        if quickack is not None and connection.sock is not None:
            connection.sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)
        response = connection.getresponse()
        response.read()
        walls.append(time.perf_counter() - started)
    connection.close()
    return float(statistics.median(walls[1:]))  # the first paid for the connection


def write_rounds(standin: StandIn, pool_size: int) -> int:
    """The next failover's writes in rounds of ``pool_size`` concurrent requests, each write
    after those it depends on (the plan's dependency graph: its longest chain)."""
    from bondha.config import load_config
    from bondha.model import Role
    from bondha.plan import make_plan
    from bondha.reconciler import read_live

    config = load_config(standin.config)
    role = Role.BACKUP if standin.active == "master" else Role.MASTER
    plan = make_plan(config.pair, role, read_live(config))
    gates: dict[Any, list[Any]] = {}  # a write -> the writes that wait for it
    for dependency in plan.dependencies:
        for change in dependency.first:
            gates.setdefault(change, []).extend(dependency.then)
    height: dict[Any, int] = {}
    for change in reversed(plan.changes):  # every edge points forward in this order
        height[change] = 1 + max((height[then] for then in gates.get(change, ())), default=0)
    depth = max(height.values(), default=0)
    return max(depth, math.ceil(len(plan) / pool_size)) if len(plan) else 0


# -- the table ---------------------------------------------------------------------------

COLUMNS = ("latency", "addresses", "old s", "bondha s", "bondha/old", "target", "floor s",
           "bondha/floor", "requests", "connections (max)", "at once (max)",
           "longest write gap s (max)", "dark vs old", "overlaps", "dependency violations",
           "converged")


def _median(runs: list[Run], field: str) -> float:
    return float(statistics.median(getattr(run, field) for run in runs))


def ratios(scenario: Scenario, results: dict[str, list[Run]],
           floor: Floor | None = None) -> dict[str, float]:
    old, new = results["old"], results["bondha"]
    ratio = {
        "wall": _median(new, "wall") / _median(old, "wall"),
        "dark": _median(new, "dark_seconds") / max(_median(old, "dark_seconds"), 1e-9),
        "connections": _median(new, "connections") / max(_median(old, "connections"), 1),
    }
    if floor is not None and floor.seconds > 0:
        ratio["floor"] = _median(new, "wall") / floor.seconds
    return ratio


def columns() -> tuple[str, ...]:
    extra = tuple(f"{name} {what}" for name in COMPARE for what in ("s", "/ old", "/ floor"))
    return COLUMNS[:5] + extra + COLUMNS[5:]


def table_row(scenario: Scenario, results: dict[str, list[Run]], floor: Floor) -> list[str]:
    old, new = results["old"], results["bondha"]
    ratio = ratios(scenario, results, floor)
    extra = []
    for name in COMPARE:
        wall = _median(results[name], "wall")
        extra += [f"{wall:.3f}", f"{wall / _median(old, 'wall'):.3f}x",
                  f"{wall / floor.seconds:.2f}x" if floor.seconds else "-"]
    violations = [run.dependency_violations + run.dependency_refusals for run in new]
    target = WALL_TARGETS.get((scenario.latency, scenario.per_kind))
    verdict = "" if target is None else (
        f"<= {target:g}: {'met' if ratio['wall'] <= target else 'MISSED'}")
    return [
        f"{scenario.latency * 1000:g} ms", str(scenario.addresses),
        f"{_median(old, 'wall'):.3f}", f"{_median(new, 'wall'):.3f}", f"{ratio['wall']:.3f}x",
        *extra, verdict, f"{floor.seconds:.3f}", f"{ratio['floor']:.2f}x",
        f"{_median(new, 'requests'):g}", str(max(run.connections for run in new)),
        str(max(run.most_open for run in new)),
        f"{max(run.longest_write_gap for run in new):.3f}", f"{ratio['dark']:.4f}x",
        str(max(run.overlap_moments for run in old + new)),
        f"{statistics.median(violations):g} (max {max(violations)})"
        + (" refused" if any(run.dependency_refusals for run in new) else ""),
        f"{sum(run.converged for run in new)}/{len(new)}",
    ]


def markdown(rows: Sequence[Sequence[str]]) -> str:
    names = columns()
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
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


# -- the soak ---------------------------------------------------------------------------

SOAK_FAULTS: dict[str, list[dict[str, Any]]] = {
    "none": [],
    "JSON 503 on 2 writes": [{"method": "PATCH", "status": 503, "count": 2,
                              "body": '{"detail": "Service unavailable."}'}],
    "reset on 2 writes": [{"method": "PATCH", "drop": True, "count": 2}],
    "429 Retry-After 1 on a write": [{"method": "PATCH", "status": 429, "count": 1,
                                      "headers": {"Retry-After": "1"},
                                      "body": '{"detail": "Throttled."}'}],
    "0.5 s delay on 2 writes": [{"method": "PATCH", "delay": 0.5, "count": 2}],
}


def soak(style: str, failovers: int, per_kind: int, latency: float, seed: int,
         pool_size: int | None) -> dict[str, Any]:
    """``failovers`` failovers per tool, interleaved, each with a fault set drawn at random
    (the same draw for both tools; a third of them fault-free)."""
    rng = random.Random(seed)
    names = list(SOAK_FAULTS)
    draws = [names[0] if rng.random() < 1 / 3 else rng.choice(names[1:])
             for _ in range(failovers)]
    runs: dict[str, list[tuple[str, Run]]] = {tool: [] for tool in tools()}
    options = ["--config-option", "timeout=2", "--config-option", "attempt_delay=1"]
    with tempfile.TemporaryDirectory(prefix="bondha-soak-") as workdir:
        standin = StandIn(Scenario(latency, per_kind), Path(workdir), pool_size, style, options)
        try:
            for draw in draws:
                for tool in tools():
                    standin.control("DELETE", "faults")
                    for fault in SOAK_FAULTS[draw]:
                        standin.control("POST", "faults", fault)
                    runs[tool].append((draw, run_once(tool, standin)))
            standin.control("DELETE", "faults")
        finally:
            standin.stop()
    total = {tool: sum(run.wall for _, run in runs[tool]) for tool in tools()}
    clean = {tool: [run.wall for draw, run in runs[tool] if draw == "none"] for tool in tools()}
    return {
        "style": style, "draws": draws, "total": total,
        "ratio": total["bondha"] / total["old"],
        "fault_free": {tool: [min(walls), float(statistics.median(walls)), max(walls)]
                       if walls else [] for tool, walls in clean.items()},
        "converged": {tool: sum(run.converged for _, run in runs[tool]) for tool in tools()},
        "longest_write_gap": {tool: max((run.longest_write_gap for draw, run in runs[tool]
                                         if draw == "none"), default=0.0) for tool in tools()},
        "runs": {tool: [{"faults": draw, **asdict(run)} for draw, run in runs[tool]]
                 for tool in tools()},
    }


def print_soak(result: dict[str, Any]) -> None:
    clean = result["fault_free"]
    print(f"soak, style {result['style']}: {len(result['draws'])} failovers per tool; total "
          f"old {result['total']['old']:.1f} s, bondha {result['total']['bondha']:.1f} s: "
          f"{result['ratio']:.3f}x (target <= {SOAK_TARGET}x: "
          f"{'met' if result['ratio'] <= SOAK_TARGET else 'MISSED'})"
          + "".join(f"; {name} {result['total'][name]:.1f} s: "
                    f"{result['total'][name] / result['total']['old']:.3f}x" for name in COMPARE))
    for tool in tools():
        if clean[tool]:
            low, mid, high = clean[tool]
            print(f"  fault-free {tool}: {low:.3f} / {mid:.3f} / {high:.3f} s (min/median/max), "
                  f"converged {result['converged'][tool]}/{len(result['draws'])}, longest "
                  f"write gap when fault-free {result['longest_write_gap'][tool]:.3f} s")


# -- the command line --------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", type=Scenario.parse,
                        metavar="LATENCY:OBJECTS_PER_KIND",
                        help=f"repeatable (default: {' '.join(DEFAULT_SCENARIOS)})")
    parser.add_argument("--style", action="append", choices=STYLES,
                        help=f"server style, repeatable (default: {' '.join(STYLES)})")
    parser.add_argument("--runs", type=int, default=5, help="runs per tool (default %(default)s)")
    parser.add_argument("--pool-size", type=int,
                        help="bondha's [bondha] pool_size (default: bondha's default)")
    parser.add_argument("--no-table", action="store_true", help="skip the scenarios")
    parser.add_argument("--soak", action="store_true",
                        help="also the soak: 30 failovers per tool, 10 objects per kind, 2 ms, "
                        "random faults")
    parser.add_argument("--soak-failovers", type=int, default=30)
    parser.add_argument("--seed", type=int, default=17, help="the soak's draw of faults")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="also sweep sizes and plot")
    parser.add_argument("--plot-latency", type=float, default=0.02)
    parser.add_argument("--plot-sizes", default="10,30,100,300,1000",
                        help="objects per kind (default %(default)s)")
    parser.add_argument("--plot-runs", type=int, default=1)
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every run here")
    parser.add_argument("--compare", action="append", default=[], metavar="NAME=COMMAND",
                        help="also run another bondha build, interleaved (e.g. "
                        "before=/path/to/venv/bin/bondha); repeatable")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="also run the bondha package of this checkout (a baseline)")
    parser.add_argument("--strict", action="store_true",
                        help="the server refuses writes that break a route's gateway (400)")
    args = parser.parse_args(argv)
    for text in args.compare:
        name, sep, bondha = text.partition("=")
        if not sep or not name or name in TOOLS:
            parser.error(f"--compare {text}: expected NAME=COMMAND, NAME not old or bondha")
        COMPARE[name] = bondha.split()
    if args.before is not None:
        if not (args.before / "bondha" / "__init__.py").is_file():
            parser.error(f"--before {args.before}: no bondha package there")
        if "before" in COMPARE:
            parser.error("--before and --compare before=... name the same tool")
        COMPARE["before"] = [sys.executable, "-m", "bondha"]
        TREES.update(before=args.before, bondha=HERE.parent)
    for tree in {HERE.parent, *TREES.values()}:
        byte_compile(tree / "bondha")
    scenarios = args.scenario or [Scenario.parse(text) for text in DEFAULT_SCENARIOS]
    styles = args.style or list(STYLES)
    pool_size = _pool_size(args.pool_size)
    output: dict[str, Any] = {"machine": machine(), "pool_size": pool_size, "scenarios": []}
    print(f"machine: {machine()}; bondha pool_size {pool_size}; {args.runs} runs per tool"
          + ("; strict server" if args.strict else ""))
    if not args.no_table:
        startup = startup_command()
        for style in styles:
            rows: list[list[str]] = []
            for scenario in scenarios:
                floor = Floor(startup)
                results = measure(scenario, args.runs, args.pool_size, style, floor,
                                  args.strict)
                rows.append(table_row(scenario, results, floor))
                output["scenarios"].append({
                    **asdict(scenario), "style": style,
                    "floor": {**asdict(floor), "command": None, "startup": floor.startup,
                              "seconds": floor.seconds},
                    "ratios": ratios(scenario, results, floor), "runs": {
                        tool: [asdict(run) for run in runs] for tool, runs in results.items()}})
                ratio = ratios(scenario, results, floor)
                old_wall = _median(results["old"], "wall")
                compared = "".join(f", {name} {_median(results[name], 'wall') / old_wall:.3f}x"
                                   for name in COMPARE)
                print(f"... {style} {scenario.latency * 1000:g} ms {scenario.addresses}: "
                      f"{ratio['wall']:.3f}x of old{compared}, {ratio['floor']:.2f}x of the floor "
                      f"(start-up {floor.startup:.3f} s, round trip {floor.rtt * 1000:.1f} ms, "
                      f"{floor.rounds} write rounds; the server's CPU "
                      f"{_median(results['bondha'], 'server_cpu'):.3f} s for bondha, "
                      f"{_median(results['old'], 'server_cpu'):.3f} s for old)", flush=True)
            print()
            print(f"style {style}:")
            print(markdown(rows))
            print()
    if args.soak:
        output["soak"] = []
        for style in styles:
            result = soak(style, args.soak_failovers, 10, 0.002, args.seed, args.pool_size)
            output["soak"].append(result)
            print_soak(result)
    if args.plot:
        output["plot"] = plot(args.plot, args.plot_latency,
                              [int(size) for size in args.plot_sizes.split(",")],
                              args.plot_runs, args.pool_size)
    if args.json:
        args.json.write_text(json.dumps(output, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
