"""The command line and the keepalived hook as separate processes against the stand-in server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bondha.model import Kind
from bondha.testing import StandInServer
from tests.conftest import HOOK, bondha, run, write_config
from tests.helpers import active_bonds


def writes(server: StandInServer) -> int:
    return len(server.stats().writes)




def test_plan_json_lists_every_write_and_writes_nothing(server: StandInServer,
                                                        config_path: Path) -> None:
    out = bondha("--json", "plan", "--active", "backup", config=config_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["schema"] == "bondha.plan/1"
    assert {(c["bond_id"], c["kind"], c["id"], c["enabled"]) for c in data["changes"]} == {
        (1, "connected_ips", 1, False), (3, "connected_ips", 4, True),
        (1, "routes", 7, False), (3, "routes", 8, True),
        (1, "cpe_nat_ips", 10, False), (3, "cpe_nat_ips", 11, True)}
    assert writes(server) == 0


def test_apply_then_status(server: StandInServer, config_path: Path) -> None:
    out = bondha("apply", "--active", "backup", config=config_path)
    assert out.returncode == 0, out.stderr
    assert "converged and verified" in out.stdout
    assert active_bonds(server) == {3}
    status = bondha("--json", "status", config=config_path)
    assert status.returncode == 0
    data = json.loads(status.stdout)
    assert data["schema"] == "bondha.status/2"
    assert [(a["live_on"], a["verdict"]) for a in data["addresses"]] == [("backup", "ok")] * 3


def test_status_flags_overlap_and_gap(server: StandInServer, config_path: Path) -> None:
    server.set_enabled(3, Kind.ROUTE, 8, True)
    server.set_enabled(1, Kind.CPE_NAT_IP, 10, False)
    out = bondha("status", config=config_path)
    assert out.returncode == 0
    assert "OVERLAP" in out.stdout
    assert "DARK" in out.stdout
    assert "2 UNHEALTHY" in out.stdout


def test_check_passes_and_writes_nothing(server: StandInServer, config_path: Path) -> None:
    out = bondha("check", config=config_path)
    assert out.returncode == 0, out.stderr
    assert "check passed" in out.stdout
    assert writes(server) == 0


def test_check_warns_about_lists_of_different_length(server: StandInServer,
                                                     config_path: Path) -> None:
    # Issue 13: an address on one bond only was a warning (exit 0); a failover then made it
    # dark. It is now an error of check (exit 2); the different lengths stay a warning.
    text = config_path.read_text().replace("master_connected_ip_ids = 1",
                                           "master_connected_ip_ids = 1, 2")
    out = bondha("check", config=write_config(config_path, text))
    assert out.returncode == 2, out.stderr
    assert "error: connected IP 192.168.66.1/30 exists only on the master bond" in out.stdout
    assert "warning:" in out.stdout


@pytest.mark.parametrize(("edit", "code", "culprit"), [
    (("passwd = correct horse", "passwd = wrong horse"), 3, "ha@example.net"),
    (("backup_route_ids = 8", "backup_route_ids = 8, 99"), 3, "route 99 on bond 3"),
    (("master_route_ids = 7", "master_route_ids = seven"), 2, "master_route_ids"),
    (("master_bond_id = 1", "master_bond_id = 3"), 2, "master_bond_id"),
])
def test_bad_input_exit_codes(server: StandInServer, config_path: Path,
                              edit: tuple[str, str], code: int, culprit: str) -> None:
    text = config_path.read_text()
    assert edit[0] in text
    out = bondha("apply", "--active", "backup",
                 config=write_config(config_path, text.replace(*edit)))
    assert out.returncode == code
    assert culprit in out.stderr
    assert "Traceback" not in out.stderr
    assert writes(server) == 0


def test_missing_config_is_exit_2(tmp_path: Path) -> None:
    out = bondha("--config", str(tmp_path / "nope.conf"), "check")
    assert out.returncode == 2
    assert "nope.conf" in out.stderr


def test_unreachable_server_is_exit_1(config_path: Path, server: StandInServer) -> None:
    server.stop()
    # Faults a retry can fix are retried until the deadline: keep it short here.
    text = config_path.read_text().replace("attempts = 3", "attempts = 2")
    text += "[bondha]\ndeadline = 1\n"
    out = bondha("apply", "--active", "backup", config=write_config(config_path, text))
    assert out.returncode == 1
    assert "cannot reach" in out.stderr


@pytest.mark.parametrize(("state", "priority", "active"), [
    ("MASTER", "9", {3}), ("MASTER", "10", {1}), ("BACKUP", "9", {1}), ("FAULT", "10", {1}),
    ("STOP", "10", {1}),
])
@pytest.mark.parametrize("via", ["hook", "notify"])
def test_notify_and_hook_follow_keepalived(server: StandInServer, config_path: Path, via: str,
                                           state: str, priority: str, active: set[int]) -> None:
    args = ("INSTANCE", "VI_1", state, priority)
    out = run(str(HOOK), *args, config=config_path) if via == "hook" else bondha(
        "notify", *args, config=config_path)
    assert out.returncode == 0, out.stderr
    assert active_bonds(server) == active
    assert server.address_report().overlap_moments == 0


@pytest.mark.parametrize("args", [
    ("VI_1", "MASTER", "10"), ("INSTANCE", "VI_1", "PRIMARY", "10"),
    ("INSTANCE", "VI_1", "MASTER", "x"), ("INSTANCE", "VI_1", "MASTER", "10", "more"),
])
def test_hook_odd_arguments(server: StandInServer, config_path: Path,
                            args: tuple[str, ...]) -> None:
    out = run(str(HOOK), *args, config=config_path)
    assert out.returncode == 2
    assert "notify" in out.stderr
    assert "Traceback" not in out.stderr
    assert writes(server) == 0


def test_hook_with_broken_server_answer_never_tracebacks(server: StandInServer,
                                                         config_path: Path) -> None:
    from bondha.testing import Fault

    server.inject(Fault(status=200, body="<html>login page</html>",
                        headers={"Content-Type": "text/html"}))
    out = run(str(HOOK), "INSTANCE", "VI_1", "MASTER", "9", config=config_path)
    assert out.returncode == 1
    assert "HTML" in out.stderr
    assert "Traceback" not in out.stderr


def test_help_documents_exit_codes() -> None:
    out = bondha("--help")
    assert out.returncode == 0
    assert "refused before any write" in out.stdout
    assert "example" in bondha("apply", "--help").stdout


def test_demo_runs() -> None:
    out = bondha("demo")
    assert out.returncode == 0, out.stderr
    assert "failover" in out.stdout
    assert "overlap moments: 0" in out.stdout
