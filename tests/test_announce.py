"""Announcing a moved address: the frames, byte for byte against the RFC layouts, the
schedule, the config options and the connected IP hook's decisions.

The frames are parsed back here with the layouts written out field by field (RFC 826,
RFC 5227/5944 for gratuitous ARP; RFC 8200 and RFC 4861 section 4.4 for the neighbour
advertisement), not compared with a stored blob. Sending on a real interface is in
tests/e2e/test_announce.py.
"""

from __future__ import annotations

import ipaddress
import logging
import struct
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from bondha.config import HaSettings, parse_config
from bondha.errors import AnnounceError, ConfigError, StateDirError
from bondha.node.announce import (
    AddressState,
    ArpOp,
    PendingRepeat,
    Schedule,
    address_state,
    announce,
    announcement_frames,
    floating_connected_ip,
    format_mac,
    gratuitous_arp,
    parse_mac,
    run_connected_ip_hook,
    unsolicited_neighbour_advert,
)
from bondha.node.statedir import StateDir
from bondha.testing import example_fixture

MAC = bytes.fromhex("02005e100001")
V4 = ipaddress.IPv4Address("203.0.113.1")
V6 = ipaddress.IPv6Address("2001:db8:66::1")


def ethernet(frame: bytes) -> tuple[bytes, bytes, int, bytes]:
    dst, src, ethertype = struct.unpack("!6s6sH", frame[:14])
    return dst, src, ethertype, frame[14:]


def ones_complement_sum(data: bytes) -> int:
    data = data + b"\x00" * (len(data) % 2)
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return total


@pytest.mark.parametrize(("op", "target_mac"), [(ArpOp.REQUEST, bytes(6)), (ArpOp.REPLY, MAC)])
def test_gratuitous_arp_has_the_rfc_layout(op: ArpOp, target_mac: bytes) -> None:
    frame = gratuitous_arp(MAC, V4, op)
    dst, src, ethertype, arp = ethernet(frame)
    assert (dst, src, ethertype) == (b"\xff" * 6, MAC, 0x0806)
    assert len(frame) == 60, "padded to Ethernet's minimum frame (without FCS)"
    htype, ptype, hlen, plen, oper = struct.unpack("!HHBBH", arp[:8])
    assert (htype, ptype, hlen, plen) == (1, 0x0800, 6, 4)  # Ethernet, IPv4
    assert oper == {ArpOp.REQUEST: 1, ArpOp.REPLY: 2}[op]
    sha, spa, tha, tpa = arp[8:14], arp[14:18], arp[18:24], arp[24:28]
    assert sha == MAC
    assert ipaddress.IPv4Address(spa) == ipaddress.IPv4Address(tpa) == V4  # gratuitous
    assert tha == target_mac
    assert arp[28:] == bytes(len(arp) - 28)


def test_neighbour_advertisement_has_the_rfc_layout() -> None:
    frame = unsolicited_neighbour_advert(MAC, V6)
    dst, src, ethertype, packet = ethernet(frame)
    assert (dst, src, ethertype) == (bytes.fromhex("333300000001"), MAC, 0x86DD)
    first_word, payload_length, next_header, hop_limit = struct.unpack("!IHBB", packet[:8])
    source = ipaddress.IPv6Address(packet[8:24])
    destination = ipaddress.IPv6Address(packet[24:40])
    assert (first_word >> 28, first_word & 0x0FFFFFFF) == (6, 0)  # version, class and flow
    assert (next_header, hop_limit) == (58, 255)
    assert (source, destination) == (V6, ipaddress.IPv6Address("ff02::1"))
    icmp = packet[40:40 + payload_length]
    assert payload_length == len(icmp) == 32
    icmp_type, code, _checksum, flags = struct.unpack("!BBHI", icmp[:8])
    assert (icmp_type, code) == (136, 0)
    router, solicited, override = bool(flags >> 31), bool(flags >> 30 & 1), bool(flags >> 29 & 1)
    assert (router, solicited, override) == (False, False, True)
    assert flags & 0x1FFFFFFF == 0  # reserved
    assert ipaddress.IPv6Address(icmp[8:24]) == V6
    option_type, option_units = icmp[24], icmp[25]
    assert (option_type, option_units * 8) == (2, 8)  # target link-layer address, 8 bytes
    assert icmp[26:32] == MAC
    # The checksum covers the pseudo-header: the sum over it and the message is all ones.
    pseudo = packet[8:40] + struct.pack("!I", payload_length) + b"\x00\x00\x00" + bytes([58])
    assert ones_complement_sum(pseudo + icmp) == 0xFFFF


