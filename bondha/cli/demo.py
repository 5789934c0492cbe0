"""``bondha demo``: a failover and a failback against the built-in stand-in server.

What an operator sees on a real pair, without one: the plan, the apply, the
status, and the server's own account of dark time and overlap.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from ..config import load_config
from ..model import Role
from ..reconciler import read_live, reconcile
from ..status import address_status, render_status
from ..testing import StandInServer, example_fixture
from .output import emit

__all__ = ["run_demo"]


def _mask(line: str) -> str:
    key = line.split("=", 1)[0].strip()
    return f"{key} = ********" if key == "passwd" else line


def run_demo() -> int:
    fixture = example_fixture()
    with StandInServer(fixture, latency=0.005) as server, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "swap-active-bond.conf"
        path.write_text(fixture.config_text(server.url, attempt_delay=0.2))
        path.chmod(0o600)
        config = load_config(path)
        emit(f"stand-in management server at {server.url}; config {path}:")
        emit("\n".join(f"  {_mask(line)}" for line in path.read_text().splitlines()
                       if line.strip()))
        # The result printed after each apply says what changed; the per-write logs would
        # repeat it line by line.
        logging.getLogger("bondha").setLevel(logging.WARNING)

        def section(title: str) -> None:
            emit(f"\n=== {title}")

        def show_status() -> None:
            emit(render_status(config.pair, address_status(config.pair, read_live(config))))

        section("status: the master bonder is active")
        show_status()
        steps = (
            ("failover: keepalived on the backup bonder reports MASTER, priority 9", Role.BACKUP),
            ("failback: the master bonder returns and reports MASTER, priority 10", Role.MASTER),
        )
        for title, role in steps:
            section(title)
            emit(reconcile(config, role, dry_run=True).plan.render())
            emit("--- apply")
            emit(reconcile(config, role).render())
            emit("--- status")
            show_status()
        section("the same again: a converged pair needs no write")
        emit(reconcile(config, Role.MASTER).render())
        report = server.address_report()
        section("the server's own measurements")
        emit(f"writes: {len(server.stats().writes)}, overlap moments: {report.overlap_moments}, "
             f"dark time summed over addresses: {report.dark_seconds:.3f}s")
        return 0 if report.overlap_moments == 0 else 1
