"""Announcements on a real link: two namespaces joined by a veth pair.

The receiving side is a Linux host with a stale neighbour entry pointing at a wrong MAC:
after ``bondha announce`` it holds the sender's MAC, for IPv4 (gratuitous ARP) and IPv6
(unsolicited NA with override). The connected IP hook returns after the first round; its
detached repeat comes later, and never for an address that left the interface meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bondha.testing import example_fixture

from .testbed import ROOT, _run, wait_for

pytestmark = pytest.mark.e2e

WRONG_MAC = "02:00:00:00:00:99"
CAPTURE = """
import socket, sys, time
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
sock.bind(("eth0", 0))
sock.settimeout(0.1)
open(sys.argv[2], "w").close()
end = time.monotonic() + float(sys.argv[1])
with open(sys.argv[2], "a") as out:
    while time.monotonic() < end:
        try:
            frame = sock.recv(2048)
        except socket.timeout:
            continue
        out.write(f"{time.time():.6f} {frame.hex()}\\n")
        out.flush()
"""


@contextlib.contextmanager
def link(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Namespaces (sender, receiver), eth0 each: 198.51.100.1-2/24 + 2001:db8::1/64 on the
    sender, 198.51.100.9/24 + 2001:db8::9/64 on the receiver."""
    prefix = f"bha{uuid.uuid4().hex[:6]}"
    sender, receiver = f"{prefix}-s", f"{prefix}-r"
    try:
        for ns in (sender, receiver):
            _run("ip", "netns", "add", ns)
        _run("ip", "link", "add", "eth0", "netns", sender, "type", "veth", "peer", "name",
             "eth0", "netns", receiver)
        # .2 first: deleting a subnet's primary address takes its secondaries along.
        for ns, addresses in ((sender, ["198.51.100.2/24", "198.51.100.1/24",
                                        "2001:db8::1/64"]),
                              (receiver, ["198.51.100.9/24", "2001:db8::9/64"])):
            for address in addresses:
                _run("ip", "-n", ns, "addr", "add", address, "dev", "eth0", "nodad")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")
        for ns in (sender, receiver):  # IPv6 takes the link once its link-local passed DAD
            wait_for(lambda ns=ns: "tentative" not in _run(  # type: ignore[misc]
                "ip", "-n", ns, "-6", "addr", "show", "dev", "eth0").stdout, 10,
                f"IPv6 on {ns}")
        yield sender, receiver
    finally:
        for ns in (sender, receiver):
            _run("ip", "netns", "del", ns, check=False)


def mac(ns: str) -> str:
    words = _run("ip", "-n", ns, "-o", "link", "show", "eth0").stdout.split()
    return words[words.index("link/ether") + 1]


def neighbour(ns: str, address: str) -> str | None:
    words = _run("ip", "-n", ns, "neigh", "show", address, "dev", "eth0").stdout.split()
    return words[words.index("lladdr") + 1] if "lladdr" in words else None


def config(tmp_path: Path, count: int, interval: float, repeat: float) -> Path:
    path = tmp_path / "swap-active-bond.conf"
    path.write_text(example_fixture().config_text("http://127.0.0.1:1") + (
        f"[bondha]\nannounce_count = {count}\nannounce_interval = {interval}\n"
        f"announce_repeat_delay = {repeat}\n"))
    path.chmod(0o600)
    return path


def capture(ns: str, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", CAPTURE,
                                str(seconds), str(out)])
    wait_for(out.exists, 10, "the capture to start")
    return process


def announced(out: Path) -> list[tuple[float, str, str]]:
    """(time, address, form) of each announcement frame captured."""
    found = []
    for line in out.read_text().splitlines():
        at, hexed = line.split()
        frame = bytes.fromhex(hexed)
        ethertype = struct.unpack("!H", frame[12:14])[0]
        if ethertype == 0x0806:
            op = struct.unpack("!H", frame[20:22])[0]
            spa, tpa = frame[28:32], frame[38:42]
            if spa == tpa:
                found.append((float(at), ".".join(map(str, spa)), {1: "request", 2: "reply"}[op]))
        elif ethertype == 0x86DD and frame[20] == 58 and frame[54] == 136:
            import ipaddress

            found.append((float(at), str(ipaddress.IPv6Address(frame[62:78])), "advert"))
    return found


