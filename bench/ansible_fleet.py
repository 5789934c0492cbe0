#!/usr/bin/env python3
"""The bondha.ha collection on a fleet: wall time of whole ansible-playbook runs, by forks.

One stand-in server (in this process) holds the fleet of tests/test_ansible.py (2 bonds per
pair, one object of each kind per bond); the shipped ``pair`` playbook runs three times per
setting, as the test does: check mode, apply, apply again. Every setting starts from a
fresh server, so each apply moves the same pairs. Runs of the settings are interleaved and the
median of ``--runs`` is shown, with the ratio to the first setting; requests per pair are the
server's own count.

    .venv/bin/python bench/ansible_fleet.py                     # 50 pairs, forks 1 and 10
    .venv/bin/python bench/ansible_fleet.py --pairs 20 --forks 1 5 10 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bondha.testing import StandInServer
from tests.ansible_fleet import (
    PLAYBOOKS,
    fleet,
    fleet_fixture,
    needs_move,
    run_playbook,
    write_inventory,
)

PHASES = (("check", ("--check",)), ("apply", ()), ("again", ()))


def one_round(pairs: int, forks: int, work: Path) -> dict[str, tuple[float, float, int, int]]:
    """Per phase: seconds, requests per pair, hosts changed, hosts failed."""
    fleet_pairs = fleet(pairs)
    fixture = fleet_fixture(fleet_pairs)
    figures = {}
    with StandInServer(fixture) as server:
        inventory = write_inventory(work, fixture, fleet_pairs, server.url)
        for phase, args in PHASES:
            server.reset_stats()
            started = time.monotonic()
            run = run_playbook(work, PLAYBOOKS / "pair.yml", inventory, *args, forks=forks,
                               timeout=1800)
            seconds = time.monotonic() - started
            if run.returncode != 0 or len(run.recap) != pairs:
                raise SystemExit(f"forks {forks}, {phase}: ansible-playbook exit "
                                 f"{run.returncode}\n{run.stdout[-2000:]}")
            figures[phase] = (seconds, server.stats().requests / pairs, len(run.changed()),
                              len(run.failed()))
        expected = sum(needs_move(fixture, p) for p in fleet_pairs)
        if figures["apply"][2] != expected or figures["again"][2] != 0:
            raise SystemExit(f"forks {forks}: changed {figures['apply'][2]} (expected "
                             f"{expected}), then {figures['again'][2]} (expected 0)")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--forks", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    samples: dict[int, list[dict[str, tuple[float, float, int, int]]]] = {
        forks: [] for forks in args.forks}
    with tempfile.TemporaryDirectory(prefix="bondha-ansible-bench-") as tmp:
        for run in range(args.runs):
            for forks in args.forks:
                work = Path(tmp) / f"run{run}-forks{forks}"
                work.mkdir()
                samples[forks].append(one_round(args.pairs, forks, work))
    base = args.forks[0]
    print(f"{args.pairs} pairs, median of {args.runs} runs; ratio to forks {base}")
    print(f"{'forks':>5} {'phase':<6} {'seconds':>8} {'ratio':>6} {'req/pair':>9} "
          f"{'changed':>8} {'failed':>7}")
    for forks in args.forks:
        for phase, _ in PHASES:
            seconds = statistics.median(s[phase][0] for s in samples[forks])
            base_seconds = statistics.median(s[phase][0] for s in samples[base])
            last = samples[forks][-1][phase]
            print(f"{forks:>5} {phase:<6} {seconds:>8.2f} {seconds / base_seconds:>6.2f} "
                  f"{last[1]:>9.1f} {last[2]:>8} {last[3]:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
