"""Tell the customer's LAN that a floating address now lives at this bonder's MAC.

After a failover the address answers from another MAC, but the router still has the old
one in its neighbour cache and keeps sending there until the entry expires (30-40 s on
Linux). keepalived and Pacemaker's IPaddr2 announce their own addresses for this reason;
on a bonder the bonding software puts a floating connected IP on its interface and runs
the connected IP hooks, so ``hooks/announce-connected-ip`` calls :func:`run_connected_ip_hook`.

IPv4: gratuitous ARP, both forms that hosts honour (RFC 5227 section 3 and RFC 5944
section 4.6): a request and a reply, sender and target protocol address both the
announced address, broadcast. IPv6: an unsolicited neighbour advertisement to all nodes
with the override flag set (RFC 4861 section 7.2.6), which replaces the cached MAC.

Frames are built by pure functions and sent on a raw ``AF_PACKET`` socket: no package
beyond Python (a bonder has no arping or ndisc6 by default), no process per packet.
Each send first checks that the address is still on the interface, so a repeat that
outlives a failback never claims an address that has moved on.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import ipaddress
import logging
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Union

import attrs

from ..errors import AnnounceError, BondhaError, ConfigError, StateError

if TYPE_CHECKING:
    from ..config import Config, HaSettings
    from .statedir import StateDir

__all__ = [
    "AddressState",
    "ArpOp",
    "PendingRepeat",
    "Schedule",
    "address_state",
    "announce",
    "announce_by_hand",
    "announcement_frames",
    "floating_connected_ip",
    "format_mac",
    "gratuitous_arp",
    "interface_mac",
    "internet_checksum",
    "parse_mac",
    "run_connected_ip_hook",
    "unsolicited_neighbour_advert",
]

log = logging.getLogger("bondha")

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
BROADCAST_MAC = b"\xff" * 6
ALL_NODES = ipaddress.IPv6Address("ff02::1")
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"  # RFC 2464 section 7: 33:33 + last 32 bits
ETHERNET_MIN_FRAME = 60  # without the FCS; shorter frames are padded with zeros
ICMPV6 = 58
ND_NEIGHBOR_ADVERT = 136
ND_OPT_TARGET_LL_ADDR = 2
NA_FLAG_OVERRIDE = 0x20000000  # R=0x80000000, S=0x40000000, O=0x20000000
ND_HOP_LIMIT = 255  # a receiver drops neighbour discovery that crossed a router


class ArpOp(enum.IntEnum):
    REQUEST = 1
    REPLY = 2


# --- pure: frames ------------------------------------------------------------------------------


def parse_mac(text: str) -> bytes:
    """``02:00:5e:10:00:01`` as 6 bytes; ValueError names the text otherwise."""
    parts = text.strip().split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"{text!r} is not a MAC address (six hex pairs joined by ':')")
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise ValueError(f"{text!r} is not a MAC address (six hex pairs joined by ':')") from None


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def _ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    frame = dst + src + struct.pack("!H", ethertype) + payload
    return frame.ljust(ETHERNET_MIN_FRAME, b"\x00")


def _check_mac(mac: bytes) -> None:
    if len(mac) != 6:
        raise ValueError(f"a MAC address has 6 bytes, not {len(mac)}")


def gratuitous_arp(mac: bytes, address: ipaddress.IPv4Address, op: ArpOp) -> bytes:
    """The Ethernet frame of a gratuitous ARP request or reply for ``address`` at ``mac``.

    Sender and target protocol address are both ``address``; the target hardware
    address is zero in a request and ``mac`` in a reply (RFC 5944 section 4.6).
    """
    _check_mac(mac)
    target_mac = mac if op is ArpOp.REPLY else b"\x00" * 6
    arp = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, int(op), mac, address.packed,
                      target_mac, address.packed)
    return _ethernet(BROADCAST_MAC, mac, ETH_P_ARP, arp)


def internet_checksum(data: bytes) -> int:
    """RFC 1071: the one's complement of the one's complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def unsolicited_neighbour_advert(mac: bytes, address: ipaddress.IPv6Address) -> bytes:
    """The Ethernet frame of an unsolicited neighbour advertisement of ``address`` at ``mac``.

    From the address itself to all nodes, hop limit 255, flags: override only (not a
    router, not solicited), with the target link-layer address option.
    """
    _check_mac(mac)
    option = struct.pack("!BB6s", ND_OPT_TARGET_LL_ADDR, 1, mac)  # length in units of 8 bytes
    body = struct.pack("!I16s", NA_FLAG_OVERRIDE, address.packed) + option
    length = 4 + len(body)  # type, code, checksum
    pseudo = address.packed + ALL_NODES.packed + struct.pack("!I3xB", length, ICMPV6)
    checksum = internet_checksum(pseudo + struct.pack("!BBH", ND_NEIGHBOR_ADVERT, 0, 0) + body)
    icmp = struct.pack("!BBH", ND_NEIGHBOR_ADVERT, 0, checksum) + body
    header = struct.pack("!IHBB16s16s", 6 << 28, length, ICMPV6, ND_HOP_LIMIT, address.packed,
                         ALL_NODES.packed)
    return _ethernet(ALL_NODES_MAC, mac, ETH_P_IPV6, header + icmp)


