"""``bondha daemon``: keepalived's notify_fifo in, transitions and drift repairs out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bondha.model import Kind
from bondha.node.statedir import StateDir
from bondha.testing import Fault, Fixture, StandInServer
from tests.conftest import bondha, wait_for, write_config
from tests.helpers import INTERVAL, Node, active_bonds, node_config


@pytest.fixture
def node(server: StandInServer, fixture: Fixture, tmp_path: Path) -> Iterator[Node]:
    running = Node(node_config(tmp_path / "node.conf", server, fixture,
                               notify_fifo=tmp_path / "notify.fifo"))
    yield running
    running.close()


def test_a_transition_is_applied_at_once(server: StandInServer, node: Node) -> None:
    node.send('INSTANCE "VI_1" MASTER 9')
    wait_for(lambda: active_bonds(server) == {3}, "the failover")
    assert oct(node.daemon.fifo.stat().st_mode & 0o777) == oct(0o600)
    assert server.address_report().overlap_moments == 0


def test_drift_is_repaired_within_one_interval_and_a_converged_check_only_reads(
        server: StandInServer, node: Node) -> None:
    node.send('INSTANCE "VI_1" MASTER 10')
    wait_for(lambda: node.daemon.checks >= 1, "a first check")
    assert server.stats().writes == ()  # the master bond was active already
    server.set_enabled(1, Kind.ROUTE, 7, False)  # an operator's click in the web UI
    server.set_enabled(3, Kind.ROUTE, 8, True)
    checks = node.daemon.checks
    wait_for(lambda: active_bonds(server) == {1}, "the drift repair")
    assert node.daemon.checks <= checks + 1  # the first check after the drift repaired it
    assert [(w.bond_id, w.body["enabled"]) for w in server.stats().writes] == [
        (3, False), (1, True)]
    server.reset_stats()
    checks = node.daemon.checks
    wait_for(lambda: node.daemon.checks >= checks + 2, "two more checks")
    stats = server.stats()
    assert stats.requests_by_method.get("PATCH", 0) == 0
    assert stats.requests_by_method["GET"] > 0


def test_server_down_during_a_transition_converges_without_a_new_notify(
        server: StandInServer, node: Node) -> None:
    server.inject(Fault(drop=True))  # down: every connection reset
    node.send('INSTANCE "VI_1" MASTER 9')
    # The transition's deadline (2 s) passes with the server down.
    wait_for(lambda: server.stats().requests_by_method.get("GET", 0) >= 10, "failed tries")
    time.sleep(2.5)
    assert active_bonds(server) == {1}
    server.clear_faults()  # back up; keepalived says nothing more
    wait_for(lambda: active_bonds(server) == {3}, "the repair after the server came back")
    assert server.address_report().overlap_moments == 0


def test_backup_pauses_the_checks(server: StandInServer, node: Node) -> None:
    node.send('INSTANCE "VI_1" MASTER 10')
    wait_for(lambda: node.daemon.checks >= 1, "a first check")
    node.send('INSTANCE "VI_1" BACKUP 10')
    wait_for(lambda: node.daemon.role is None, "the BACKUP event")
    server.set_enabled(1, Kind.ROUTE, 7, False)  # the peer's business now
    checks = node.daemon.checks
    time.sleep(3 * INTERVAL)
    assert node.daemon.checks == checks
    assert server.stats().writes == ()


def test_split_brain_healed_is_repaired_within_one_interval(
        server: StandInServer, fixture: Fixture, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two nodes (two state directories, configs differing only there) and one server."""
    monkeypatch.delenv("BONDHA_STATE_DIR")
    nodes = [Node(node_config(tmp_path / f"{name}.conf", server, fixture,
                              state_dir=tmp_path / name,
                              notify_fifo=tmp_path / name / "notify.fifo"))
             for name in ("bonder-a", "bonder-b")]
    a, b = nodes
    try:
        a.send('INSTANCE "VI_1" MASTER 10')  # the link between them is down:
        b.send('INSTANCE "VI_1" MASTER 9')   # both believe they are MASTER
        wait_for(lambda: a.daemon.checks >= 2 and b.daemon.checks >= 2, "a fight")
        b.send('INSTANCE "VI_1" BACKUP 9')   # healed: a stays MASTER, gets no new line
        wait_for(lambda: b.daemon.role is None, "b to step down")
        time.sleep(INTERVAL)  # let a run that b had started stop
        for master, backup, kind in ((1, 4, Kind.CONNECTED_IP), (7, 8, Kind.ROUTE),
                                     (10, 11, Kind.CPE_NAT_IP)):
            server.set_enabled(1, kind, master, False)  # as b's last writes left them
            server.set_enabled(3, kind, backup, True)
        # a's next check (within one interval) takes the addresses back.
        wait_for(lambda: active_bonds(server) == {1}, "the repair", timeout=INTERVAL + 10)
        checks = a.daemon.checks
        wait_for(lambda: a.daemon.checks >= checks + 2, "two more checks")
        assert active_bonds(server) == {1}
        assert StateDir(tmp_path / "bonder-a").current() is not None
        assert StateDir(tmp_path / "bonder-b").current() is not None
    finally:
        for running in nodes:
            running.close()


