"""A fleet of pairs on one stand-in server, and ansible-playbook runs against it.

Shared by tests/test_ansible.py and bench/ansible_fleet.py: the collection in
contrib/ansible is made importable as ``bondha.ha`` through an ``ansible_collections/``
tree in a temporary directory, and every run gets its own Ansible home and temp dirs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from bondha.model import Kind, Role
from bondha.testing import Fixture, RoutingRecord, User

ROOT = Path(__file__).resolve().parent.parent
COLLECTION = ROOT / "contrib" / "ansible"
PLAYBOOKS = COLLECTION / "playbooks"
BIN = Path(sys.executable).parent
USER = "fleet@example.net"
PASSWORD = "fleet horse"
WRONG_PASSWORD = "not the password"


@attrs.frozen
class FleetPair:
    """One pair of the fleet: its bonds, where its addresses start, where they should go."""

    number: int
    start: str  # "master", "backup" or "both" (every address enabled on both bonds)
    desired: Role

    @property
    def name(self) -> str:
        return f"pair{self.number:02d}"

    @property
    def master_bond(self) -> int:
        return 2 * self.number - 1

    @property
    def backup_bond(self) -> int:
        return 2 * self.number

    def bond(self, role: Role) -> int:
        return self.master_bond if role is Role.MASTER else self.backup_bond


def fleet(count: int) -> tuple[FleetPair, ...]:
    """``count`` pairs: a fifth start on the backup bond, a seventh with every address on
    both bonds, the rest on the master; every third is to be moved to its backup bond."""
    pairs = []
    for number in range(1, count + 1):
        start = "both" if number % 7 == 0 else "backup" if number % 5 == 0 else "master"
        desired = Role.BACKUP if number % 3 == 0 else Role.MASTER
        pairs.append(FleetPair(number, start, desired))
    return tuple(pairs)


def _addresses(number: int) -> dict[Kind, str]:
    return {Kind.CONNECTED_IP: f"10.{number}.0.1/30", Kind.ROUTE: f"172.16.{number}.0/24",
            Kind.CPE_NAT_IP: f"10.{number}.1.9/32"}


def fleet_fixture(pairs: tuple[FleetPair, ...]) -> Fixture:
    """One object of each kind on each of the 2 x len(pairs) bonds; ids unique server-wide."""
    records = []
    next_id = 1
    for pair in pairs:
        for role in Role:
            bond = pair.bond(role)
            enabled = pair.start in ("both", role.value)
            for kind, address in _addresses(pair.number).items():
                records.append(RoutingRecord(bond, kind, next_id, enabled, address))
                next_id += 1
    return Fixture(records, (User(USER, PASSWORD),))


def bond_section(fixture: Fixture, pair: FleetPair) -> dict[str, Any]:
    """The pair's ``[bond]`` section as the modules' ``bond`` parameter."""
    section: dict[str, Any] = {"master_bond_id": pair.master_bond,
                               "backup_bond_id": pair.backup_bond}
    for role in Role:
        for kind in Kind:
            section[f"{role.value}_{kind.config_stem}_ids"] = [
                r.id for r in fixture.objects if r.bond_id == pair.bond(role) and r.kind is kind]
    return section


def needs_move(fixture: Fixture, pair: FleetPair) -> bool:
    """Whether any object of the pair differs from its desired state in the fixture."""
    active = pair.bond(pair.desired)
    return any(r.enabled != (r.bond_id == active) for r in fixture.objects
               if r.bond_id in (pair.master_bond, pair.backup_bond))


def write_inventory(directory: Path, fixture: Fixture, pairs: tuple[FleetPair, ...],
                    url: str, *, wrong_password: frozenset[int] = frozenset()) -> Path:
    """An inventory of the pairs on the local connection.

    Odd pairs pass their config as module parameters (password as a variable, as from a
    vault); even pairs have a config file each. Pairs in ``wrong_password`` get a wrong one.
    """
    configs = directory / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    hosts: dict[str, Any] = {}
    for pair in pairs:
        password = WRONG_PASSWORD if pair.number in wrong_password else PASSWORD
        host: dict[str, Any] = {"bondha_active": pair.desired.value}
        bond = bond_section(fixture, pair)
        if pair.number % 2:
            host["bondha_password"] = password
            host["bondha_api"] = {"host": url, "user": USER, "attempt_delay": 0.05}
            host["bondha_bond"] = bond
        else:
            path = configs / f"{pair.name}.conf"
            lines = ["[bondingadmin]", f"host = {url}", f"user = {USER}",
                     f"passwd = {password}", "attempt_delay = 0.05", "[bond]"]
            lines += [f"{key} = {', '.join(map(str, value)) if isinstance(value, list) else value}"
                      for key, value in bond.items() if value != []]
            path.write_text("\n".join(lines) + "\n")
            path.chmod(0o400)
            host["bondha_config"] = str(path)
        hosts[pair.name] = host
    inventory = {
        "pairs": {
            "hosts": hosts,
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
            },
        }
    }
    # JSON is YAML: the yaml inventory plugin reads it.
    path = directory / "inventory.yml"
    path.write_text(json.dumps(inventory, indent=1))
    return path


_RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                    re.MULTILINE)


@attrs.frozen
class HostRecap:
    ok: int
    changed: int
    unreachable: int
    failed: int


@attrs.frozen
class PlaybookRun:
    returncode: int
    stdout: str
    stderr: str
    recap: Mapping[str, HostRecap]
    results: Mapping[str, dict[str, Any]]  # each host's last task result (host_results)

    def changed(self) -> set[str]:
        return {host for host, r in self.recap.items() if r.changed}

    def failed(self) -> set[str]:
        return {host for host, r in self.recap.items() if r.failed or r.unreachable}


def collections_tree(directory: Path) -> Path:
    """``directory/ansible_collections/bondha/ha`` pointing at contrib/ansible."""
    namespace = directory / "ansible_collections" / "bondha"
    namespace.mkdir(parents=True, exist_ok=True)
    link = namespace / "ha"
    if not link.exists():
        link.symlink_to(COLLECTION, target_is_directory=True)
    return directory


def ansible_env(work: Path, *, forks: int = 10, extra: Mapping[str, str] | None = None
                ) -> dict[str, str]:
    collections_tree(work / "collections")
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(work / "collections"),
        "ANSIBLE_HOME": str(work / "home"),
        "ANSIBLE_LOCAL_TEMP": str(work / "tmp-local"),
        "ANSIBLE_REMOTE_TEMP": str(work / "tmp-remote"),
        "ANSIBLE_FORKS": str(forks),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PIPELINING": "1",  # no module file written per task: faster on local
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_CALLBACK_PLUGINS": str(Path(__file__).parent / "ansible_callbacks"),
        "ANSIBLE_CALLBACKS_ENABLED": "host_results",
        "BONDHA_TEST_RESULTS_DIR": str(work / "results"),
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "BONDHA_SYSLOG": "0",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **(extra or {}),
    })
    return env


def run_playbook(work: Path, playbook: Path | str, inventory: Path, *args: str,
                 forks: int = 10, env: Mapping[str, str] | None = None,
                 timeout: float = 300) -> PlaybookRun:
    """ansible-playbook as its own process; the recap and each host's last result parsed."""
    results_dir = work / "results"
    if results_dir.exists():
        for stale in results_dir.iterdir():
            stale.unlink()
    command = [str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          check=False, env=ansible_env(work, forks=forks, extra=env))
    recap = {m[1]: HostRecap(int(m[2]), int(m[3]), int(m[4]), int(m[5]))
             for m in _RECAP.finditer(done.stdout.split("PLAY RECAP", 1)[-1])}
    results = ({p.name: json.loads(p.read_text()) for p in results_dir.iterdir()}
               if results_dir.exists() else {})
    return PlaybookRun(done.returncode, done.stdout, done.stderr, recap, results)