def announcement_frames(mac: bytes, address: IPAddress) -> tuple[bytes, ...]:
    """What one announcement round sends for ``address``: ARP request and reply, or one NA."""
    if isinstance(address, ipaddress.IPv4Address):
        return gratuitous_arp(mac, address, ArpOp.REQUEST), gratuitous_arp(mac, address,
                                                                            ArpOp.REPLY)
    return (unsolicited_neighbour_advert(mac, address),)


@attrs.frozen
class Schedule:
    """A burst of ``count`` rounds ``interval`` seconds apart, and the same burst once more
    ``repeat_delay`` seconds after the first round (0: no repeat). ``count`` 0: no announcing.

    The defaults and why: docs/operators.md, "Announcing moved addresses".
    """

    count: int
    interval: float
    repeat_delay: float

    @classmethod
    def from_settings(cls, ha: HaSettings) -> Schedule:
        """``[bondha] announce_count, announce_interval, announce_repeat_delay``."""
        return cls(ha.announce_count, ha.announce_interval, ha.announce_repeat_delay)

    def offsets(self) -> tuple[float, ...]:
        """Seconds from the first round to each round, in order."""
        burst = [round(n * self.interval, 6) for n in range(self.count)]
        again = [round(self.repeat_delay + t, 6) for t in burst] if self.repeat_delay else []
        return tuple(sorted(burst + again))

    def describe(self) -> str:
        if not self.count:
            return "announcing is off (announce_count = 0)"
        text = f"{self.count} round{'s' if self.count != 1 else ''}"
        if self.count > 1:
            text += f" {self.interval:g} s apart"
        return text + (f", again after {self.repeat_delay:g} s" if self.repeat_delay else "")


def floating_connected_ip(master: tuple[int, Sequence[int]], backup: tuple[int, Sequence[int]],
                          bond_id: int, object_id: int) -> bool:
    """Whether connected IP ``object_id`` of bond ``bond_id`` is one of the pair's floating ones.

    ``master``/``backup``: each bond's id and its floating connected IP ids.
    """
    return any(bond == bond_id and object_id in ids for bond, ids in (master, backup))


# --- I/O: the interface ------------------------------------------------------------------------


class AddressState(enum.Enum):
    PRESENT = "present"
    TENTATIVE = "tentative"  # IPv6 duplicate address detection still running: not usable yet
    ABSENT = "absent"  # not on the interface, or duplicate address detection failed


_SIOCGIFHWADDR = 0x8927
_IFNAMSIZ = 16


def _interface_name(interface: str) -> bytes:
    name = interface.encode()
    if (not name or len(name) >= _IFNAMSIZ or name in (b".", b"..")
            or any(byte in name for byte in b"/\x00") or any(c.isspace() for c in interface)):
        raise AnnounceError(f"interface {interface!r}: not an interface name")
    return name


def interface_mac(interface: str) -> bytes:
    """The interface's MAC address; AnnounceError when there is no such interface."""
    name = _interface_name(interface)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            answer = fcntl.ioctl(probe.fileno(), _SIOCGIFHWADDR, struct.pack("256s", name))
        except OSError as exc:
            raise AnnounceError(f"interface {interface}: {exc.strerror or exc}") from None
    return bytes(answer[18:24])


IpCommand = Callable[[Sequence[str]], str]


def _ip_command(args: Sequence[str]) -> str:
    try:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=5,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AnnounceError(f"cannot run ip {' '.join(args)}: {exc}") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise AnnounceError(f"ip {' '.join(args)}: {reason}")
    return done.stdout


