"""The outage the customer's router sees (needs root, keepalived, network namespaces).

    .venv/bin/python bench/customer_outage.py --announce on --advert-int 1 [--cycles 5] \\
        [--json OUT.json]
    .venv/bin/python bench/customer_outage.py --table A.json B.json ...

One bed (tests/e2e/lanbed.py): the pair, the bonding stand-ins, a router pinging the
floating IP every 50 ms. Each cycle: (a) hard failure of the master (its port dark, then
keepalived and bonding killed), (b) its return (boot, keepalived started by the private
IP's hook, preemption), (c) ``systemctl stop bonding`` on the master (then bonding is
started again, unmeasured). Each figure is the longest time between two ping replies the
router received around the step: what the customer calls the outage. ``--announce off``
leaves hooks/announce-connected-ip out: the baseline of the same run. ``--table`` prints
the medians of several result files as the Markdown table of docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.lanbed import FLOATING_IDS, LanBed, open_lan_bed
from tests.e2e.testbed import CannotRun, preflight

STEPS = ("hard_failure", "return", "bonding_stopped")


def master_down_interval(advert_int: float, backup_priority: int = 9) -> float:
    """RFC 5798: 3 adverts plus the skew of the backup's priority (v2: same formula in s)."""
    return 3 * advert_int + (256 - backup_priority) * advert_int / 256


def failover_breakdown(lan: LanBed) -> dict[str, float] | None:
    """Where the hard failure's outage went, from the records of the step just taken:
    keepalived noticing, the notify hook (bondha's writes), the bonding software putting
    the address up, its start hooks (the announcement), the router's next reply."""
    moment = lan.moment
    notify = [e for e in lan.bed.events() if e.args[2:] == ("MASTER", "9") and e.at > moment]
    began = next((e.at for e in notify if e.what == "start"), None)
    ended = next((e.at for e in notify if e.what == "exit"), None)
    if began is None or ended is None:
        return None  # the daemon (no hook run to time), or the hook still verifying
    runs = [r for r in lan.hook_runs("backup", "start", FLOATING_IDS["backup"])
            if r["at"] > moment]
    hooks_began = min(r["at"] for r in runs)
    hooks_ended = max(r["at"] + r["seconds"] for r in runs)
    reply = min(r.received for r in lan.replies() if r.received > moment)
    return {"keepalived": began - moment, "notify_hook": ended - began,
            "address_up": hooks_began - ended, "start_hooks": hooks_ended - hooks_began,
            "router_reply": reply - hooks_ended}


def stop_sequence(lan: LanBed) -> dict[str, float]:
    """(c) in order, seconds from ``systemctl stop bonding`` on the master: the backup's
    floating IP up (its start hooks begin), the master's gone (its stop hooks end)."""
    moment = lan.moment
    up = [r["at"] for r in lan.hook_runs("backup", "start", FLOATING_IDS["backup"])
          if r["at"] > moment]
    gone = [r["at"] + r["seconds"] for r in lan.hook_runs("master", "stop",
                                                          FLOATING_IDS["master"])
            if r["at"] > moment]
    return {"backup_up": min(up) - moment, "master_gone": min(gone) - moment}


def run(announce: bool, advert_int: float, cycles: int, daemon: bool = False,
        keep_logs: Path | None = None) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    started, load_before = time.time(), os.getloadavg()
    with open_lan_bed(announce=announce, advert_int=advert_int, daemon=daemon) as lan:
        for cycle in range(cycles):
            row: dict[str, Any] = {"cycle": cycle, "hard_failure": lan.fail_master()}
            row["hard_failure_breakdown"] = failover_breakdown(lan)
            row["return"] = lan.return_master()
            row["bonding_stopped"] = lan.stop_master_bonding()
            row["bonding_stopped_sequence"] = stop_sequence(lan)
            if keep_logs is not None and announce and max(row[s] for s in STEPS) > 10:
                keep_logs.mkdir(parents=True, exist_ok=True)  # an outage to explain
                (keep_logs / f"cycle-{cycle}.log").write_text(lan.bed.diagnostics())
            row["router_neighbour_is_master"] = lan.router_neighbour() == lan.mac("master")
            rows.append(row)
            print(f"announce {'on' if announce else 'off'} advert_int {advert_int:g} "
                  f"{'daemon' if daemon else 'hook'} "
                  f"cycle {cycle}: " + ", ".join(f"{s} {row[s]:.2f}s" for s in STEPS),
                  file=sys.stderr, flush=True)
        overlap = lan.bed.stats()["address_report"]["overlap_moments"]
        failed = lan.failed_hooks()
    timed = [r for r in rows if r["hard_failure_breakdown"]]
    return {
        "announce": announce, "advert_int": advert_int, "cycles": rows,
        "master_down_interval": master_down_interval(advert_int),
        "median": {s: statistics.median(r[s] for r in rows) for s in STEPS},
        "median_hard_failure_breakdown": {
            part: statistics.median(r["hard_failure_breakdown"][part] for r in timed)
            for part in timed[0]["hard_failure_breakdown"]} if timed else None,
        "notify": "daemon" if daemon else "hook",
        "max": {s: max(r[s] for r in rows) for s in STEPS},
        "overlap_moments": overlap, "failed_hooks": len(failed),
        "seconds": time.time() - started,
        # The machine is shared: its load says how much the figures above may be inflated.
        "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]},
    }


def table(paths: list[Path]) -> str:
    results = sorted((json.loads(p.read_text()) for p in paths),
                     key=lambda r: (-r["advert_int"], r.get("notify", "hook") == "daemon",
                                    r["announce"]))
    lines = ["| advert_int | master-down interval | bondha | announce | cycles | hard failure | "
             "return (preemption) | bonding stopped | goal (a): <= MDI + 0.5 s |",
             "|---|---|---|---|---|---|---|---|---|"]
    baseline = {r["advert_int"]: r for r in results
                if not r["announce"] and r.get("notify", "hook") == "hook"}
    for r in results:
        m = r["median"]
        cells = []
        for step in STEPS:
            cell = f"{m[step]:.2f} s (max {r['max'][step]:.2f})"
            base = baseline.get(r["advert_int"])
            if r["announce"] and base and base["median"][step] > 0:
                cell += f", {m[step] / base['median'][step]:.3f}x"
            cells.append(cell)
        goal = r["master_down_interval"] + 0.5
        verdict = f"{'met' if m['hard_failure'] <= goal else 'missed'} ({goal:.2f} s)"
        lines.append(f"| {r['advert_int']:g} s | {r['master_down_interval']:.2f} s | "
                     f"{r.get('notify', 'hook')} | "
                     f"{'on' if r['announce'] else 'off'} | {len(r['cycles'])} | "
                     + " | ".join(cells) + f" | {verdict} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--announce", choices=["on", "off"], default="on")
    parser.add_argument("--advert-int", type=float, default=1.0)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--daemon", action="store_true",
                        help="keepalived tells `bondha daemon` (FIFO) instead of the notify hook")
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--keep-logs", type=Path, metavar="DIR",
                        help="with announcing on, save the bed's logs of any cycle with a "
                             "step over 10 s here")
    parser.add_argument("--table", type=Path, nargs="+", help="print the table of these results")
    args = parser.parse_args()
    if args.table:
        print(table(args.table))
        return 0
    # SIGTERM unwinds like Ctrl-C, so that the bed removes its namespaces and processes.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        preflight()
    except CannotRun as exc:
        print(f"cannot run here: {exc}", file=sys.stderr)
        return 2
    result = run(args.announce == "on", args.advert_int, args.cycles, args.daemon,
                 args.keep_logs)
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