def test_checksum_catches_a_changed_byte() -> None:
    frame = bytearray(unsolicited_neighbour_advert(MAC, V6))
    frame[14 + 40 + 8] ^= 0x01  # one bit of the target address
    packet = bytes(frame[14:])
    pseudo = packet[8:40] + struct.pack("!I", 32) + b"\x00\x00\x00" + bytes([58])
    assert ones_complement_sum(pseudo + packet[40:72]) != 0xFFFF


def test_one_round_is_both_arp_forms_or_one_advertisement() -> None:
    v4 = announcement_frames(MAC, V4)
    assert [struct.unpack("!H", f[20:22])[0] for f in v4] == [1, 2]
    (v6,) = announcement_frames(MAC, V6)
    assert v6[12:14] == b"\x86\xdd"


def test_frames_follow_the_mac_and_the_address() -> None:
    other = parse_mac("02:00:5e:10:00:02")
    assert gratuitous_arp(other, V4, ArpOp.REQUEST)[6:12] == other
    assert gratuitous_arp(MAC, ipaddress.IPv4Address("198.51.100.7"), ArpOp.REPLY)[28:32] == \
        bytes([198, 51, 100, 7])
    with pytest.raises(ValueError, match="6 bytes"):
        gratuitous_arp(MAC[:5], V4, ArpOp.REQUEST)


def test_mac_text_round_trips_and_bad_text_is_named() -> None:
    assert format_mac(parse_mac("02:00:5E:10:00:01")) == "02:00:5e:10:00:01"
    for bad in ("02:00:5e:10:00", "02-00-5e-10-00-01", "zz:00:5e:10:00:01"):
        with pytest.raises(ValueError, match=repr(bad)):
            parse_mac(bad)


def test_schedule_is_a_burst_and_one_later_repeat() -> None:
    assert Schedule(3, 0.2, 5).offsets() == (0.0, 0.2, 0.4, 5.0, 5.2, 5.4)
    assert Schedule(1, 0.2, 0).offsets() == (0.0,)
    assert Schedule(0, 0.2, 5).offsets() == ()
    assert Schedule(2, 0, 0).offsets() == (0.0, 0.0)
    assert Schedule(3, 0.2, 5).describe() == "3 rounds 0.2 s apart, again after 5 s"
    assert Schedule.from_settings(HaSettings()) == Schedule(5, 0.2, 5.0)


IP_OUTPUT = """\
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0    inet 192.168.66.1/30 brd 192.168.66.3 scope global eth0\\       valid_lft forever
2: eth0    inet 203.0.113.1/30 scope global secondary eth0\\       valid_lft forever
2: eth0    inet6 2001:db8:66::1/64 scope global tentative \\       valid_lft forever
2: eth0    inet6 2001:db8:66::2/64 scope global dadfailed tentative \\       valid_lft forever
2: eth0    inet6 fe80::1/64 scope link \\       valid_lft forever preferred_lft forever
"""


def fake_ip(output: str) -> tuple[list[Sequence[str]], object]:
    calls: list[Sequence[str]] = []

    def run(args: Sequence[str]) -> str:
        calls.append(list(args))
        return output

    return calls, run


@pytest.mark.parametrize(("address", "state"), [
    ("203.0.113.1", AddressState.PRESENT),
    ("192.168.66.1", AddressState.PRESENT),
    ("203.0.113.2", AddressState.ABSENT),
    ("2001:db8:66::1", AddressState.TENTATIVE),
    ("2001:db8:66::2", AddressState.ABSENT),
    ("fe80::1", AddressState.PRESENT),
    ("127.0.0.1", AddressState.PRESENT),  # the command was asked for one device only
])
def test_address_state_reads_ip_addr_show(address: str, state: AddressState) -> None:
    calls, run = fake_ip(IP_OUTPUT)
    found = address_state("eth0", ipaddress.ip_address(address), ip_command=run)  # type: ignore[arg-type]
    assert found is state
    assert calls == [["-o", "addr", "show", "dev", "eth0"]]


def test_announce_refuses_an_address_that_is_not_on_the_interface() -> None:
    _, run = fake_ip(IP_OUTPUT)
    with pytest.raises(AnnounceError, match=r"203\.0\.113\.9: not on lo"):
        announce("lo", [ipaddress.IPv4Address("203.0.113.9")], Schedule(1, 0, 0),
                 ip_command=run)  # type: ignore[arg-type]


def test_announce_names_a_missing_interface() -> None:
    with pytest.raises(AnnounceError, match="interface bh-no-such0"):
        announce("bh-no-such0", [V4], Schedule(1, 0, 0))


