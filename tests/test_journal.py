"""The node's records: the hook and the daemon journal every transition and reconcile;
``bondha status --local`` shows them and ``bondha status`` knows this node's keepalived state."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bondha.model import Kind
from bondha.node.history import LOCAL_SCHEMA
from bondha.node.journal import RECORD_SCHEMA, Journal
from bondha.node.statedir import StateDir
from bondha.testing import Fault, Fixture, StandInServer
from tests.conftest import bondha, wait_for
from tests.helpers import Node, node_config


def local(config: Path, *args: str) -> dict[str, Any]:
    out = bondha("--json", "status", "--local", *args, config=config)
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    assert data["schema"] == LOCAL_SCHEMA
    return data


def test_a_failover_by_the_hook_is_recorded_and_shown_without_the_server(
        server: StandInServer, config_path: Path) -> None:
    assert bondha("notify", "INSTANCE", "VI_1", "MASTER", "9", config=config_path).returncode == 0
    writes = len(server.stats().writes)
    server.stop()  # --local reads no server
    data = local(config_path)
    transition, reconcile = data["records"]
    assert transition["type"] == "transition"
    assert (transition["event"], transition["role"], transition["source"]) == (
        "INSTANCE VI_1 MASTER 9", "backup", "hook")
    assert reconcile["schema"] == RECORD_SCHEMA
    assert (reconcile["result"], reconcile["role"], reconcile["active_bond_id"]) == (
        "converged", "backup", 3)
    assert reconcile["writes"] == writes == 6
    assert (reconcile["out_of_place"], reconcile["overlap"], reconcile["dark"]) == (0, 0, 0)
    assert reconcile["event_seq"] == transition["event_seq"] == data["last_event"]["seq"]
    assert data["keepalived"]["expected_active"] == "backup"
    text = bondha("status", "--local", config=config_path)
    assert text.returncode == 0, text.stderr
    assert "event 1: bond 3 (backup) converged, 6 writes" in text.stdout
    assert all(len(line) <= 80 for line in text.stdout.splitlines()), text.stdout


def test_status_flags_the_other_bond_from_the_recorded_event_without_flags(
        server: StandInServer, config_path: Path) -> None:
    assert bondha("notify", "INSTANCE", "VI_1", "MASTER", "10", config=config_path).returncode == 0
    server.set_enabled(1, Kind.ROUTE, 7, False)  # someone fails one address over by hand
    server.set_enabled(3, Kind.ROUTE, 8, True)
    out = bondha("--json", "status", config=config_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["keepalived"]["state"] == "MASTER"
    assert "event 1" in data["keepalived"]["source"]
    assert data["counts"]["wrong_bond"] == 1
    assert data["counts"]["ok"] == 2


def test_failed_and_refused_runs_are_recorded_with_what_failed(
        server: StandInServer, config_path: Path) -> None:
    config_path.write_text(config_path.read_text() + "[bondha]\ndeadline = 1\n")
    server.inject(Fault(method="PATCH", path="/routes/8/", status=503))
    failed = bondha("notify", "INSTANCE", "VI_1", "MASTER", "9", config=config_path)
    assert failed.returncode == 1
    server.clear_faults()
    server.inject(Fault(status=401, body='{"detail": "Invalid username/password."}'))
    refused = bondha("notify", "INSTANCE", "VI_1", "MASTER", "10", config=config_path)
    assert refused.returncode == 3
    records = [r for r in local(config_path)["records"] if r["type"] == "reconcile"]
    assert [r["result"] for r in records] == ["failed", "refused"]
    assert records[0]["write_failures"] >= 1
    assert any("route 8 on bond 3" in line for line in records[0]["failed"])
    assert records[0]["out_of_place"] == 1  # the route's enable, read back
    assert records[0]["error"].startswith("bond 3 (backup) is not fully active")
    assert records[1]["writes"] == 0
    assert "401" in records[1]["error"] or "password" in records[1]["error"]


def test_overlapping_hook_processes_each_leave_one_whole_record(config_path: Path,
                                                                state_dir: Path) -> None:
    events = [("BACKUP", "9"), ("FAULT", "9"), ("STOP", "9"), ("BACKUP", "10")] * 2
    procs = [subprocess.Popen([sys.executable, "-m", "bondha", "--config", str(config_path),
                               "notify", "INSTANCE", "VI_1", state, priority],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for state, priority in events]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    lines = (state_dir / "journal.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line whole
    assert sorted(r["event_seq"] for r in records) == list(range(1, len(events) + 1))
    totals = json.loads((state_dir / "metrics.json").read_text())
    assert sum(totals["transitions"].values()) == len(events)


def test_the_journal_is_bounded_and_keeps_the_newest(state_dir: Path) -> None:
    journal = Journal(StateDir(state_dir).ensure(), max_bytes=2000)
    for n in range(200):
        journal.append({"schema": RECORD_SCHEMA, "type": "note", "n": n, "pad": "x" * 40})
    sizes = [p.stat().st_size for p in state_dir.glob("journal.jsonl*")]
    assert len(sizes) == 2
    assert all(size <= 2000 for size in sizes)
    kept = [r["n"] for r in journal.read()]
    assert kept == list(range(200 - len(kept), 200))  # the newest, oldest first
    assert len(kept) > 20


def test_a_journal_that_cannot_be_written_never_fails_the_failover(
        server: StandInServer, config_path: Path, state_dir: Path) -> None:
    StateDir(state_dir).ensure()
    (state_dir / "journal.jsonl").mkdir()  # appending to it fails
    out = bondha("notify", "INSTANCE", "VI_1", "MASTER", "9", config=config_path)
    assert out.returncode == 0, out.stderr
    assert "cannot append a record" in out.stderr
    assert "not recorded (the failover goes on)" in out.stderr


def test_an_unreadable_state_dir_leaves_status_without_a_keepalived_state(
        server: StandInServer, config_path: Path, tmp_path: Path) -> None:
    garbled = tmp_path / "garbled"
    StateDir(garbled).ensure()
    (garbled / "event").write_text("{not json")
    out = bondha("--json", "status", config=config_path,
                 env={"BONDHA_STATE_DIR": str(garbled)})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["keepalived"] is None
    assert "this node's keepalived state is unknown" in out.stderr


def test_no_records_yet_is_said_plainly(config_path: Path) -> None:
    out = bondha("status", "--local", config=config_path)
    assert out.returncode == 0, out.stderr
    assert "no records yet" in " ".join(out.stdout.split())


@pytest.fixture
def daemon_node(server: StandInServer, fixture: Fixture,
                tmp_path: Path) -> Iterator[tuple[Node, Path]]:
    config = node_config(tmp_path / "node.conf", server, fixture,
                         notify_fifo=tmp_path / "notify.fifo")
    running = Node(config)
    yield running, config
    running.close()


def test_the_daemon_records_events_and_its_drift_checks(
        daemon_node: tuple[Node, Path]) -> None:
    node, config = daemon_node
    node.send('INSTANCE "VI_1" MASTER 10')
    wait_for(lambda: node.daemon.checks >= 1, "a drift check")
    records = local(config, "--last", "50")["records"]
    assert records[0]["type"] == "transition"
    assert records[0]["source"] == "daemon"
    reconciles = [r for r in records if r["type"] == "reconcile"]
    assert [r["trigger"] for r in reconciles[:2]] == ["event", "check"]
    assert all(r["source"] == "daemon" and r["result"] == "converged" for r in reconciles)
