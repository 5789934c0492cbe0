"""Failover figures of a real keepalived pair (needs root, keepalived, network namespaces).

    .venv/bin/python bench/keepalived_failover.py [--cycles 5] [--json]

Each cycle kills the master's keepalived (a hardware failure), waits for the backup's
hook to finish, then starts the master again and waits for its hook. For every
transition: keepalived -> hook start (the event time the wrapper records), event ->
last write as the server recorded it, and the server's overlap/dark figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.testbed import (
    CannotRun,
    Event,
    TestBed,
    measure,
    open_bed,
    preflight,
    wait_for,
)


def _next_start(bed: TestBed, state: str, priority: str, seen: int) -> Event:
    def starts() -> list[Event]:
        return [e for e in bed.events() if e.what == "start" and e.args[2:] == (state, priority)]

    wait_for(lambda: len(starts()) > seen, 30, f"{state} {priority} #{seen + 1}", bed.diagnostics)
    event = starts()[seen]
    wait_for(lambda: sum(1 for e in bed.events() if e.what == "exit"
                         and e.args[2:] == (state, priority)) > seen, 60,
             "the hook to finish", bed.diagnostics)
    if bed.failed_hook_runs():
        raise AssertionError(f"the hook failed: {bed.failed_hook_runs()}\n{bed.diagnostics()}")
    return event


def run(cycles: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with open_bed() as bed:
        confs = bed.start_notify_pair()
        _next_start(bed, "MASTER", "10", 0)
        for cycle in range(cycles):
            for name, action, state, priority in (
                ("failover", lambda: bed.kill("keepalived-master"), "MASTER", "9"),
                ("failback", lambda: bed.start_keepalived("master", confs["master"]),
                 "MASTER", "10"),
            ):
                before = bed.stats()
                acted = time.time()
                action()
                seen = cycle if name == "failover" else cycle + 1
                event = _next_start(bed, state, priority, seen)
                figures = measure(bed, event.at, len(before["writes"]),
                                  before["address_report"])
                rows.append({"cycle": cycle, "transition": name,
                             "keepalived_seconds": event.at - acted, **figures.to_json()})
    summary: dict[str, Any] = {}
    for name in ("failover", "failback"):
        mine = [r for r in rows if r["transition"] == name]
        summary[name] = {
            "runs": len(mine),
            "median_keepalived_seconds": statistics.median(r["keepalived_seconds"] for r in mine),
            "median_last_write_after_seconds": statistics.median(
                r["last_write_after"] for r in mine),
            "max_last_write_after_seconds": max(r["last_write_after"] for r in mine),
            "writes_per_transition": sorted({r["writes"] for r in mine}),
            "overlap_moments": sum(r["overlap_moments"] for r in mine),
            "median_dark_seconds_summed_over_addresses": statistics.median(
                r["dark_seconds"] for r in mine),
        }
    return {"cycles": rows, "summary": summary}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        preflight()
    except CannotRun as exc:
        print(f"cannot run here: {exc}", file=sys.stderr)
        return 2
    result = run(args.cycles)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for row in result["cycles"]:
        print(f"cycle {row['cycle']} {row['transition']}: keepalived noticed after "
              f"{row['keepalived_seconds']:.2f}s, last write {row['last_write_after']:.3f}s "
              f"after the event, {row['writes']} writes, overlap moments "
              f"{row['overlap_moments']}, dark {row['dark_seconds']:.3f}s (summed)")
    for name, figures in result["summary"].items():
        print(f"{name}: median over {figures['runs']} runs: event -> last write "
              f"{figures['median_last_write_after_seconds']:.3f}s (max "
              f"{figures['max_last_write_after_seconds']:.3f}s); action -> event "
              f"{figures['median_keepalived_seconds']:.2f}s; overlap moments "
              f"{figures['overlap_moments']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
