"""An operator's first hour (issue 13): each mistake gives its error and its exit code.

A scripted walk-through of the README and docs/operators.md against the stand-in server run
as its own process (``python -m bondha.testing``), steered over its ``/_standin/`` endpoints;
bondha runs as a separate process too, as an operator would run it.
"""

from __future__ import annotations

import json
import os
import pty
import pwd
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import bondha
from tests.conftest import bondha as run_bondha
from tests.conftest import run, wait_for, write_config
from tests.helpers import user_exists

NOBODY = "nobody"


class StandIn:
    """The stand-in server process and the config it wrote for its example pair."""

    def __init__(self, tmp: Path) -> None:
        ready, self.config = tmp / "ready", tmp / "swap-active-bond.conf"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bondha.testing", "--ready-file", str(ready),
             "--write-config", str(self.config), "--config-option", "attempt_delay=0.01",
             "--config-option", "timeout=5"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(ready.exists, "the stand-in server to listen")
        self.url = ready.read_text().strip()
        self.text = self.config.read_text() + "[bondha]\ndeadline = 3\n"
        self.initial = self.control("GET", "objects")

    def restore(self) -> None:
        """Every object enabled as at the start (the master bond active), stats cleared."""
        now = {o["id"]: o["enabled"] for o in self.control("GET", "objects")}
        for record in self.initial:
            if now[record["id"]] != record["enabled"]:
                self.control("POST", f"objects/{record['bond_id']}/{record['kind']}/"
                             f"{record['id']}", {"enabled": record["enabled"]})
        self.control("POST", "reset")
        self.control("DELETE", "faults")

    def control(self, method: str, name: str, body: Any = None) -> Any:
        response = httpx.request(method, f"{self.url}/_standin/{name}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def enabled(self, object_id: int) -> bool:
        found = [o for o in self.control("GET", "objects") if o["id"] == object_id]
        return bool(found[0]["enabled"])

    def writes(self) -> int:
        return len(self.control("GET", "stats")["writes"])

    def close(self) -> None:
        self.process.terminate()
        self.process.communicate(timeout=30)  # and close its stderr pipe


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    server = StandIn(tmp_path_factory.mktemp("stand-in"))
    yield server
    server.close()


@pytest.fixture
def standin(stand_in: StandIn) -> StandIn:
    stand_in.restore()
    return stand_in


def config_with(standin: StandIn, tmp_path: Path, *edits: tuple[str, str],
                extra: str = "") -> Path:
    text = standin.text
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    return write_config(tmp_path / "swap-active-bond.conf", text + extra)


def bondha_cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return run_bondha("--config", str(config), *args)


# -- 1. a one-letter typo makes an outage --------------------------------------------------


def test_a_misspelt_option_is_an_error_and_nothing_is_written(standin: StandIn,
                                                              tmp_path: Path) -> None:
    config = config_with(standin, tmp_path, ("master_route_ids", "master_routes_ids"))
    checked = bondha_cli("check", config=config)
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert "[bond] master_routes_ids: unknown option (did you mean master_route_ids?)" \
        in checked.stderr
    applied = bondha_cli("apply", "--active", "master", config=config)
    assert applied.returncode == 2
    assert standin.writes() == 0


def test_an_unpaired_object_fails_check_and_is_left_alone(standin: StandIn,
                                                          tmp_path: Path) -> None:
    # The route's master copy missing from [bond]: route 8 (backup) has no partner.
    config = config_with(standin, tmp_path, ("master_route_ids = 7\n", ""))
    checked = bondha_cli("check", config=config)
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert "error: route 198.51.100.0/24 exists only on the backup bond (8)" in checked.stdout
    assert "check failed: 1 error" in checked.stdout
    for active in ("master", "backup"):
        applied = bondha_cli("apply", "--active", active, config=config)
        assert "left alone: route 8 on bond 3" in applied.stdout
        assert not standin.enabled(8)  # never enabled, never disabled: left as it was
    # With the master active the route's address is dark: never "converged".
    assert applied.returncode == 1
    again = bondha_cli("apply", "--active", "master", config=config)
    assert again.returncode == 1, again.stdout
    assert "route 198.51.100.0/24: DARK: enabled on no bond" in again.stdout
    assert "NOT converged" in again.stdout
    assert "converged and verified" not in again.stdout


def test_floating_an_unpaired_object_is_an_explicit_opt_in(standin: StandIn,
                                                           tmp_path: Path) -> None:
    config = config_with(standin, tmp_path, ("master_route_ids = 7\n", ""),
                         extra="float_unpaired = true\n")
    checked = bondha_cli("check", config=config)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "warning: route 198.51.100.0/24 exists only on the backup bond" in checked.stdout
    planned = json.loads(bondha_cli("--json", "plan", "--active", "backup", config=config).stdout)
    fields = ("bond_id", "kind", "id", "enabled", "address")  # each change also says "after"
    assert {"bond_id": 3, "kind": "routes", "id": 8, "enabled": True,
            "address": "198.51.100.0/24"} in [{k: c[k] for k in fields}
                                              for c in planned["changes"]]
    assert planned["unpaired"] == []


def test_the_vrrp_link_listed_as_floating_is_caught(standin: StandIn, tmp_path: Path) -> None:
    # The how-to lists two connected IPs per bond: here the second is the private /30.
    config = config_with(standin, tmp_path,
                         ("master_connected_ip_ids = 1", "master_connected_ip_ids = 1, 2"),
                         ("backup_connected_ip_ids = 4", "backup_connected_ip_ids = 4, 5"))
    checked = bondha_cli("check", config=config)
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert ("connected IPs 2 on bond 1 (192.168.66.1/30) and 5 on bond 3 (192.168.66.2/30) "
            "are two hosts of one network 192.168.66.0/30") in checked.stdout
    rendered = bondha_cli("keepalived-config", "--role", "master", "--interface", "eth1",
                          "--src", "192.168.66.1", "--peer", "192.168.66.2", "--auth-pass",
                          "horsebat", config=config)
    keepalived = tmp_path / "keepalived.conf"
    keepalived.write_text(rendered.stdout)
    with_keepalived = bondha_cli("check", "--keepalived", str(keepalived), config=config)
    assert with_keepalived.returncode == 2
    assert ("connected IP 2 on bond 1 (192.168.66.1/30) is listed as floating, but keepalived "
            "talks VRRP over it") in with_keepalived.stdout
    failover = bondha_cli("apply", "--active", "backup", config=config)
    assert "left alone: connected IP 2 on bond 1" in failover.stdout
    assert standin.enabled(2)  # the private link stays up on both bonders
    assert standin.enabled(5)


# -- 3. the command line and check ----------------------------------------------------------


def test_global_options_after_the_command(standin: StandIn, tmp_path: Path) -> None:
    config = config_with(standin, tmp_path)
    out = run_bondha("status", "--json", "--config", str(config))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["schema"] == "bondha.status/2"


def test_version() -> None:
    out = run_bondha("--version")
    assert out.returncode == 0
    assert out.stdout == f"bondha {bondha.__version__}\n"


def test_a_closed_stdout_ends_quietly(standin: StandIn, tmp_path: Path) -> None:
    config = config_with(standin, tmp_path)
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -1` that already left
    try:
        out = subprocess.run([sys.executable, "-m", "bondha", "--config", str(config), "check"],
                             stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60,
                             check=False)
    finally:
        os.close(write_end)
    assert out.returncode == 141
    assert out.stderr == ""


def test_discover_takes_the_bonds_from_the_config(standin: StandIn, tmp_path: Path) -> None:
    config = config_with(standin, tmp_path)
    out = bondha_cli("discover", config=config)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("# Bonds 1 (master) and 3 (backup): 3 floating addresses paired")
    missing = config_with(standin, tmp_path, ("backup_bond_id = 3\n", ""))
    refused = bondha_cli("discover", config=missing)
    assert refused.returncode == 2
    assert "[bond] backup_bond_id: not set, and no --backup-bond given" in refused.stderr


def on_terminal(*args: str, config: Path) -> tuple[int, str]:
    """Run bondha with stdout and stderr on one pseudo-terminal, as an operator sees it."""
    controller, terminal = pty.openpty()
    env = {**os.environ, "BONDHA_SYSLOG": "0", "NO_COLOR": "1"}
    process = subprocess.Popen([sys.executable, "-m", "bondha", "--config", str(config), *args],
                               stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal,
                               env=env)
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    return process.wait(timeout=60), b"".join(chunks).decode()


def test_on_a_terminal_each_change_and_warning_shows_once(standin: StandIn,
                                                          tmp_path: Path) -> None:
    config = config_with(standin, tmp_path, extra="pool_size = 4\n[misc]\n")
    code, screen = on_terminal("apply", "--active", "backup", config=config)
    assert code == 0, screen
    assert screen.count("route 7 on bond 1") == 1, screen
    assert screen.count("route 8 on bond 3") == 1, screen
    code, screen = on_terminal("check", config=config)
    assert code == 0, screen
    assert screen.count("[misc]: unknown section, ignored") == 1, screen


def test_status_says_how_old_the_recorded_state_is(standin: StandIn, tmp_path: Path) -> None:
    config = config_with(standin, tmp_path)
    assert bondha_cli("notify", "INSTANCE", "VI_1", "BACKUP", "10", config=config).returncode == 0
    out = bondha_cli("status", config=config)
    assert out.returncode == 0, out.stderr
    assert re.search(r"event 1 at [0-9-]+ [0-9:]+, \d+ s ago", out.stdout.replace("\n", " ")), \
        out.stdout
    data = json.loads(bondha_cli("--json", "status", config=config).stdout)
    assert data["keepalived"]["age_seconds"] >= 0


def _hook(tmp_path: Path, interpreter: str) -> Path:
    hook = tmp_path / "hook"
    hook.write_text(f"#!{interpreter}\n")
    hook.chmod(0o755)
    return hook


def _keepalived_conf(tmp_path: Path, *, user: str | None, notify: str | None) -> Path:
    globals_ = "    enable_script_security\n" + (f"    script_user {user}\n" if user else "")
    fifo = "" if notify else "    vrrp_notify_fifo /run/bondha/notify.fifo\n"
    path = tmp_path / "keepalived.conf"
    path.write_text(
        f"global_defs {{\n{globals_}{fifo}}}\n"
        "vrrp_instance VI_1 {\n    state MASTER\n    interface eth1\n"
        "    virtual_router_id 2\n    priority 10\n    unicast_src_ip 192.168.66.1\n"
        "    unicast_peer {\n        192.168.66.2\n    }\n"
        "    authentication {\n        auth_type PASS\n        auth_pass horsebat\n    }\n"
        + (f'    notify "{notify}"\n' if notify else "") + "}\n")
    return path


def test_check_keepalived_flags_the_hook_interpreter_and_the_script_user(
        standin: StandIn, tmp_path: Path) -> None:
    config = config_with(standin, tmp_path)
    hook = _hook(tmp_path, "/nonexistent/bondha/bin/python")
    conf = _keepalived_conf(tmp_path, user="no-such-user-bondha", notify=str(hook))
    out = bondha_cli("check", "--keepalived", str(conf), config=config)
    assert out.returncode == 2, out.stdout
    assert (f"{hook}: its interpreter /nonexistent/bondha/bin/python (line 1, #!) does not "
            "exist") in out.stdout
    assert "script_user no-such-user-bondha names no user on this system" in out.stdout


@pytest.mark.skipif(not user_exists(NOBODY) or pwd.getpwnam(NOBODY).pw_uid == os.geteuid(),
                    reason="needs a user 'nobody' other than this one")
def test_check_keepalived_flags_a_script_user_that_cannot_read_the_config(
        standin: StandIn, tmp_path: Path) -> None:
    config = config_with(standin, tmp_path)  # mode 0600, this user's
    conf = _keepalived_conf(tmp_path, user=NOBODY, notify=None)
    out = bondha_cli("check", "--keepalived", str(conf), config=config)
    assert out.returncode == 2, out.stdout
    assert f"script_user {NOBODY} cannot read the bondha config {config}" in out.stdout
    assert "mode 0600" in out.stdout


def test_check_counts_the_keepalived_warnings(standin: StandIn, tmp_path: Path) -> None:
    config = config_with(standin, tmp_path)
    conf = _keepalived_conf(tmp_path, user=None, notify=None)  # no script_user: a warning
    out = bondha_cli("check", "--keepalived", str(conf), config=config)
    assert out.returncode == 0, out.stdout
    warned = sum(": warning: " in line or line.startswith("warning: ")
                 for line in out.stdout.splitlines())
    assert any(": warning: " in line for line in out.stdout.splitlines())
    assert out.stdout.rstrip().endswith(f"check passed with {warned} warnings"), out.stdout


@pytest.mark.skipif(os.geteuid() != 0 or not user_exists(NOBODY),
                    reason="root running the hook by hand, with a user 'nobody' to be")
def test_root_running_the_hook_by_hand_is_told_to_run_it_as_the_hook_user(
        standin: StandIn, tmp_path: Path, state_dir: Path) -> None:
    config = config_with(standin, tmp_path)
    state_dir.mkdir(mode=0o700)
    os.chown(state_dir, pwd.getpwnam(NOBODY).pw_uid, -1)
    hook = Path(__file__).resolve().parent.parent / "hooks" / "swap-active-bond"
    out = run(str(hook), "--config", str(config), "INSTANCE", "VI_1", "MASTER", "10")
    assert out.returncode == 2, out.stderr
    assert f"run this as that user, not as root: runuser -u {NOBODY} -- " in out.stderr
    assert standin.writes() == 0


# -- 3. messages ------------------------------------------------------------------------------


def test_an_unknown_bond_is_named_with_its_option(standin: StandIn, tmp_path: Path) -> None:
    config = config_with(standin, tmp_path, ("master_bond_id = 1", "master_bond_id = 2"))
    out = bondha_cli("check", config=config)
    assert out.returncode == 3
    assert ("bond 2 does not exist, or this account cannot see it: [bond] master_bond_id = 2 "
            "(the account sees bonds 1, 3, 5)") in out.stderr


def test_swapped_bond_ids_are_named_as_such(standin: StandIn, tmp_path: Path) -> None:
    config = config_with(standin, tmp_path, ("master_bond_id = 1", "master_bond_id = 9"),
                         ("backup_bond_id = 3", "backup_bond_id = 1"),
                         ("master_bond_id = 9", "master_bond_id = 3"))
    out = bondha_cli("plan", "--active", "master", config=config)
    assert out.returncode == 3
    assert "master_bond_id = 3 and backup_bond_id = 1 swapped?" in out.stderr


def test_password_gets_a_did_you_mean(standin: StandIn, tmp_path: Path) -> None:
    config = config_with(standin, tmp_path, ("passwd =", "password ="))
    out = bondha_cli("check", config=config)
    assert out.returncode == 2
    assert "[bondingadmin] password: unknown option (did you mean passwd?)" in out.stderr
    assert "correct horse" not in out.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_config_names_user_owner_and_mode(standin: StandIn,
                                                        tmp_path: Path) -> None:
    config = config_with(standin, tmp_path)
    config.chmod(0o000)
    out = bondha_cli("check", config=config)
    assert out.returncode == 2
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert f"permission denied (bondha runs as user {me}; the file belongs to {me}:" \
        in out.stderr
    assert "mode 0000" in out.stderr


def test_https_to_a_plain_http_server_fails_at_once(standin: StandIn, tmp_path: Path) -> None:
    plain = standin.url.removeprefix("http://")
    config = config_with(standin, tmp_path, (f"host = {standin.url}", f"host = {plain}"))
    out = bondha_cli("plan", "--active", "master", config=config)
    assert out.returncode == 1
    assert "TLS handshake with https://" in out.stderr
    assert f"set [bondingadmin] host = http://{plain}" in out.stderr
    assert "retrying" not in out.stderr


def test_the_retry_log_says_what_and_until_when(standin: StandIn, tmp_path: Path) -> None:
    config = config_with(standin, tmp_path)
    standin.control("POST", "faults", {"method": "PATCH", "status": 503, "count": 1})
    standin.control("POST", "faults", {"method": "GET", "status": 503, "count": 1})
    out = bondha_cli("apply", "--active", "backup", config=config)
    assert out.returncode == 0, out.stderr
    retries = [line for line in out.stderr.splitlines() if "retrying it in" in line]
    assert len(retries) == 2, out.stderr
    assert all("until the deadline" in line for line in retries)
    write = next(line for line in retries if line.startswith("bondha: WARNING: PATCH"))
    assert "(try 1 of 3)" in write
    assert "attempt" not in out.stderr


def test_check_against_a_server_without_options(standin: StandIn, tmp_path: Path) -> None:
    config = config_with(standin, tmp_path)
    for status in (501, 405):  # a server, or a proxy in front of it, that does not serve it
        standin.control("DELETE", "faults")
        standin.control("POST", "faults", {"method": "OPTIONS", "status": status})
        out = bondha_cli("check", config=config)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "warning: the server does not say whether the account may change 6 " \
            "configured objects" in out.stdout
        assert "retrying" not in out.stderr, status