# -- the process: signals, malformed lines, set-up errors -----------------------------------

def test_daemon_process_lines_signals_and_reload(server: StandInServer, config_path: Path,
                                                 tmp_path: Path) -> None:
    fifo = tmp_path / "keepalived.fifo"
    base = config_path.read_text()
    write_config(config_path,
                 base + f"[bondha]\ninstances = VI_1\nreconcile_interval = {INTERVAL}\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "bondha", "--config", str(config_path), "daemon", "--fifo",
         str(fifo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "BONDHA_SYSLOG": "0"})
    try:
        wait_for(fifo.exists, "the FIFO")
        for line in ("garbage", 'INSTANCE "VI_2" MASTER 9', 'GROUP "G1" MASTER 9',
                     'INSTANCE "VI_1 MASTER', "INSTANCE \"VI_1\" MASTER 9"):
            with fifo.open("w") as writer:  # a writer that closes after each line
                writer.write(line + "\n")
        wait_for(lambda: active_bonds(server) == {3}, "the one good line")
        write_config(config_path, base + "[bondha]\ninstances = VI_2\n")
        process.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        write_config(config_path, base + "[bondha]\ninstances = ,\n")
        process.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        with fifo.open("w") as writer:
            writer.write('INSTANCE "VI_2" MASTER 10\n')
        wait_for(lambda: active_bonds(server) == {1}, "VI_2 accepted after the reload")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "notify_fifo line 'garbage'" in err
    assert "instance VI_2 is not in [bondha] instances (VI_1): skipped" in err
    assert "GROUP G1 is not a VRRP instance: skipped" in err
    assert "No closing quotation" in err
    assert "configuration reloaded" in err
    assert "reload failed: keeping the running configuration" in err
    assert "daemon stopped (SIGTERM received)" in err
    assert "Traceback" not in err
    assert StateDir(tmp_path / "state").current().seq == 2  # type: ignore[union-attr]


def test_daemon_without_a_fifo_is_a_usage_error(config_path: Path) -> None:
    out = bondha("daemon", config=config_path)
    assert out.returncode == 2
    assert "pass --fifo PATH or set [bondha] notify_fifo" in out.stderr


def test_daemon_refuses_a_fifo_path_that_is_a_file(config_path: Path, tmp_path: Path) -> None:
    (tmp_path / "not-a-fifo").write_text("")
    out = bondha("daemon", "--fifo", str(tmp_path / "not-a-fifo"), config=config_path)
    assert out.returncode == 1
    assert "exists and is not a FIFO" in out.stderr


def test_restarted_daemon_resumes_as_master(server: StandInServer, fixture: Fixture,
                                            tmp_path: Path) -> None:
    config = node_config(tmp_path / "node.conf", server, fixture,
                         notify_fifo=tmp_path / "notify.fifo")
    first = Node(config)
    first.send('INSTANCE "VI_1" MASTER 9')
    wait_for(lambda: active_bonds(server) == {3}, "the failover")
    first.close()
    server.set_enabled(3, Kind.ROUTE, 8, False)  # drift while no daemon ran
    second = Node(config)
    try:
        wait_for(lambda: active_bonds(server) == {3}, "the repair after the restart")
    finally:
        second.close()


def test_daemon_logs_a_readable_password_file_and_still_fails_over(
        server: StandInServer, fixture: Fixture, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    path = node_config(tmp_path / "loose.conf", server, fixture,
                       notify_fifo=tmp_path / "notify.fifo")
    path.chmod(0o644)  # as the old how-to's set-up may have left it
    running = Node(path)
    try:
        running.send('INSTANCE "VI_1" MASTER 9')
        wait_for(lambda: active_bonds(server) == {3}, "the failover despite the file mode")
    finally:
        running.close()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(str(path) in m and "chmod" in m for m in errors), errors
