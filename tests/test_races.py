"""keepalived's races on one node: the state directory serialises runs and the newest event wins."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import attrs
import pytest

from bondha.config import Config
from bondha.errors import StateError, Superseded
from bondha.keepalived.events import parse_notify_args
from bondha.node.statedir import StateDir, state_dir_path
from bondha.node.transition import notify
from bondha.result import Result
from bondha.testing import Fault, StandInServer
from tests.conftest import bondha, wait_for, write_config
from tests.helpers import active_bonds

# -- the state directory on its own --------------------------------------------------------

def test_state_dir_precedence(tmp_path: Path) -> None:
    assert state_dir_path(None, {}) == Path("/run/bondha")
    assert state_dir_path(tmp_path, {}) == tmp_path
    assert state_dir_path(tmp_path, {"BONDHA_STATE_DIR": "/elsewhere"}) == Path("/elsewhere")


def test_tickets_are_sequenced_and_a_newer_one_supersedes(state_dir: Path) -> None:
    state = StateDir(state_dir).ensure()
    first = state.take_ticket("INSTANCE VI_1 MASTER 10")
    guard = state.guard(first)
    guard()  # still the newest: no error
    second = state.take_ticket("INSTANCE VI_1 BACKUP 10")
    assert (first.seq, second.seq) == (1, 2)
    with pytest.raises(Superseded, match=r"superseded by event 2 \(INSTANCE VI_1 BACKUP 10\)"):
        guard()
    assert state.current() == second
    assert StateDir(state_dir).is_current(second)


def test_a_waiting_run_gives_up_when_superseded(state_dir: Path) -> None:
    state = StateDir(state_dir).ensure()
    old = state.take_ticket("INSTANCE VI_1 MASTER 10")
    with state.hold(old, timeout=5):
        waiting = state.take_ticket("INSTANCE VI_1 MASTER 10")
        newest: list[int] = []
        timer = threading.Timer(0.2, lambda: newest.append(
            state.take_ticket("INSTANCE VI_1 BACKUP 10").seq))
        timer.start()
        with pytest.raises(Superseded), state.hold(waiting, timeout=5):
            pass  # pragma: no cover - never reached
        timer.join()
    assert newest == [3]


def test_a_stuck_holder_is_reported(state_dir: Path) -> None:
    state = StateDir(state_dir).ensure()
    ticket = state.take_ticket("INSTANCE VI_1 MASTER 10")
    with state.hold(ticket, timeout=5), pytest.raises(StateError, match="too long"), \
            StateDir(state_dir).hold(ticket, timeout=0.1):
        pass  # pragma: no cover - never reached


def test_state_dir_others_may_write_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "open"
    path.mkdir(mode=0o777)
    path.chmod(0o777)
    with pytest.raises(StateError, match="writable by no one else"):
        StateDir(path).ensure()


def test_garbled_event_record_is_a_clear_error(state_dir: Path) -> None:
    state = StateDir(state_dir).ensure()
    state.record_path.write_text("{not json")
    with pytest.raises(StateError, match="not an event record"):
        state.take_ticket("INSTANCE VI_1 MASTER 10")


# -- overlapping notify runs ----------------------------------------------------------------

def test_slow_master_run_overtaken_by_backup_stops_writing(server: StandInServer,
                                                           config_path: Path) -> None:
    """keepalived: MASTER (the server is failing, so the run retries), then BACKUP."""
    text = config_path.read_text() + "[bondha]\ndeadline = 20\n"
    write_config(config_path, text)
    server.inject(Fault(method="PATCH", path=r"/bonds/1/", status=503, body="<html>busy</html>"))
    master = subprocess.Popen(
        [sys.executable, "-m", "bondha", "notify", "INSTANCE", "VI_1", "MASTER", "9"],
        env={**_env(config_path)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: server.stats().requests_by_method.get("PATCH", 0) >= 3,
                 "the MASTER run to start retrying")
        backup = bondha("notify", "INSTANCE", "VI_1", "BACKUP", "9", config=config_path)
        assert backup.returncode == 0, backup.stderr
        time.sleep(0.3)  # a request already on the wire may still land
        patches_at_backup = server.stats().requests_by_method["PATCH"]
        _, err = master.communicate(timeout=30)
    finally:
        master.kill()
    assert master.returncode == 0, err
    assert "superseded by event 2 (INSTANCE VI_1 BACKUP 9)" in err
    assert server.stats().requests_by_method["PATCH"] == patches_at_backup
    assert server.address_report().overlap_moments == 0
    assert active_bonds(server) == {1}  # its disables never landed, so nothing moved


def _env(config_path: Path) -> dict[str, str]:
    return {**os.environ, "BONDHA_CONFIG": str(config_path), "BONDHA_SYSLOG": "0"}


@pytest.mark.parametrize("last", ["MASTER 10", "MASTER 9"])
def test_twenty_flapping_events_end_in_the_last_events_state(config: Config, last: str) -> None:
    """20 overlapping runs, each asking for the other bond; the last one must win, and no
    moment may have an address enabled on both bonds (measured by the server)."""
    with StandInServer(latency=0.004) as server:
        cfg = attrs.evolve(config, api=attrs.evolve(config.api, base_url=server.url))
        other = "MASTER 9" if last == "MASTER 10" else "MASTER 10"
        events = [other if i % 2 == 0 else last for i in range(20)]
        state = StateDir(state_dir_path(None))
        results: list[Result | None] = []
        threads = []
        for number, text in enumerate(events, start=1):
            event = parse_notify_args(["INSTANCE", "VI_1", *text.split()])
            thread = threading.Thread(target=lambda e=event: results.append(notify(cfg, e)))
            thread.start()
            threads.append(thread)
            wait_for(functools.partial(recorded, state, number), f"event {number} to be recorded")
        for thread in threads:
            thread.join(timeout=60)
        assert len(results) == 20
        assert active_bonds(server) == ({1} if last == "MASTER 10" else {3})
        assert server.address_report().overlap_moments == 0
        assert any(r is not None and r.superseded for r in results)  # the runs did overlap
        final = [r for r in results if r is not None and not r.superseded]
        assert final
        assert all(r.converged for r in final)


def recorded(state: StateDir, seq: int) -> bool:
    last = state.current()
    return last is not None and last.seq >= seq
