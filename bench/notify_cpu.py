"""CPU and wall time of ``bondha notify`` failovers (the path with the supersede guard),
for two or more checkouts in the same run: ``python bench/notify_cpu.py BASELINE OTHER...``.

A stand-in server (``python -m bondha.testing --fixture pair:N``, its own process) serves a
pair of N floating objects per kind; each checkout's ``bondha notify`` fails it over, in
turn and interleaved, every run in the opposite direction. Printed: the median CPU seconds
(user + system of the notify process) and wall seconds per checkout, and the ratio to the
first. Run by hand, never in CI.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("roots", nargs="+", help="checkouts; the first is the baseline")
    parser.add_argument("--objects", type=int, default=200, help="floating objects per kind")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ready, config = work / "ready", work / "c.conf"
        server = subprocess.Popen([sys.executable, "-m", "bondha.testing", "--fixture",
                                   f"pair:{args.objects}", "--ready-file", str(ready),
                                   "--write-config", str(config)])
        try:
            while not ready.exists():
                time.sleep(0.05)
            cpu: dict[str, list[float]] = {root: [] for root in args.roots}
            wall: dict[str, list[float]] = {root: [] for root in args.roots}
            priority = 9
            for run in range(args.runs):
                # Every run moves every address; the order flips so that each checkout
                # fails over in both directions.
                for root in args.roots if run % 2 == 0 else args.roots[::-1]:
                    state = work / f"state-{run}-{len(cpu[root])}-{Path(root).name}"
                    env = {**os.environ, "PYTHONPATH": root, "BONDHA_SYSLOG": "0",
                           "BONDHA_CONFIG": str(config), "BONDHA_STATE_DIR": str(state)}
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    started = time.monotonic()
                    done = subprocess.run([sys.executable, "-m", "bondha", "-q", "notify",
                                           "INSTANCE", "VI_1", "MASTER", str(priority)],
                                          cwd=root, env=env, capture_output=True, check=False)
                    wall[root].append(time.monotonic() - started)
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    if done.returncode != 0:
                        sys.stderr.write(done.stderr.decode())
                        return 1
                    cpu[root].append(after.ru_utime - before.ru_utime
                                     + after.ru_stime - before.ru_stime)
                    if os.environ.get("BENCH_VERBOSE"):
                        tail = done.stdout.decode().strip().splitlines()[-1][-40:]
                        print(Path(root).name, f"{wall[root][-1]:.2f}", tail, flush=True)
                    priority = 10 if priority == 9 else 9
        finally:
            server.terminate()
            server.wait()
    base_cpu = statistics.median(cpu[args.roots[0]])
    base_wall = statistics.median(wall[args.roots[0]])
    for root in args.roots:
        c, w = statistics.median(cpu[root]), statistics.median(wall[root])
        print(f"{root}: cpu {c:.3f}s ({c / base_cpu:.3f}x), wall {w:.3f}s ({w / base_wall:.3f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
