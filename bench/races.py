#!/usr/bin/env python3
"""Races between the two bonders, repeated: which runs end right, and at what cost.

Two nodes (two state directories, two accounts) run ``bondha notify`` as separate
processes, as keepalived forks them, against one stand-in server (in this process) that
holds every write of the backup bonder's account for a while, so that its superseded
writes land late. Scenarios (the issue's three, and a fourth for the settle window):

``overtaken``  the backup bonder's MASTER run has writes on the wire when its BACKUP
               comes and the master bonder turns MASTER
``flapping``   20 alternating events on the backup bonder (20 ms apart), then MASTER on
               the master bonder
``startup``    the master bonder is MASTER; the backup bonder's keepalived forks MASTER
               and, 31 ms later, BACKUP, and the MASTER hook records second (it starts
               slowly: ``sh -c 'sleep 0.15; exec ...'`` keeps the forked PID)
``stopped``    as ``overtaken``, but the backup bonder's keepalived stops (STOP)

Each run starts a fresh server; once every hook has exited and the held writes have
landed, the run ends right when every floating address is enabled on the master bond
only. The server measures the overlap (an address enabled on both bonds: moments, and
address-seconds) and the dark time, and counts the requests.

``--before DIR`` runs the hooks of another checkout too (e.g. ``git archive 0edd78f``
unpacked), interleaved with this one's, and prints both with the ratios. The server
always comes from this checkout (the older one cannot delay one account's writes).

    .venv/bin/python bench/races.py --runs 20 --before /path/to/old/checkout
    .venv/bin/python bench/races.py --scenario overtaken --runs 3 --json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import attrs

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bondha.testing import Fault, Fixture, StandInServer, User, pair_fixture  # noqa: E402

BACKUP_USER = "backup-bonder@example.net"
BACKUP_PASSWORD = "other horse"  # a test account of the stand-in
SCENARIOS = ("overtaken", "flapping", "startup", "stopped")
HOLD = {"overtaken": 0.5, "flapping": 0.3, "startup": 0.3, "stopped": 0.5}  # s per write


@dataclass
class Outcome:
    right: bool
    overlap_moments: int
    overlap_seconds: float
    dark_seconds: float
    requests: int
    hooks: list[float] = field(default_factory=list)  # wall seconds of each hook process


@dataclass
class Node:
    name: str
    config: Path
    state: Path
    root: Path  # the checkout whose bondha the hook runs

    def start(self, state: str, priority: int, *,
              slow: float = 0.0) -> tuple[float, subprocess.Popen[str]]:
        hook = [sys.executable, "-m", "bondha", "notify", "INSTANCE", "VI_1", state, str(priority)]
        if slow:
            hook = ["sh", "-c", f'sleep {slow}; exec "$0" "$@"', *hook]
        env = {**os.environ, "PYTHONPATH": str(self.root), "BONDHA_CONFIG": str(self.config),
               "BONDHA_STATE_DIR": str(self.state), "BONDHA_SYSLOG": "0"}
        log: int | IO[str] = subprocess.DEVNULL
        if os.environ.get("RACES_LOG"):  # keep every hook's output, to see what happened
            log = open(Path(os.environ["RACES_LOG"]) / f"{self.name}-{time.monotonic():.3f}-"  # noqa: SIM115
                       f"{state}.log", "w")
        # cwd: the checkout, so that ``-m bondha`` imports its bondha and no other.
        return time.monotonic(), subprocess.Popen(hook, env=env, cwd=self.root, stdout=log,
                                                  stderr=log, text=True)


def fixture(per_kind: int) -> Fixture:
    base = pair_fixture(per_kind, master_bond=1, backup_bond=2)
    return attrs.evolve(base, users=(*base.users, User(BACKUP_USER, BACKUP_PASSWORD)))


def placement(server: StandInServer) -> dict[str, set[int]]:
    bonds: dict[str, set[int]] = {}
    for record in server.objects():
        bonds.setdefault(record.address, set()).update({record.bond_id} if record.enabled else ())
    return bonds


def _wait_for_patch(server: StandInServer, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while server.stats().requests_by_method.get("PATCH", 0) < 1:
        if time.monotonic() > end:
            raise SystemExit("no write from the backup bonder's MASTER run")
        time.sleep(0.002)


def run(scenario: str, root: Path, per_kind: int, workdir: Path, hold: float) -> Outcome:
    fix = fixture(per_kind)
    with StandInServer(fix) as server:
        nodes = []
        for name, user, password in (("master", None, None),
                                     ("backup", BACKUP_USER, BACKUP_PASSWORD)):
            config = workdir / f"{name}.conf"
            config.write_text(fix.config_text(server.url, user=user, password=password,
                                              attempt_delay=0.05, timeout=5))
            config.chmod(0o600)
            state = workdir / f"{name}.state"
            shutil.rmtree(state, ignore_errors=True)
            nodes.append(Node(name, config, state, root))
        master, backup = nodes
        server.inject(Fault(method="PATCH", user=BACKUP_USER, delay=hold))
        started: list[tuple[float, subprocess.Popen[str]]] = []
        before: list[float] = []  # hooks that ran to the end before the race began
        if scenario in ("overtaken", "stopped"):
            started.append(backup.start("MASTER", 9))
            _wait_for_patch(server)
            started.append(backup.start("BACKUP" if scenario == "overtaken" else "STOP", 9))
            started.append(master.start("MASTER", 10))
        elif scenario == "flapping":
            for number in range(20):
                started.append(backup.start("MASTER" if number % 2 == 0 else "BACKUP", 9))
                time.sleep(0.02)
            started.append(master.start("MASTER", 10))
        else:  # startup
            at, first = master.start("MASTER", 10)
            first.wait(timeout=60)
            before.append(time.monotonic() - at)
            started.append(backup.start("MASTER", 9, slow=0.15))
            time.sleep(0.031)
            started.append(backup.start("BACKUP", 9))
        hooks = before + _durations(started)
        time.sleep(hold + 0.3)  # the writes the server still holds land now
        report = server.address_report()
        right = all(bonds == {1} for bonds in placement(server).values())
        return Outcome(right, report.overlap_moments, report.overlap_seconds,
                       report.dark_seconds, server.stats().requests, hooks)


def _durations(started: Sequence[tuple[float, subprocess.Popen[str]]]) -> list[float]:
    """Each process's wall time, start to exit (polled, so that none waits for another)."""
    ended: dict[int, float] = {}
    deadline = time.monotonic() + 120
    while len(ended) < len(started):
        if time.monotonic() > deadline:
            raise SystemExit("a hook did not exit within 120 s")
        for index, (_, process) in enumerate(started):
            if index not in ended and process.poll() is not None:
                ended[index] = time.monotonic()
        time.sleep(0.002)
    return [ended[i] - at for i, (at, _) in enumerate(started)]