def address_state(interface: str, address: IPAddress, *,
                  ip_command: IpCommand = _ip_command) -> AddressState:
    """Is ``address`` on ``interface`` and usable? From ``ip -o addr show dev INTERFACE``."""
    family = "inet" if address.version == 4 else "inet6"
    for line in ip_command(["-o", "addr", "show", "dev", interface]).splitlines():
        words = line.split()
        if family not in words[:-1]:
            continue
        text = words[words.index(family) + 1]
        try:
            found = ipaddress.ip_interface(text).ip
        except ValueError:
            continue
        if found != address:
            continue
        if "dadfailed" in words:
            return AddressState.ABSENT
        return AddressState.TENTATIVE if "tentative" in words else AddressState.PRESENT
    return AddressState.ABSENT


def _send(interface: str, frames: Sequence[bytes]) -> None:
    # Protocol 0: this socket only sends, the kernel queues nothing for it to read.
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as raw:
        try:
            raw.bind((interface, 0))
            for frame in frames:
                raw.send(frame)
        except OSError as exc:
            raise AnnounceError(f"cannot send on {interface}: {exc.strerror or exc}") from None


# --- announcing --------------------------------------------------------------------------------

DAD_WAIT = 5.0  # seconds to wait for an IPv6 address to leave the tentative state
_POLL = 0.05


@attrs.define
class _Announcement:
    interface: str
    mac: bytes
    addresses: list[IPAddress]
    schedule: Schedule
    ip_command: IpCommand
    sleep: Callable[[float], None]
    clock: Callable[[], float]
    sent: dict[str, int] = attrs.Factory(dict)

    def round(self) -> None:
        """Send one round for each address still on the interface; drop the ones gone."""
        frames: list[bytes] = []
        for address in list(self.addresses):
            state = address_state(self.interface, address, ip_command=self.ip_command)
            if state is AddressState.ABSENT:
                log.info("stopped announcing %s on %s: no longer on the interface", address,
                         self.interface)
                self.addresses.remove(address)
            elif state is AddressState.PRESENT:
                frames.extend(announcement_frames(self.mac, address))
                self.sent[str(address)] = self.sent.get(str(address), 0) + 1
        if frames:
            _send(self.interface, frames)

    def wait_usable(self) -> None:
        """Until no address is tentative (IPv6 DAD), at most DAD_WAIT seconds."""
        deadline = self.clock() + DAD_WAIT
        while self.clock() < deadline and any(
                address_state(self.interface, a, ip_command=self.ip_command)
                is AddressState.TENTATIVE for a in self.addresses):
            self.sleep(_POLL)

    def run(self, offsets: Sequence[float], start: float) -> None:
        for offset in offsets:
            if not self.addresses:
                return
            delay = start + offset - self.clock()
            if delay > 0:
                self.sleep(delay)
            self.round()


def announce(
    interface: str,
    addresses: Sequence[IPAddress],
    schedule: Schedule,
    *,
    background: bool = False,
    pending: PendingRepeat | None = None,
    ip_command: IpCommand = _ip_command,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, int]:
    """Announce ``addresses`` on ``interface`` by ``schedule``.

    The first round goes out before this returns (unless an IPv6 address is still
    tentative). ``background``: the remaining rounds are sent by a detached child
    process, so that a hook returns at once; its pid goes to ``pending`` (if given) for
    :meth:`PendingRepeat.cancel` while it runs. Returns how many rounds were sent per
    address so far. AnnounceError names the interface or the address that cannot be
    announced (an address that is not on the interface is refused: announcing it
    would pull its traffic to a bonder that does not have it).
    """
    if not addresses or not schedule.count:
        return {}
    mac = interface_mac(interface)
    states = {a: address_state(interface, a, ip_command=ip_command) for a in addresses}
    absent = [str(a) for a, state in states.items() if state is AddressState.ABSENT]
    if absent:
        raise AnnounceError(f"{', '.join(absent)}: not on {interface} (or duplicate address "
                            "detection failed); refusing to announce it")
    job = _Announcement(interface, mac, list(dict.fromkeys(addresses)), schedule, ip_command,
                        sleep, clock)
    offsets = list(schedule.offsets())
    start = clock()
    if all(state is AddressState.PRESENT for state in states.values()):
        job.round()
        offsets.pop(0)
    first_sent = dict(job.sent)
    if not offsets:
        return first_sent

    def rest() -> None:
        if not first_sent:
            job.wait_usable()
            nonlocal start
            start = clock()
        job.run(offsets if first_sent else schedule.offsets(), start)

    if background:
        _detach(rest, pending)
        return first_sent
    rest()
    return job.sent


