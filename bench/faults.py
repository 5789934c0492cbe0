"""Fault scenarios: bondha's notify run against a model of the old swap-active-bond.py.

Each scenario starts a fresh stand-in server (the how-to's example pair, master active),
injects its faults, and runs one failover to the backup bond (keepalived's
``INSTANCE VI_1 MASTER 9``) twice: once with a model of the old script, once with
``bondha notify``. Reported per run: converged (the server's final state), exit code,
wall time, PATCH requests sent, writes the server applied, and the overlap moments the
server measured (an address enabled on both bonds).

The old script, as modelled: PATCHes every object blindly (all disables on the old
bond, then all enables on the new one, one at a time), retries any failure
``attempts`` times with a fixed ``attempt_delay``, crashes on an error answer whose body
is not JSON (abandoning the remaining PATCHes), never reads back, and exits 0.

Both get the same settings: timeout 2 s, attempts 3, attempt_delay 1 s; bondha's
``[bondha] deadline`` is 10 s. Run: ``.venv/bin/python bench/faults.py`` (about 2 min).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import attrs
import httpx

from bondha.cli import main as bondha_main
from bondha.model import Role
from bondha.testing import Fault, StandInServer, example_fixture

TIMEOUT, ATTEMPTS, DELAY, DEADLINE = 2.0, 3, 1.0, 10.0
HTML = "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"


@attrs.frozen
class Scenario:
    name: str
    faults: tuple[Fault, ...] = ()
    heal_after: float | None = None  # seconds after the start when every fault is cleared


SCENARIOS = [
    Scenario("no fault"),
    Scenario("HTML 503 on 2 writes", (Fault(method="PATCH", status=503, body=HTML, count=2),)),
    Scenario("JSON 503 on 30% of requests",
             (Fault(status=503, body='{"detail": "Service unavailable."}', rate=0.3),)),
    Scenario("429 Retry-After 1 on 2 writes", (Fault(
        method="PATCH", status=429, body='{"detail": "Throttled."}',
        headers={"Retry-After": "1"}, count=2),)),
    Scenario("connection reset on 3 writes", (Fault(method="PATCH", drop=True, count=3),)),
    Scenario("timeout (3 s) on 2 writes", (Fault(method="PATCH", delay=3.0, count=2),)),
    Scenario("server down 4 s", (Fault(drop=True),), heal_after=4.0),
    Scenario("server down 15 s (> deadline)", (Fault(drop=True),), heal_after=15.0),
    Scenario("lost write (200, not applied)", (Fault(
        method="PATCH", path=r"/routes/8/$", status=200, count=1,
        body='{"id": 8, "enabled": true, "network": "198.51.100.0/24"}'),)),
    Scenario("old bond's disable fails for good (JSON 502)", (Fault(
        method="PATCH", path=r"/bonds/1/routes/7/$", status=502,
        body='{"detail": "Bad gateway."}'),)),
    Scenario("unknown id (404) on one object", (Fault(
        path=r"/bonds/1/routes/7/$", status=404, body='{"detail": "Not found."}'),)),
]


@attrs.frozen
class Outcome:
    converged: bool
    exit_code: int
    seconds: float
    patches: int
    writes: int
    overlaps: int


# -- the old script, modelled ---------------------------------------------------------------

def old_script(base_url: str, user: str, password: str) -> int:
    """Failover to the backup bond the old way; always exit 0."""
    fixture = example_fixture()
    pair = fixture.pair()
    plan = [(ref, False) for ref in pair.master.refs()]
    plan += [(ref, True) for ref in pair.backup.refs()]
    with httpx.Client(auth=(user, password), timeout=TIMEOUT) as http:
        for ref, enabled in plan:
            url = f"{base_url}/api/v3/bonds/{ref.bond_id}/{ref.kind.value}/{ref.id}/"
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    response = http.patch(url, json={"enabled": enabled})
                except httpx.HTTPError as exc:
                    print(f"  old: {exc}; attempt {attempt}", file=sys.stderr)
                else:
                    if response.status_code == 200:
                        break
                    try:
                        json.loads(response.text)
                    except ValueError:
                        return 0  # the crash: a traceback, and the remaining PATCHes never sent
                if attempt < ATTEMPTS:
                    time.sleep(DELAY)
    return 0


# -- bondha ---------------------------------------------------------------------------------

def bondha_notify(config_path: Path) -> int:
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        return bondha_main(["--config", str(config_path), "-q", "notify", "INSTANCE", "VI_1",
                            "MASTER", "9"])


# -- measuring --------------------------------------------------------------------------------

def converged(server: StandInServer) -> bool:
    pair = example_fixture().pair()
    want = {ref: ref.bond_id == pair.side(Role.BACKUP).bond_id for ref in pair.refs()}
    return all(server.get_object(r.bond_id, r.kind, r.id)["enabled"] is on
               for r, on in want.items())


def run(scenario: Scenario, runner: Callable[[StandInServer, Path], int],
        workdir: Path) -> Outcome:
    fixture = example_fixture()
    with StandInServer(fixture, seed=7) as server:
        config = workdir / "swap-active-bond.conf"
        config.write_text(fixture.config_text(
            server.url, timeout=TIMEOUT, attempts=ATTEMPTS, attempt_delay=DELAY)
            + f"[bondha]\ndeadline = {DEADLINE}\n")
        config.chmod(0o600)
        for fault in scenario.faults:
            server.inject(fault)
        healer = (threading.Timer(scenario.heal_after, server.clear_faults)
                  if scenario.heal_after is not None else None)
        started = time.monotonic()
        if healer:
            healer.start()
        code = runner(server, config)
        seconds = time.monotonic() - started
        if healer:
            healer.cancel()
        server.clear_faults()
        stats = server.stats()
        return Outcome(converged(server), code, seconds,
                       stats.requests_by_method.get("PATCH", 0), len(stats.writes),
                       server.address_report().overlap_moments)


def main() -> int:
    os.environ["BONDHA_SYSLOG"] = "0"
    user = example_fixture().users[0]
    runners: dict[str, Callable[[StandInServer, Path], int]] = {
        "old": lambda server, _config: old_script(server.url, user.email, user.password),
        "bondha": lambda _server, config: bondha_notify(config),
    }
    rows: list[dict[str, Any]] = []
    print("| scenario | run | converged | exit | wall s | PATCH sent | writes applied "
          "| overlap moments |")
    print("|---|---|---|---|---|---|---|---|")
    for scenario in SCENARIOS:
        for name, runner in runners.items():
            with tempfile.TemporaryDirectory() as tmp:
                os.environ["BONDHA_STATE_DIR"] = str(Path(tmp) / "state")
                outcome = run(scenario, runner, Path(tmp))
            rows.append({"scenario": scenario.name, "run": name, **attrs.asdict(outcome)})
            print(f"| {scenario.name} | {name} | {'yes' if outcome.converged else 'NO'} | "
                  f"{outcome.exit_code} | {outcome.seconds:.2f} | {outcome.patches} | "
                  f"{outcome.writes} | {outcome.overlaps} |", flush=True)
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
