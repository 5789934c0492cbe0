"""The bondha.ha.bonder role, run by ansible-playbook into a temporary root.

Two bonders of one pair in one inventory, run in parallel: the master with the notify hook,
the backup with bondha daemon and its unit. The single-file build is the real one
(scripts/build-zipapp). No user is created and no systemd unit is touched
(``bondha_manage_user``/``bondha_manage_services`` false): the handlers still show which
ones were notified.

keepalived's script security wants the hook and every directory above it owned by root,
and ``bondha check --keepalived`` checks just that: the test needs root (as CI runs).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bondha.testing import StandInServer, example_fixture
from tests.ansible_fleet import PLAYBOOKS, ROOT, PlaybookRun, run_playbook

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="keepalived's script security checks need "
                       "root-owned files: run as root (CI does)"),
    pytest.mark.timeout(600),  # whole ansible-playbook runs on a shared 2-core machine
]

FIXTURE = example_fixture()
USER = FIXTURE.users[0]
# An unprivileged account that exists everywhere, as the hook's user.
NOBODY = pwd.getpwnam("nobody")
NOBODY_GROUP = grp.getgrgid(NOBODY.pw_gid).gr_name


@pytest.fixture(scope="module")
def server() -> Iterator[StandInServer]:
    with StandInServer(FIXTURE) as running:
        yield running


def write_inventory(path: Path, root: Path, pyz: Path, server: StandInServer, hook: Path,
                    **overrides: Any) -> Path:
    import json

    pair = FIXTURE.pair()
    bond: dict[str, Any] = {"master_bond_id": pair.master.bond_id,
                            "backup_bond_id": pair.backup.bond_id}
    for role_name, side in (("master", pair.master), ("backup", pair.backup)):
        bond[f"{role_name}_connected_ip_ids"] = list(side.connected_ip_ids)
        bond[f"{role_name}_route_ids"] = list(side.route_ids)
        bond[f"{role_name}_cpe_nat_ip_ids"] = list(side.cpe_nat_ip_ids)
    common: dict[str, Any] = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "bondha_pyz_src": str(pyz),
        "bondha_manage_user": False,
        "bondha_manage_services": False,
        "bondha_user": NOBODY.pw_name,
        "bondha_group": NOBODY_GROUP,
        "bondha_api": {"host": server.url, "user": USER.email, "attempt_delay": 0.05},
        "bondha_password": USER.password,
        "bondha_bond": bond,
        "bondha_keepalived_interface": "eth1",
        "bondha_keepalived_auth_pass": "horsebat",
        "bondha_connectedip_hooks": [{"src": str(hook), "dir": "5"}],
        **overrides,
    }
    hosts = {
        "master": {"bondha_bonder": "master", "bondha_mode": "hook",
                   "bondha_root": str(root / "master"),
                   "bondha_keepalived_src": "192.168.66.1",
                   "bondha_keepalived_peer": "192.168.66.2"},
        "backup": {"bondha_bonder": "backup", "bondha_mode": "daemon",
                   "bondha_root": str(root / "backup"),
                   "bondha_keepalived_src": "192.168.66.2",
                   "bondha_keepalived_peer": "192.168.66.1"},
    }
    path.write_text(json.dumps({"bonders": {"hosts": hosts, "vars": common}}))
    return path


def handlers(run: PlaybookRun) -> list[str]:
    """The handlers that were notified, as ``host: name`` (they show even when skipped)."""
    names = re.findall(r"^RUNNING HANDLER \[bondha\.ha\.bonder : ([^\]]+)\]", run.stdout,
                       re.MULTILINE)
    return sorted(set(names))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def bonders(tmp_path: Path, pyz: Path, server: StandInServer) -> Iterator[tuple[Path, Path]]:
    # Not under tmp_path: the hook's user must be able to reach its files, as on a bonder.
    root = Path(tempfile.mkdtemp(prefix="bondha-role-"))
    root.chmod(0o755)
    hook = tmp_path / "announce"
    hook.write_text("#!/bin/sh\nexit 0\n")
    inventory = write_inventory(tmp_path / "inventory.yml", root, pyz, server, hook)
    yield root, inventory
    shutil.rmtree(root)


def test_role_sets_up_both_bonders_idempotently_and_checks_before_it_replaces(
        tmp_path: Path, bonders: tuple[Path, Path], pyz: Path, server: StandInServer) -> None:
    root, inventory = bonders
    first = run_playbook(tmp_path, PLAYBOOKS / "bonder.yml", inventory, forks=2)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert first.recap["master"].changed > 0
    assert first.recap["backup"].changed > 0

    master, backup = root / "master", root / "backup"
    config = master / "etc/bonding/swap-active-bond.conf"
    assert mode(config) == 0o400
    assert config.stat().st_uid == NOBODY.pw_uid
    assert f"passwd = {USER.password}" in config.read_text()
    # keepalived.conf: rendered by bondha, the notify line runs the hook with this config.
    keepalived = (master / "etc/keepalived/keepalived.conf").read_text()
    assert "priority 10" in keepalived
    assert "unicast_peer {\n        192.168.66.2" in keepalived
    assert f'notify "{master}/usr/local/bin/swap-active-bond --config {config}"' in keepalived
    assert f"script_user {NOBODY.pw_name}" in keepalived
    assert (master / "etc/tmpfiles.d/bondha.conf").read_text() == (
        f"d {master}/run/bondha 0700 {NOBODY.pw_name} {NOBODY_GROUP} -\n")
    assert (master / "run/bondha").stat().st_uid == NOBODY.pw_uid
    assert os.readlink(master / "usr/local/bin/bondha") == str(
        master / "usr/local/lib/bondha/bondha.pyz")
    assert mode(master / "etc/bonding/connectedip.d/5/announce") == 0o755
    assert not (master / "etc/systemd/system/bondha.service").exists()
    # The backup bonder: the daemon, its unit from contrib/, keepalived writing to its FIFO.
    backup_conf = backup / "etc/bonding/swap-active-bond.conf"
    assert f"notify_fifo = {backup}/run/bondha/notify.fifo" in backup_conf.read_text()
    backup_keepalived = (backup / "etc/keepalived/keepalived.conf").read_text()
    assert "priority 9" in backup_keepalived
    assert f"vrrp_notify_fifo {backup}/run/bondha/notify.fifo" in backup_keepalived
    assert "notify \"" not in backup_keepalived
    unit = (backup / "etc/systemd/system/bondha.service").read_text().splitlines()
    shipped = (ROOT / "contrib/bondha.service").read_text().splitlines()
    adapted = {
        "ExecStart=": f"ExecStart={backup}/usr/local/bin/bondha --config {backup_conf} daemon "
                      f"--fifo {backup}/run/bondha/notify.fifo",
        "User=": f"User={NOBODY.pw_name}",
        "Group=": f"Group={NOBODY_GROUP}",
    }
    assert len(unit) == len(shipped)
    for mine, theirs in zip(unit, shipped):
        key = next((k for k in adapted if theirs.startswith(k)), None)
        if key is not None:
            assert mine == adapted[key]
        elif theirs.startswith("ReadWritePaths=/run/bondha"):
            assert mine == theirs.replace("=/run/bondha", f"={backup}/run/bondha", 1)
        else:
            assert mine == theirs
    assert not (backup / "usr/local/bin/swap-active-bond").exists()
    assert not (backup / "etc/tmpfiles.d/bondha.conf").exists()
    assert handlers(first) == ["Reload bondha daemon", "Reload keepalived",
                               "Reload systemd", "Restart bondha daemon"]

    # The installed hook works, run as keepalived would: as the script_user, with the
    # notify line's arguments and the event. MASTER on the master bonder reconciles.
    server.set_enabled(1, "connected_ips", 1, False)
    notify = re.search(r'notify "([^"]+)"', keepalived)
    assert notify is not None
    event = subprocess.run([*notify[1].split(), "INSTANCE", "VI_1", "MASTER", "10"],
                           capture_output=True, text=True, timeout=60, check=False,
                           user=NOBODY.pw_uid, group=NOBODY.pw_gid, extra_groups=[],
                           env={"PATH": os.environ["PATH"], "BONDHA_SYSLOG": "0"})
    assert event.returncode == 0, event.stderr
    assert server.get_object(1, "connected_ips", 1)["enabled"] is True

    # Again, as the rollout playbook (one bonder at a time, checked and audited after each):
    # nothing changes, no handler runs, and the audit ran the installed build.
    again = run_playbook(tmp_path, PLAYBOOKS / "rollout.yml", inventory, forks=2)
    assert again.returncode == 0, again.stdout[-3000:]
    assert {host: r.changed for host, r in again.recap.items()} == {"master": 0, "backup": 0}
    assert handlers(again) == []
    assert again.results["backup"]["healthy"] is True
    assert again.results["backup"]["bondha"]["path"].startswith(
        str(backup / "usr/local/lib/bondha/bondha.pyz"))

    keepalived_path = master / "etc/keepalived/keepalived.conf"
    before = config.read_text(), keepalived_path.read_text()

    # A wrong password: bondha check refuses the new config (exit 3), the old one stays, and
    # nothing after it runs: keepalived.conf keeps its old auth_pass, no handler runs.
    wrong = run_playbook(tmp_path, PLAYBOOKS / "bonder.yml", inventory, "--limit", "master",
                         "-e", '{"bondha_password": "wrong", "bondha_keepalived_auth_pass": '
                         '"newpass"}')
    assert wrong.failed() == {"master"}
    assert "refused" in wrong.stdout
    assert "wrong" not in config.read_text()
    assert (config.read_text(), keepalived_path.read_text()) == before
    assert handlers(wrong) == []

    # Only auth_pass changes: keepalived.conf is rewritten and only keepalived is reloaded.
    new_pass = run_playbook(tmp_path, PLAYBOOKS / "bonder.yml", inventory, "--limit", "master",
                            "-e", '{"bondha_keepalived_auth_pass": "newpass"}')
    assert new_pass.returncode == 0, new_pass.stdout[-3000:]
    assert {host: r.changed for host, r in new_pass.recap.items()} == {"master": 1}
    assert handlers(new_pass) == ["Reload keepalived"]
    assert "auth_pass newpass" in keepalived_path.read_text()
    assert config.read_text() == before[0]