def _detach(work: Callable[[], None], pending: PendingRepeat | None = None) -> None:
    """Run ``work`` in a child in its own session, cut off from the caller's pipes.

    The bonding software waits for the hook and may wait for its stdout to close; the
    child holds neither. It is reparented to init when the hook exits.
    """
    pid = os.fork()
    if pid:
        if pending is not None:  # before the hook returns: a quick stop finds the repeat
            pending.record(pid)
        return
    code = 0
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        work()
    except BondhaError as exc:
        log.error("announce: %s", exc)
        code = 1
    except BaseException as exc:  # noqa: BLE001 -- a detached child has no one else to tell
        log.error("announce: internal error: %s: %s", type(exc).__name__, exc)
        code = 1
    finally:
        if pending is not None:
            pending.forget_own()
        logging.shutdown()
        os._exit(code)


# A detached repeat must not outlive its address on this bonder: the bonding software runs
# ``stop`` before it removes the address, and the hook then ends the repeat (else a repeat
# due during a quick failback would pull the address back to a bonder about to drop it).
_HOOK_NAME = b"announce-connected-ip"


_PID_MAX = 32  # bytes of a pid record: digits and a newline


@attrs.frozen
class PendingRepeat:
    """The pid record of the detached repeat for one address on one interface: the file
    ``announce-IF-ADDRESS.pid`` of the state directory, reached through the directory's
    held descriptor (:meth:`~bondha.node.statedir.StateDir.attach`), so that no symbolic
    link planted there redirects what root writes or removes."""

    state: StateDir
    name: str

    @classmethod
    def of(cls, state: StateDir, interface: str, address: IPAddress) -> PendingRepeat:
        _interface_name(interface)  # no "/" or NUL: the name stays in the directory
        return cls(state, f"announce-{interface}-{address}.pid")

    @property
    def path(self) -> Path:
        return self.state.path / self.name

    def record(self, pid: int) -> None:
        """``pid`` is the repeat's now: replace the record whole."""
        try:
            self.state.write_atomic(self.name, f"{pid}\n".encode("ascii"), durable=False)
        except OSError as exc:  # the address check before each round still guards the repeat
            log.info("announce: cannot record the repeat's pid in %s: %s", self.path,
                     exc.strerror or exc)

    def _recorded_pid(self) -> int:
        """The pid recorded; OSError or ValueError when there is none that is readable."""
        return int(self.state.read_bytes(self.name, _PID_MAX).decode("ascii"))

    def _forget(self) -> None:
        with contextlib.suppress(OSError):
            self.state.unlink(self.name)

    def forget_own(self) -> None:
        """Remove the record if it is still this process's (a newer repeat replaces it)."""
        with contextlib.suppress(OSError, ValueError):
            if self._recorded_pid() == os.getpid():
                self._forget()

    def cancel(self) -> bool:
        """End the repeat recorded here, if it still runs; True if one was ended.

        The pid is only signalled when it is an announcer's: the hook's command line, and
        the leader of a session of its own (as :func:`_detach` makes it), so that a pid
        reused by another process since is left alone.
        """
        try:
            pid = self._recorded_pid()
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            # /proc/PID/stat: "pid (comm) state ppid pgrp session ...", comm may hold spaces.
            session = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])
        except (OSError, ValueError, IndexError):
            self._forget()
            return False
        ended = False
        if pid > 1 and _HOOK_NAME in command and session == pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                ended = True
        self._forget()
        return ended


def _pending_repeat(state_dir: Path, interface: str, address: IPAddress) -> PendingRepeat | None:
    """The pid record in the state directory, or None when there is no usable directory
    (the repeat then runs unrecorded; the address check before each round still holds)."""
    from .statedir import StateDir

    state = StateDir(state_dir)
    try:
        if not state.attach():
            return None
    except StateError as exc:
        log.warning("announce-connected-ip: %s; the repeat is not recorded", exc)
        return None
    return PendingRepeat.of(state, interface, address)


# --- the connected IP hook ---------------------------------------------------------------------


