"""The stand-in of the bonding software: what it puts on the interface, when, and the hooks
around it in the vendor's order (add then ``start``; ``stop`` then remove)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from bondha.model import Kind
from bondha.testing import StandInServer, example_fixture
from bondha.testing.bonding import (
    BondingStandIn,
    ConnectedIp,
    hook_environment,
    hooks_for,
    read_account,
)

RECORDER = """#!/bin/sh
echo "hook $(basename "$0") $1 ID=$ID BOND_ID=$BOND_ID IP=$IP NETMASK=$NETMASK \
NETWORK=$NETWORK INTERFACE=$INTERFACE AGG_ROUTING=$AGG_ROUTING" >> {log}
"""


@pytest.fixture
def server() -> Iterator[StandInServer]:
    with StandInServer(example_fixture(), page_size=1) as running:  # every page is followed
        yield running


def hooks(tmp_path: Path, layout: dict[str, Sequence[str]]) -> tuple[Path, Path]:
    log = tmp_path / "log"
    log.touch()
    root = tmp_path / "connectedip.d"
    for folder, names in layout.items():
        (root / folder).mkdir(parents=True)
        for name in names:
            hook = root / folder / name
            hook.write_text(RECORDER.format(log=log))
            hook.chmod(0o755)
    return root, log


def standin(server: StandInServer, bond: int, hooks_dir: Path, log: Path,
            push_delay: float = 0.0) -> BondingStandIn:
    fixture = server.fixture
    user = next(u for u in fixture.users if u.can_write and u.bonds is None)

    def ip(args: Sequence[str]) -> None:
        with log.open("a") as stream:
            stream.write("ip " + " ".join(args) + "\n")

    return BondingStandIn(f"{server.url}/api/v3/", user.email, user.password, bond, "eth9",
                          hooks_dir, push_delay=push_delay, ip_command=ip,
                          events=log.parent / "events.jsonl")


def set_enabled(server: StandInServer, bond: int, object_id: int, enabled: bool) -> None:
    request = urllib.request.Request(
        f"{server.url}/_standin/objects/{bond}/connected_ips/{object_id}", method="POST",
        data=json.dumps({"enabled": enabled}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200


def test_start_puts_the_enabled_ips_on_and_runs_start_after_each_add(
        server: StandInServer, tmp_path: Path) -> None:
    root, log = hooks(tmp_path, {"all": ["b-second", "a-first"], "2": ["private"],
                                 "default": ["fallback"]})
    bonding = standin(server, 1, root, log)
    assert bonding.observe(0.0)
    bonding.apply_due(0.0)
    lines = log.read_text().splitlines()
    assert lines == [
        "ip addr add 203.0.113.1/30 dev eth9",
        "hook a-first start ID=1 BOND_ID=1 IP=203.0.113.1 NETMASK=255.255.255.252 "
        "NETWORK=203.0.113.0 INTERFACE=eth9 AGG_ROUTING=auto",
        "hook b-second start ID=1 BOND_ID=1 IP=203.0.113.1 NETMASK=255.255.255.252 "
        "NETWORK=203.0.113.0 INTERFACE=eth9 AGG_ROUTING=auto",
        "hook fallback start ID=1 BOND_ID=1 IP=203.0.113.1 NETMASK=255.255.255.252 "
        "NETWORK=203.0.113.0 INTERFACE=eth9 AGG_ROUTING=auto",
        "ip addr add 192.168.66.1/30 dev eth9",
        "hook a-first start ID=2 BOND_ID=1 IP=192.168.66.1 NETMASK=255.255.255.252 "
        "NETWORK=192.168.66.0 INTERFACE=eth9 AGG_ROUTING=auto",
        "hook b-second start ID=2 BOND_ID=1 IP=192.168.66.1 NETMASK=255.255.255.252 "
        "NETWORK=192.168.66.0 INTERFACE=eth9 AGG_ROUTING=auto",
        "hook private start ID=2 BOND_ID=1 IP=192.168.66.1 NETMASK=255.255.255.252 "
        "NETWORK=192.168.66.0 INTERFACE=eth9 AGG_ROUTING=auto",
    ]
    runs = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [(r["hook"], r["action"], r["id"], r["code"]) for r in runs] == [
        ("a-first", "start", 1, 0), ("b-second", "start", 1, 0), ("fallback", "start", 1, 0),
        ("a-first", "start", 2, 0), ("b-second", "start", 2, 0), ("private", "start", 2, 0)]


def test_a_disable_runs_stop_before_the_removal_after_the_push_delay(
        server: StandInServer, tmp_path: Path) -> None:
    root, log = hooks(tmp_path, {"all": ["rec"]})
    bonding = standin(server, 1, root, log, push_delay=2.0)
    bonding.observe(0.0)
    bonding.apply_due(0.0)  # the initial configuration takes no push delay
    assert set(bonding.held) == {1, 2}
    log.write_text("")
    set_enabled(server, 1, 1, False)
    bonding.observe(10.0)
    bonding.apply_due(11.9)
    assert log.read_text() == "", "applied before the push delay"
    bonding.apply_due(12.0)
    assert log.read_text().splitlines() == [
        "hook rec stop ID=1 BOND_ID=1 IP=203.0.113.1 NETMASK=255.255.255.252 "
        "NETWORK=203.0.113.0 INTERFACE=eth9 AGG_ROUTING=auto",
        "ip addr del 203.0.113.1/30 dev eth9",
    ]
    assert set(bonding.held) == {2}


def test_the_other_bond_gets_the_ip_when_enabled_and_shut_down_removes_all(
        server: StandInServer, tmp_path: Path) -> None:
    root, log = hooks(tmp_path, {"all": ["rec"]})
    backup = standin(server, 3, root, log)
    backup.observe(0.0)
    backup.apply_due(0.0)
    assert set(backup.held) == {5}, "disabled connected IP 4 stays off"
    set_enabled(server, 3, 4, True)
    backup.observe(1.0)
    backup.apply_due(1.0)
    assert set(backup.held) == {4, 5}
    log.write_text("")
    backup.shut_down()
    assert backup.held == {}
    assert [line.split(" IP=")[0] if line.startswith("hook") else line
            for line in log.read_text().splitlines()] == [
        "hook rec stop ID=5 BOND_ID=3", "ip addr del 192.168.66.2/30 dev eth9",
        "hook rec stop ID=4 BOND_ID=3", "ip addr del 203.0.113.1/30 dev eth9"]


def test_an_unreachable_server_changes_nothing(tmp_path: Path) -> None:
    root, log = hooks(tmp_path, {"all": ["rec"]})
    bonding = BondingStandIn("http://127.0.0.1:9/api/v3/", "u", "p", 1, "eth9", root)
    assert not bonding.observe(0.0)
    bonding.apply_due(100.0)
    assert bonding.held == {}
    assert log.read_text() == ""


def test_hook_folders_and_environment_follow_the_vendor(tmp_path: Path) -> None:
    root, _ = hooks(tmp_path, {"all": ["x"], "default": ["d"], "7": ["own"]})
    assert [p.name for p in hooks_for(root, 7)] == ["x", "own"]
    assert [p.name for p in hooks_for(root, 8)] == ["x", "d"]
    (root / "all" / "x").chmod(0o644)
    assert [p.name for p in hooks_for(root, 8)] == ["d"], "only executables run"
    v6 = ConnectedIp.from_json({"id": 9, "ip": "2001:db8::1/64", "enabled": True,
                                "agg_routing": "never"})
    assert hook_environment(4, v6, "eth1") == {
        "ID": "9", "BOND_ID": "4", "IP": "2001:db8::1", "NETMASK": "64",
        "NETWORK": "2001:db8::", "INTERFACE": "eth1", "AGG_ROUTING": "never"}


def test_the_account_comes_from_bondingadmin_as_bondha_reads_it(server: StandInServer,
                                                                tmp_path: Path) -> None:
    """The config a bonder already has: the stand-in reads the same server and account from
    it, and reads the bond through them."""
    config = tmp_path / "swap-active-bond.conf"
    config.write_text(server.fixture.config_text(server.url))
    account = read_account(config)
    assert account.api_root == f"{server.url}/api/v3/"
    assert account.ssl_context is None
    reader = BondingStandIn(account.api_root, account.user, account.password, 1, "eth9",
                            tmp_path)
    served = {o.id for o in server.objects() if o.bond_id == 1 and o.kind is Kind.CONNECTED_IP}
    assert served
    assert {c.id for c in reader.read()} == served
    (tmp_path / "password").write_text(account.password + "\n")
    config.write_text(config.read_text().replace(f"passwd = {account.password}",
                                                 "passwd_file = password"))
    assert read_account(config).password == account.password
    bare = tmp_path / "bare.conf"
    bare.write_text("[bondingadmin]\nhost = bonding.example.net\nuser = u\npasswd = p\n"
                    "api_version = v4\nverify_ssl = false\n")
    remote = read_account(bare)
    assert remote.api_root == "https://bonding.example.net/api/v4/"
    assert remote.ssl_context is not None
    assert not remote.ssl_context.check_hostname
    bare.write_text("[bondingadmin]\nhost = bonding.example.net\n")
    with pytest.raises(ValueError, match="needs host, user and passwd"):
        read_account(bare)