def test_floating_connected_ip_is_one_of_the_pair() -> None:
    pair = example_fixture().pair()
    master = (pair.master.bond_id, pair.master.connected_ip_ids)
    backup = (pair.backup.bond_id, pair.backup.connected_ip_ids)
    (master_ip,), (backup_ip,) = pair.master.connected_ip_ids, pair.backup.connected_ip_ids
    assert floating_connected_ip(master, backup, pair.master.bond_id, master_ip)
    assert floating_connected_ip(master, backup, pair.backup.bond_id, backup_ip)
    assert not floating_connected_ip(master, backup, pair.backup.bond_id, master_ip)
    assert not floating_connected_ip(master, backup, 99, master_ip)


# --- [bondha] announce_* ----------------------------------------------------------------------


def config_with(section: str) -> str:
    return example_fixture().config_text("http://127.0.0.1:1") + "[bondha]\n" + section


def test_announce_options_default_and_parse() -> None:
    assert parse_config(config_with("")).ha.announce_count == 5
    ha = parse_config(config_with("announce_count = 3\nannounce_interval = 0.5\n"
                                  "announce_repeat_delay = 0\n")).ha
    assert (ha.announce_count, ha.announce_interval, ha.announce_repeat_delay) == (3, 0.5, 0)
    assert parse_config(config_with("announce_count = 0\n")).ha.announce_count == 0