def test_bondha_announce_moves_the_receivers_neighbour_entries(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, raw sockets)")
    with link(tmp_path) as (sender, receiver):
        for address in ("198.51.100.1", "2001:db8::1"):
            _run("ip", "-n", receiver, "neigh", "replace", address, "lladdr", WRONG_MAC,
                 "dev", "eth0", "nud", "stale")
        conf = config(tmp_path, 2, 0.05, 0)
        frames = tmp_path / "frames"
        watcher = capture(receiver, 1.5, frames)
        done = _run("ip", "netns", "exec", sender, sys.executable, "-m", "bondha", "--config",
                    str(conf), "announce", "--interface", "eth0", "198.51.100.1",
                    "2001:db8::1", check=False)
        assert done.returncode == 0, done.stderr
        assert f"at {mac(sender)}" in done.stdout
        watcher.wait(timeout=10)
        forms = sorted((address, form) for _, address, form in announced(frames))
        assert forms == sorted([("198.51.100.1", "request"), ("198.51.100.1", "reply")] * 2
                               + [("2001:db8::1", "advert")] * 2)
        assert neighbour(receiver, "198.51.100.1") == mac(sender)
        assert neighbour(receiver, "2001:db8::1") == mac(sender)

        refused = _run("ip", "netns", "exec", sender, sys.executable, "-m", "bondha",
                       "--config", str(conf), "announce", "--interface", "eth0",
                       "198.51.100.7", check=False)
        assert refused.returncode == 1
        assert "198.51.100.7: not on eth0" in refused.stderr


def test_hook_returns_at_once_and_its_repeat_skips_a_removed_address(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, raw sockets)")
    with link(tmp_path) as (sender, receiver):
        conf = config(tmp_path, 1, 0, 2)
        frames = tmp_path / "frames"
        watcher = capture(receiver, 5, frames)
        hooks = {}
        for address, object_id, bond in (("198.51.100.1", 1, 1), ("198.51.100.2", 4, 3)):
            env = {**os.environ, "BONDHA_CONFIG": str(conf), "BONDHA_SYSLOG": "0",
                   "ID": str(object_id), "BOND_ID": str(bond), "IP": address,
                   "NETMASK": "255.255.255.0", "NETWORK": "198.51.100.0", "INTERFACE": "eth0",
                   "AGG_ROUTING": "auto"}
            hooks[address] = subprocess.run(
                ["ip", "netns", "exec", sender, sys.executable,
                 str(ROOT / "hooks" / "announce-connected-ip"), "start"],
                env=env, capture_output=True, text=True, timeout=30, check=False)
        returned = time.time()
        # The first address leaves the interface before its repeat is due.
        _run("ip", "-n", sender, "addr", "del", "198.51.100.1/24", "dev", "eth0")
        for address, done in hooks.items():
            assert done.returncode == 0
            assert done.stdout == "", "the hook's output belongs to the bonding software"
            assert f"({address}) on eth0" in done.stderr
        watcher.wait(timeout=10)
        seen = announced(frames)
        first = [(a, f) for at, a, f in seen if at <= returned]
        later = [(a, f) for at, a, f in seen if at > returned]
        assert sorted(first) == sorted([("198.51.100.1", "request"), ("198.51.100.1", "reply"),
                                        ("198.51.100.2", "request"), ("198.51.100.2", "reply")])
        assert sorted(later) == [("198.51.100.2", "reply"), ("198.51.100.2", "request")], (
            "the repeat went out for the address still there, and only for it")


def test_stop_ends_the_pending_repeat_before_the_address_goes(tmp_path: Path) -> None:
    """The bonding software runs stop, then removes the address: from stop on, this bonder
    sends nothing more for it, even while the address is still there."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, raw sockets)")
    with link(tmp_path) as (sender, receiver):
        conf = config(tmp_path, 1, 0, 2)
        state = tmp_path / "state"
        state.mkdir()
        frames = tmp_path / "frames"
        watcher = capture(receiver, 5, frames)
        env = {**os.environ, "BONDHA_CONFIG": str(conf), "BONDHA_SYSLOG": "0",
               "BONDHA_STATE_DIR": str(state), "ID": "1", "BOND_ID": "1",
               "IP": "198.51.100.1", "NETMASK": "255.255.255.0", "NETWORK": "198.51.100.0",
               "INTERFACE": "eth0", "AGG_ROUTING": "auto"}
        runs = {}
        for action in ("start", "stop"):
            runs[action] = subprocess.run(
                ["ip", "netns", "exec", sender, sys.executable,
                 str(ROOT / "hooks" / "announce-connected-ip"), action],
                env=env, capture_output=True, text=True, timeout=30, check=False)
            assert runs[action].returncode == 0
        stopped = time.time()
        assert "ended the pending repeat" in runs["stop"].stderr, runs["stop"].stderr
        watcher.wait(timeout=10)
        assert [f for at, _, f in announced(frames) if at > stopped] == [], (
            "announced after stop")
        assert sorted(f for _, _, f in announced(frames)) == ["reply", "request"]
        assert list(state.iterdir()) == []
