#!/usr/bin/env python3
"""The daemon's fast path: a notify_fifo line to converged, against a ``bondha notify`` process.

Two stand-in servers (each its own process, ``--style`` as in ``bench/failover.py``) serve
the same generated pair. ``bondha daemon`` runs against one, reading a FIFO, with its warm
connections; ``bondha notify`` runs against the other as keepalived's notify hook would, a
new process for each event, with a state directory of its own. Two servers, because after
a MASTER event the daemon checks the pair again for a while (its early checks) and repairs
what it finds moved: a notify run on the same pair would be undone as drift.
Each run fails the pair over in the opposite direction of the one before, the two
interleaved. The figure is the time from the FIFO line being written (or the notify
process being started) to the last write of the failover landing on the server, as the
server's own clock records it (CLOCK_MONOTONIC is the same for every process here).

    .venv/bin/python bench/daemon_fastpath.py --scenario 0.02:20 --style stdlib --runs 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from failover import HERE, STYLES, Scenario, StandIn, _bondha_command, byte_compile

TARGET = 0.3
TOOLS = ("daemon", "notify")


def _line(role: str) -> str:
    return f'INSTANCE "VI_1" MASTER {10 if role == "master" else 9}'


def _tmpfs() -> str | None:
    """A tmpfs for the state directories, as on a bonder (``/run/bondha`` is one): there
    an event record's fsync costs nothing, on a disk half a millisecond each. None: the
    default temporary directory."""
    shm = Path("/dev/shm")
    try:
        mounts = Path("/proc/mounts").read_text().split("\n")
    except OSError:
        return None
    if any(line.split()[1:3] == [str(shm), "tmpfs"] for line in mounts if line) and (
            os.access(shm, os.W_OK)):
        return str(shm)
    return None


def _wait_for_writes(standin: StandIn, expected: int, started_at: float,
                     timeout: float = 30.0) -> float:
    """The server's time of the last of ``expected`` writes (stats were reset before)."""
    deadline = time.monotonic() + timeout
    while True:
        writes = standin.control("GET", "stats")["writes"]
        if len(writes) >= expected:
            if os.environ.get("FASTPATH_DEBUG"):
                print("first", min(w["at"] for w in writes) - started_at, file=sys.stderr)
            return max(write["at"] for write in writes)  # FIRST:{min(w["at"] for w in writes)}
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(writes)} of {expected} writes landed")
        time.sleep(0.005)


def measure(scenario: Scenario, style: str, runs: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {tool: [] for tool in TOOLS}
    with tempfile.TemporaryDirectory(prefix="bondha-fastpath-", dir=_tmpfs()) as workdir:
        work = Path(workdir)
        standins = {}
        for tool in TOOLS:
            (work / tool).mkdir()
            standins[tool] = StandIn(scenario, work / tool, None, style)
        standin = standins["daemon"]
        fifo = work / "notify.fifo"
        daemon_config, notify_config = work / "daemon.conf", work / "notify.conf"
        daemon_config.write_text(
            standin.config.read_text() + f"[bondha]\nnotify_fifo = {fifo}\nstate_dir = "
            f"{work / 'daemon-state'}\nreconcile_interval = 3600\n")
        notify_config.write_text(standins["notify"].config.read_text()
                                 + f"[bondha]\nstate_dir = {work / 'notify-state'}\n")
        for path in (daemon_config, notify_config):
            path.chmod(0o600)
        log = (work / "daemon.log").open("w")
        daemon = subprocess.Popen([*_bondha_command(), "--config", str(daemon_config), "daemon"],
                                  stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                  env=standin.env)
        try:
            deadline = time.monotonic() + 30
            while not fifo.exists() or "daemon started" not in (work / "daemon.log").read_text():
                if daemon.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the daemon did not start:\n"
                                       + (work / "daemon.log").read_text()[-2000:])
                time.sleep(0.02)
            writer = os.open(fifo, os.O_WRONLY)  # held open, as keepalived holds it
            time.sleep(1.5)  # the warm connections are up
            expected = 2 * scenario.addresses
            try:
                for _ in range(runs):
                    for tool in TOOLS:
                        standin = standins[tool]
                        role = "backup" if standin.active == "master" else "master"
                        standin.control("POST", "reset")
                        started = time.monotonic()
                        if tool == "daemon":
                            os.write(writer, (_line(role) + "\n").encode())
                        else:
                            subprocess.run(
                                [*_bondha_command(), "--config", str(notify_config), "notify",
                                 *_line(role).replace('"', "").split()],
                                check=True, capture_output=True, stdin=subprocess.DEVNULL,
                                env=standins["notify"].env)
                        figures[tool].append(_wait_for_writes(standin, expected, started) - started)
                        standin.active = role
                        time.sleep(0.3)  # the daemon's verification read is done
            finally:
                os.close(writer)
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
            log.close()
            for each in standins.values():
                each.stop()
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", type=Scenario.parse,
                        metavar="LATENCY:OBJECTS_PER_KIND", help="default 0.02:20 and 0.002:10")
    parser.add_argument("--style", action="append", choices=STYLES)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    scenarios = args.scenario or [Scenario(0.02, 20), Scenario(0.002, 10)]
    byte_compile(HERE.parent / "bondha")  # as installed: not compiled again in each process
    print("| style | latency | addresses | FIFO line -> converged s (median) | notify process "
          "-> converged s (median) | daemon/notify | target |")
    print("|---|---|---|---|---|---|---|")
    for style in args.style or list(STYLES):
        for scenario in scenarios:
            figures = measure(scenario, style, args.runs)
            daemon, notify = (statistics.median(figures[tool]) for tool in TOOLS)
            ratio = daemon / notify
            print(f"| {style} | {scenario.latency * 1000:g} ms | {scenario.addresses} | "
                  f"{daemon:.3f} (max {max(figures['daemon']):.3f}) | {notify:.3f} | "
                  f"{ratio:.3f}x | <= {TARGET}: {'met' if ratio <= TARGET else 'MISSED'} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