@pytest.mark.parametrize(("line", "message"), [
    ("announce_count = 101", "announce_count = '101': must be 100 or less"),
    ("announce_count = -1", "announce_count = '-1': not a whole number from 0 (off) to 100"),
    ("announce_count = 2.5", "announce_count = '2.5': not a whole number"),
    ("announce_interval = 11", "announce_interval = '11': must be 10 seconds or less"),
    ("announce_interval = -0.1", "announce_interval = '-0.1': must be 0 seconds or more"),
    ("announce_repeat_delay = 601", "announce_repeat_delay = '601': must be 600 seconds or less"),
    ("announce_repeat_delay = soon", "announce_repeat_delay = 'soon': not a number of seconds"),
])
def test_bad_announce_options_are_named(line: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(config_with(line + "\n"))
    assert f"[bondha] {message}" in str(caught.value)


# --- the connected IP hook ------------------------------------------------------------------------


@pytest.fixture
def hook_env(tmp_path: Path) -> dict[str, str]:
    fixture = example_fixture()
    config = tmp_path / "swap-active-bond.conf"
    config.write_text(fixture.config_text("http://127.0.0.1:1"))
    pair = fixture.pair()
    return {"BONDHA_CONFIG": str(config), "BONDHA_SYSLOG": "0",
            "ID": str(pair.backup.connected_ip_ids[0]), "BOND_ID": str(pair.backup.bond_id),
            "IP": "203.0.113.1", "NETMASK": "255.255.255.252", "NETWORK": "203.0.113.0",
            "INTERFACE": "bh-no-such0", "AGG_ROUTING": "auto"}


@pytest.fixture
def hook_logs(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
              ) -> Callable[[list[str], dict[str, str]], str]:
    """Run the hook; its exit code must be 0 whatever happens; returns what it logged.

    The hook sets up the ``bondha`` logger as a front end does; it is put back afterwards,
    so that later tests' caplog still sees bondha's records."""
    monkeypatch.setenv("BONDHA_SYSLOG", "0")
    logger = logging.getLogger("bondha")
    monkeypatch.setattr(logger, "handlers", list(logger.handlers))
    monkeypatch.setattr(logger, "propagate", logger.propagate)
    monkeypatch.setattr(logger, "level", logger.level)

    def run(argv: list[str], env: dict[str, str]) -> str:
        capsys.readouterr()
        assert run_connected_ip_hook(argv, env) == 0
        captured = capsys.readouterr()
        assert captured.out == "", "a hook's stdout belongs to the bonding software"
        return captured.err

    return run


Hook = Callable[[list[str], dict[str, str]], str]


def test_hook_announces_a_floating_ip_and_logs_why_it_could_not(
        hook_logs: Hook, hook_env: dict[str, str]) -> None:
    logs = hook_logs(["start"], hook_env)
    assert "bondha: ERROR: announce-connected-ip: interface bh-no-such0:" in logs


def test_hook_leaves_an_address_that_does_not_float_alone(
        hook_logs: Hook, hook_env: dict[str, str]) -> None:
    logs = hook_logs(["start"], {**hook_env, "ID": "999"})
    assert "does not float: not announced" in logs
    assert "ERROR" not in logs, logs


def test_hook_does_nothing_on_stop(hook_logs: Hook,
                                   hook_env: dict[str, str]) -> None:
    assert hook_logs(["stop"], hook_env) == ""
    assert "unknown action 'restart'" in hook_logs(["restart"], hook_env)


def test_hook_exits_0_on_every_problem(hook_logs: Hook,
                                       hook_env: dict[str, str], tmp_path: Path) -> None:
    del hook_env["INTERFACE"]
    assert "$INTERFACE not set" in hook_logs(["start"], hook_env)
    bad_ip = {**hook_env, "INTERFACE": "eth0", "IP": "203.0.113.300"}
    assert "IP='203.0.113.300': not an id" in hook_logs(["start"], bad_ip)
    missing = {**bad_ip, "IP": "203.0.113.1", "BONDHA_CONFIG": str(tmp_path / "none.conf")}
    assert "config file not found" in hook_logs(["start"], missing)


def test_hook_respects_announce_count_0(hook_logs: Hook,
                                        hook_env: dict[str, str]) -> None:
    config = Path(hook_env["BONDHA_CONFIG"])
    config.write_text(config.read_text() + "[bondha]\nannounce_count = 0\n")
    logs = hook_logs(["start"], hook_env)
    assert "announce_count is 0" in logs
    assert "ERROR" not in logs, logs


# --- the pending repeat ---------------------------------------------------------------------------


def test_cancel_pending_ends_an_announcer_and_leaves_other_processes_alone(
        tmp_path: Path) -> None:
    import subprocess
    import sys

    state = StateDir(tmp_path)
    assert state.attach()
    pending = PendingRepeat.of(state, "eth0", V4)
    pid_file = pending.path
    assert pid_file == tmp_path / "announce-eth0-203.0.113.1.pid"
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    announcer = subprocess.Popen([*sleeper, "announce-connected-ip"], start_new_session=True)
    # e.g. a pid reused since the repeat ended: the same name, but no session of its own
    stranger = subprocess.Popen([*sleeper, "announce-connected-ip"])
    try:
        pid_file.write_text(f"{stranger.pid}\n")
        assert not pending.cancel()
        assert stranger.poll() is None, "a process that is no announcer was signalled"
        assert not pid_file.exists()
        pid_file.write_text(f"{announcer.pid}\n")
        assert pending.cancel()
        assert announcer.wait(timeout=10) == -15
        assert not pid_file.exists()
        assert not pending.cancel(), "nothing recorded: nothing to end"
    finally:
        for process in (announcer, stranger):
            process.kill()
            process.wait()


def test_the_pid_record_follows_no_link_planted_in_the_state_directory(tmp_path: Path) -> None:
    """Root writes and removes the record in a directory its hook's user owns: a symbolic
    link put there in its place is replaced or removed, never written through or obeyed."""
    import os
    import subprocess
    import sys

    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    state = StateDir(state_dir)
    assert state.attach()
    pending = PendingRepeat.of(state, "eth0", V6)
    assert pending.name == "announce-eth0-2001:db8:66::1.pid"
    announcer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                                  "announce-connected-ip"], start_new_session=True)
    try:
        victim.write_text(f"{announcer.pid}\n")
        pending.path.symlink_to(victim)
        assert not pending.cancel(), "a pid read through a link was obeyed"
        assert announcer.poll() is None
        assert not pending.path.is_symlink(), "the planted link stays"
        pending.path.symlink_to(victim)
        pending.record(4242)
        assert victim.read_text() == f"{announcer.pid}\n", "written through the link"
        assert not pending.path.is_symlink()
        assert pending.path.read_text() == "4242\n"
        assert os.stat(pending.path).st_mode & 0o077 == 0
    finally:
        announcer.kill()
        announcer.wait()


def test_the_state_directory_for_the_pid_record(tmp_path: Path) -> None:
    import os

    assert not StateDir(tmp_path / "none").attach(), "a missing directory is not made here"
    assert not (tmp_path / "none").exists()
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o770)
    with pytest.raises(StateDirError, match="may be written by group or others"):
        StateDir(shared).attach()
    if os.geteuid() == 0:  # root, as the bonding software runs the hook: the hook user's dir
        hooks_user = tmp_path / "hooks-user"
        hooks_user.mkdir(mode=0o700)
        os.chown(hooks_user, 65534, 65534)
        assert StateDir(hooks_user).attach()
    with pytest.raises(AnnounceError, match="not an interface name"):
        PendingRepeat.of(StateDir(tmp_path), "../eth0", V4)
