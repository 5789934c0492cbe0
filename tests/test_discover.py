"""bondha discover: pairing by address, the [bond] section, and --write editing the file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from bondha.config import load_api_settings, load_config, parse_config
from bondha.config.rewrite import replace_section, write_with_backup
from bondha.discover import address_matches, discover, parse_kinds
from bondha.errors import ConfigError
from bondha.model import Kind, ObjectRef, RoutingObject
from bondha.survey import config_text
from bondha.testing import StandInServer
from tests.conftest import bondha, write_config


def obj(bond: int, kind: Kind, oid: int, enabled: bool, address: str | None) -> RoutingObject:
    return RoutingObject(ObjectRef(bond, kind, oid), enabled, address)


C, R, N = Kind.CONNECTED_IP, Kind.ROUTE, Kind.CPE_NAT_IP
OBJECTS = [
    obj(1, C, 1, True, "203.0.113.1/30"), obj(3, C, 4, False, "203.0.113.1/30"),
    obj(1, C, 2, True, "192.168.66.1/30"), obj(3, C, 5, True, "192.168.66.2/30"),
    obj(1, R, 7, True, "198.51.100.0/24"), obj(3, R, 8, True, "198.51.100.0/24"),
    obj(1, N, 10, False, "203.0.113.9/32"), obj(3, N, 11, False, "203.0.113.9/32"),
    obj(1, R, 20, True, "10.1.0.0/16"), obj(1, R, 21, False, "10.1.0.0/16"),
    obj(3, R, 22, False, "10.1.0.0/16"), obj(3, C, 30, True, None),
    obj(5, C, 3, True, "203.0.113.1/30"),  # another bond: never looked at
]


def test_pairs_by_address_and_says_why_the_rest_does_not_pair() -> None:
    found = discover(1, 3, OBJECTS)
    assert [(r.kind, r.address, r.master[0].ref.id, r.backup[0].ref.id) for r in found.pairs] == [
        (C, "203.0.113.1/30", 1, 4), (R, "198.51.100.0/24", 7, 8), (N, "203.0.113.9/32", 10, 11)]
    reasons = {(u.address): u.reason for u in found.unpaired}
    assert reasons == {
        "192.168.66.1/30": "only on bond 1 (id 2): no partner to float to",
        "192.168.66.2/30": "only on bond 3 (id 5): no partner to float to",
        None: "the server reports no address for it",
        "10.1.0.0/16": "2 times on bond 1 (ids 20, 21): which one floats is ambiguous",
    }
    assert found.warnings() == [
        "route 198.51.100.0/24 is enabled on both bonds right now (overlap)",
        "CPE NAT IP 203.0.113.9/32 is enabled on neither bond right now (dark)"]


def test_section_loads_as_the_discovered_pair_ids_in_pair_order() -> None:
    found = discover(3, 1, OBJECTS)  # the master may have the larger id
    section = found.bond_section()
    assert "master_bond_id = 3\nmaster_connected_ip_ids = 4\n" in section
    config = parse_config("[bondingadmin]\nhost = x.example\nuser = u\npasswd = p\n" + section)
    assert config.pair == found.pair()
    # The whole printed output is INI: the report is comments.
    assert parse_config("[bondingadmin]\nhost = x.example\nuser = u\npasswd = p\n"
                        + found.render()).pair == found.pair()


def test_kinds_include_exclude() -> None:
    assert parse_kinds("routes, cpe_nat_ip") == (R, N)
    with pytest.raises(ValueError, match="unknown kind 'vlan'"):
        parse_kinds("vlan")
    assert address_matches("203.0.113.1/30", "203.0.113.1")
    assert not address_matches("203.0.113.1/30", "203.0.113.1/32")
    found = discover(1, 3, OBJECTS, kinds=(C, R), exclude=("198.51.100.0/24",),
                     include=("203.0.113.1", "198.51.100.0/24", "10.9.9.9"))
    assert [r.address for r in found.pairs] == ["203.0.113.1/30"]
    left = {(u.kind, u.address): u.reason for u in found.left_out}
    assert left[R, "198.51.100.0/24"] == "--exclude 198.51.100.0/24"
    assert left[N, "203.0.113.9/32"] == "kind not chosen (--kinds)"
    assert left[C, "192.168.66.1/30"] == "not in --include"
    assert "--include 10.9.9.9 matches no object of bonds 1 and 3" in found.warnings()


CONFIG = """\
# swap-active-bond.conf, kept by hand
[bondingadmin]
host = bonding.example.net  ; not a comment: configparser keeps it
user = ha@example.net
passwd = secret

; the pair
[bond]
# ids from the web UI
master_bond_id = 1
master_route_ids = 99,
    98
backup_bond_id = 3