def _load(path: Path, environ: Mapping[str, str]) -> Config:
    """The config, its warnings logged. Announcing needs no password, so the modes of the
    files holding it are left to the commands that use it (notify, check)."""
    from ..config import load_config

    config = load_config(path, environ=environ)
    for warning in config.warnings:
        log.warning("%s", warning)
    return config


HOOK_ENVIRONMENT = ("ID", "BOND_ID", "IP", "NETMASK", "NETWORK", "INTERFACE", "AGG_ROUTING")


def _hook_announce(action: str, environ: Mapping[str, str]) -> None:
    from ..config import config_path
    from .statedir import state_dir_of

    if action not in ("start", "stop"):
        log.warning("announce-connected-ip: unknown action %r (expected start or stop); "
                    "nothing done", action)
        return
    missing = [name for name in ("ID", "BOND_ID", "IP", "INTERFACE") if not environ.get(name)]
    if missing:
        raise AnnounceError(f"${', $'.join(missing)} not set; the "
                            "bonding software sets them for a connected IP hook")
    ip_text, interface = environ["IP"].strip(), environ["INTERFACE"].strip()
    try:
        object_id, bond_id = int(environ["ID"]), int(environ["BOND_ID"])
        address = ipaddress.ip_interface(ip_text).ip
    except ValueError:
        raise AnnounceError(f"ID={environ['ID']!r} BOND_ID="
                            f"{environ['BOND_ID']!r} IP={ip_text!r}: not an id, a bond id "
                            "and an IP address") from None
    config = _load(config_path(None, environ), environ)
    pending = _pending_repeat(state_dir_of(config, environ), interface, address)
    if pending is not None and pending.cancel():  # a newer start, or the address is about to go
        log.info("connected IP %d (%s): ended the pending repeat of its announcement",
                 object_id, address)
    if action == "stop":
        return
    pair = config.pair
    if not floating_connected_ip((pair.master.bond_id, pair.master.connected_ip_ids),
                                 (pair.backup.bond_id, pair.backup.connected_ip_ids),
                                 bond_id, object_id):
        log.info("connected IP %d (%s) on bond %d does not float: not announced", object_id,
                  address, bond_id)
        return
    schedule = Schedule.from_settings(config.ha)
    if not schedule.count:
        log.info("connected IP %d (%s): not announced, [bondha] announce_count is 0",
                 object_id, address)
        return
    announce(interface, [address], schedule, background=True, pending=pending)
    log.info("announced connected IP %d (%s) on %s: %s", object_id, address, interface,
             schedule.describe())


def run_connected_ip_hook(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> int:
    """``announce-connected-ip start|stop`` as the bonding software runs it: always 0.

    A failed announcement costs the customer at most a neighbour-cache lifetime; a failed
    hook could cost the bonding software its order of work. So every problem is logged
    (syslog when no terminal watches) and the exit code is 0.
    """
    from ..log import setup_logging

    setup_logging(0)
    action = argv[0] if argv else ""
    try:
        _hook_announce(action, environ)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("announce-connected-ip: %s", problem)
    except BondhaError as exc:
        log.error("announce-connected-ip: %s", exc)
    except Exception as exc:  # noqa: BLE001 -- never a traceback, never a failed hook
        log.error("announce-connected-ip: internal error: %s: %s", type(exc).__name__, exc)
    return 0


# --- by hand -----------------------------------------------------------------------------------


def announce_by_hand(interface: str, texts: Sequence[str], config: str | None = None,
                     environ: Mapping[str, str] = os.environ) -> str:
    """``bondha announce``: every round in the foreground, with the config's ``[bondha]
    announce_*`` when the config file exists (else the defaults). Returns the report line."""
    from ..config import HaSettings, config_path
    from ..errors import UsageError

    addresses: list[IPAddress] = []
    for text in texts:
        try:
            addresses.append(ipaddress.ip_interface(text.strip()).ip)
        except ValueError:
            raise UsageError(f"announce: {text!r} is not an IP address") from None
    path = config_path(config, environ)
    settings = _load(path, environ).ha if path.exists() or config else HaSettings()
    schedule = Schedule.from_settings(settings)
    if not schedule.count:
        raise UsageError(f"announce: [bondha] announce_count is 0 in {path}: nothing to send")
    sent = announce(interface, addresses, schedule)
    rounds = ", ".join(f"{address} {count}x" for address, count in sent.items())
    return (f"announced on {interface} at {format_mac(interface_mac(interface))}: {rounds} "
            f"({schedule.describe()})")