def _summary(outcomes: Sequence[Outcome]) -> dict[str, float]:
    hooks = [h for o in outcomes for h in o.hooks]
    return {
        "runs": len(outcomes),
        "right": sum(o.right for o in outcomes),
        "runs_with_overlap": sum(o.overlap_moments > 0 for o in outcomes),
        "overlap_moments": sum(o.overlap_moments for o in outcomes),
        "overlap_address_seconds": round(sum(o.overlap_seconds for o in outcomes), 3),
        "dark_address_seconds_median": round(
            statistics.median(o.dark_seconds for o in outcomes), 3),
        "requests_median": statistics.median(o.requests for o in outcomes),
        "hook_seconds_median": round(statistics.median(hooks), 3),
        "hook_seconds_max": round(max(hooks), 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--per-kind", type=int, default=5)
    parser.add_argument("--scenario", action="append", choices=SCENARIOS)
    parser.add_argument("--before", type=Path, help="a checkout to compare with")
    parser.add_argument("--hold", type=float, help="seconds the server holds each write of "
                        "the backup bonder (default: per scenario, see HOLD)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--save", type=Path, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    trees = {"after": ROOT, **({"before": args.before.resolve()} if args.before else {})}
    results: dict[str, dict[str, list[Outcome]]] = {}
    with tempfile.TemporaryDirectory(prefix="bondha-races-") as tmp:
        for scenario in args.scenario or SCENARIOS:
            results[scenario] = {tree: [] for tree in trees}
            for _ in range(args.runs):  # interleaved: a noisy minute hits both alike
                for tree, root in trees.items():
                    workdir = Path(tmp) / tree
                    workdir.mkdir(exist_ok=True)
                    hold = HOLD[scenario] if args.hold is None else args.hold
                    results[scenario][tree].append(
                        run(scenario, root, args.per_kind, workdir, hold))
            if not args.json:
                print(scenario, {t: _summary(o)["right"] for t, o in results[scenario].items()},
                      file=sys.stderr)
    table = {s: {t: _summary(o) for t, o in by_tree.items()} for s, by_tree in results.items()}
    data = json.dumps({"per_kind": args.per_kind, "summary": table,
                       "runs": {s: {t: [asdict(o) for o in os] for t, os in bt.items()}
                                for s, bt in results.items()}}, indent=1)
    if args.save:
        args.save.write_text(data + "\n")
    if args.json:
        print(data)
        return 0
    print(f"{3 * args.per_kind} floating addresses; the backup bonder's writes held "
          "(s): " + ", ".join(f"{s} {HOLD[s] if args.hold is None else args.hold}"
                             for s in table))
    print("| scenario | tree | right | runs with overlap | overlap moments | overlap addr-s "
          "| dark addr-s (median) | requests (median) | hook s (median / max) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for scenario, by_tree in table.items():
        for tree, row in sorted(by_tree.items(), reverse=True):
            print(f"| {scenario} | {tree} | {row['right']}/{row['runs']} | "
                  f"{row['runs_with_overlap']} | {row['overlap_moments']} | "
                  f"{row['overlap_address_seconds']} | {row['dark_address_seconds_median']} | "
                  f"{row['requests_median']:g} | {row['hook_seconds_median']} / "
                  f"{row['hook_seconds_max']} |")
        if "before" in by_tree and by_tree["before"]["requests_median"]:
            ratio = by_tree["after"]["requests_median"] / by_tree["before"]["requests_median"]
            hooks = (by_tree["after"]["hook_seconds_median"]
                     / by_tree["before"]["hook_seconds_median"])
            print(f"| {scenario} | after/before | | | | | | {ratio:.2f}x | {hooks:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