# tuning, below the pair
[bondha]
pool_size = 4
"""


def test_replace_section_keeps_every_other_line_and_the_comments() -> None:
    new = replace_section(CONFIG, "bond", "[bond]\nmaster_bond_id = 1\nbackup_bond_id = 3\n")
    assert new == CONFIG.replace(
        "master_bond_id = 1\nmaster_route_ids = 99,\n    98\n"
        "backup_bond_id = 3\n", "master_bond_id = 1\nbackup_bond_id = 3\n")
    appended = replace_section("[bondingadmin]\nhost = x", "bond", "[bond]\nmaster_bond_id = 1")
    assert appended == "[bondingadmin]\nhost = x\n\n[bond]\nmaster_bond_id = 1\n"
    crlf = replace_section(CONFIG.replace("\n", "\r\n"), "bond", "[bond]\nx = 1\n")
    assert "\r\n[bond]\r\n# ids from the web UI\r\nx = 1\r\n\r\n# tuning" in crlf
    with pytest.raises(ValueError, match="appears 2 times"):
        replace_section(CONFIG + "[bond]\n", "bond", "[bond]\n")


def test_write_with_backup_is_0600_and_keeps_the_old_file(tmp_path: Path) -> None:
    path = write_config(tmp_path / "swap-active-bond.conf", CONFIG)
    path.chmod(0o644)
    backup = write_with_backup(path, "new text\n")
    assert path.read_text() == "new text\n"
    assert backup is not None
    assert backup.read_text() == CONFIG
    for written in (path, backup):
        assert stat.S_IMODE(written.stat().st_mode) == 0o600
    second = write_with_backup(path, "newer\n")  # same second: a new name, nothing overwritten
    assert second is not None
    assert second != backup
    assert second.read_text() == "new text\n"
    assert sorted(os.listdir(tmp_path)) == sorted([path.name, backup.name, second.name])


def test_write_refuses_a_file_that_would_not_load(tmp_path: Path) -> None:
    found = discover(1, 3, OBJECTS)
    broken = CONFIG.replace("pool_size = 4", "pool_size = many")
    with pytest.raises(ConfigError, match="not written") as caught:
        config_text(found, broken)
    assert any("pool_size" in problem for problem in caught.value.problems)
    with pytest.raises(ConfigError, match="no address to float"):
        config_text(discover(1, 3, OBJECTS, kinds=(N,), exclude=("203.0.113.9",)), CONFIG)


def test_load_api_settings_needs_only_bondingadmin(tmp_path: Path) -> None:
    admin = "[bondingadmin]\nhost = bonding.example.net\nuser = u\npasswd = p\n"
    path = write_config(tmp_path / "c.conf", admin)  # no [bond] at all
    assert load_api_settings(path).base_url == "https://bonding.example.net"
    write_config(path, admin + "[bond]\nmaster_bond_id = one\n")
    assert load_api_settings(path).user == "u"
    write_config(path, admin.replace("user = u\n", "") + "[bond]\n")
    with pytest.raises(ConfigError, match=r"\[bondingadmin\] user: required option is missing"):
        load_api_settings(path)


def test_discover_command_writes_the_config(server: StandInServer, config_path: Path) -> None:
    # A broken [bond] (wrong ids) is what discover is for: only [bondingadmin] must be right.
    text = config_path.read_text().replace("master_route_ids = 7", "master_route_ids = 70")
    text = "# kept comment\n" + text + "\n[bondha]\n# kept too\npool_size = 4\n"
    write_config(config_path, text)
    out = bondha("discover", "--master-bond", "1", "--backup-bond", "3", config=config_path)
    assert out.returncode == 0, out.stderr
    assert "only on bond 1 (id 2)" in out.stdout
    assert "master_route_ids = 7\n" in out.stdout
    assert config_path.read_text() == text  # printed only

    out = bondha("--json", "discover", "--master-bond", "1", "--backup-bond", "3",
                 "--exclude", "203.0.113.9", "--write", config=config_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["schema"] == "bondha.discover/1"
    assert data["written"]["path"] == str(config_path)
    assert Path(data["written"]["backup"]).read_text() == text
    new = config_path.read_text()
    assert new.startswith("# kept comment\n")
    assert "# kept too\npool_size = 4\n" in new
    assert "--exclude 203.0.113.9" in new
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    pair = load_config(config_path).pair
    assert (pair.master.route_ids, pair.backup.route_ids) == ((7,), (8,))
    assert pair.master.cpe_nat_ip_ids == ()
    assert bondha("check", config=config_path).returncode == 0
    assert len(server.stats().writes) == 0


@pytest.mark.parametrize(("args", "code", "culprit"), [
    (("--master-bond", "1", "--backup-bond", "1"), 2, "must differ"),
    (("--master-bond", "1", "--backup-bond", "9"), 3, "bond 9"),
    (("--master-bond", "1", "--backup-bond", "3", "--kinds", "vlan"), 2, "unknown kind"),
    (("--master-bond", "1", "--backup-bond", "3", "--exclude", "nope"), 2, "not an IP"),
])
def test_discover_bad_arguments(server: StandInServer, config_path: Path,
                                args: tuple[str, ...], code: int, culprit: str) -> None:
    out = bondha("discover", *args, config=config_path)
    assert out.returncode == code, out.stderr
    assert culprit in out.stderr
    assert "Traceback" not in out.stderr
