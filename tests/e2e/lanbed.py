"""The how-to's Testing section for real: the pair, the bonding software, a router pinging.

::

    ns <p>-m  master bonder   eth0: 192.168.67.1/24 (management), and from the bonding
                              stand-in: 192.168.66.1/30 (private), 203.0.113.1/30 (floating)
    ns <p>-b  backup bonder   eth0: 192.168.67.2/24, and 192.168.66.2/30, 203.0.113.1/30
    ns <p>-s  management      the stand-in server
    ns <p>-r  router          eth0: 203.0.113.2/30, pings 203.0.113.1 every 50 ms
    all on br0 in ns <p>-br (one LAN, as the how-to allows)

Each bonder runs :mod:`bondha.testing.bonding` (its bond's connected IPs on eth0, the
connected IP hooks of ``connectedip-ROLE/``) and keepalived the way the how-to's latest
revision starts it: not at boot, but from the private connected IP's ``start`` hook
(``hooks/keepalived-when-ready``), through a ``systemctl`` stand-in on the hooks' PATH that
runs keepalived in the bonder's namespace. ``announce`` puts ``hooks/announce-connected-ip``
into ``all/``. Used by tests/e2e/test_customer_lan.py and bench/customer_outage.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from .testbed import ROOT, TestBed, _run, wait_for

ROUTER_IP = "203.0.113.2"
FLOATING_IP = "203.0.113.1"
FLOATING_IDS = {"master": 1, "backup": 4}  # the example fixture's connected IPs
PRIVATE_IDS = {"master": 2, "backup": 5}
BONDS = {"master": 1, "backup": 3}
PING_INTERVAL = 0.05
PATIENCE = 90  # a router without announcements waits out its neighbour entry (15-45 s)

SYSTEMCTL = """#!/bin/sh
# e2e: systemctl for keepalived.service only, in this bonder's namespace.
run={run}
[ "$2" = keepalived.service ] || {{ echo "stand-in: only keepalived.service" >&2; exit 1; }}
echo "$(date +%s.%N) $1" >> $run/systemctl.log
running() {{
    [ -f $run/main.pid ] || return 1
    pid=$(cat $run/main.pid)
    kill -0 "$pid" 2>/dev/null && ! grep -q '^State:.*Z' /proc/$pid/status 2>/dev/null
}}
case "$1" in
    start)
        running && exit 0
        setsid keepalived --dont-fork --log-console --log-detail --no-syslog --vrrp \\
            --use-file {conf} --pid $run/keepalived.pid --vrrp_pid $run/vrrp.pid \\
            >> {log} 2>&1 < /dev/null &
        echo $! > $run/main.pid
        ;;
    stop)
        if running; then
            kill -TERM "$pid"
            i=0
            while running && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
        fi
        rm -f $run/main.pid
        ;;
    *) echo "systemctl stand-in: $1 not supported" >&2; exit 1 ;;
esac
"""


@attrs.frozen
class Reply:
    seq: int
    sent: float
    received: float


@attrs.define
class LanBed:
    """Build with :func:`open_lan_bed`."""

    bed: TestBed
    announce: bool
    advert_int: float
    push_delay: float = 0.0
    daemon: bool = False  # keepalived tells `bondha daemon` through its FIFO, not the hook
    own: dict[str, Path] = attrs.Factory(dict)
    moment: float = 0.0  # when the last step acted (time.time())

    # --- reading ---------------------------------------------------------------------------

    def mac(self, role: str) -> str:
        out = _run("ip", "-n", self.bed.ns(role[0]), "-o", "link", "show", "eth0").stdout
        words = out.split()
        return words[words.index("link/ether") + 1]

    def router_neighbour(self) -> str | None:
        """The MAC the router's neighbour entry for the floating IP holds, if any."""
        out = _run("ip", "-n", self.bed.ns("r"), "neigh", "show", FLOATING_IP,
                   "dev", "eth0").stdout.split()
        return out[out.index("lladdr") + 1] if "lladdr" in out else None

    def holds(self, role: str) -> bool:
        """Whether the floating IP is on ``role``'s eth0 right now."""
        out = _run("ip", "-n", self.bed.ns(role[0]), "-o", "-4", "addr", "show", "dev",
                   "eth0").stdout
        return f" {FLOATING_IP}/" in out

    def settled(self, role: str) -> None:
        """Only ``role`` has the floating IP (no move of the boot or a step still pending)."""
        other = "backup" if role == "master" else "master"
        wait_for(lambda: self.holds(role) and not self.holds(other), PATIENCE,
                 f"the floating IP on the {role} only", self.bed.diagnostics)

    def replies(self) -> list[Reply]:
        path = self.bed.workdir / "pings.txt"
        lines = path.read_text().splitlines() if path.exists() else []
        return [Reply(int(s), float(a), float(b)) for s, a, b in
                (line.split() for line in lines if line.count(" ") == 2)]

    def replied_after(self, moment: float) -> bool:
        return any(r.received > moment for r in self.replies())

    def longest_gap(self, since: float) -> float:
        """The longest time between two replies the router received, the later after ``since``."""
        times = [r.received for r in self.replies()]
        gaps = [b - a for a, b in zip(times, times[1:]) if b > since]
        return max(gaps, default=0.0)

    def hook_runs(self, role: str, action: str, object_id: int) -> list[dict[str, Any]]:
        path = self.bed.workdir / f"bonding-events-{role}.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        runs = [json.loads(line) for line in lines if line.strip()]
        return [r for r in runs if r["action"] == action and r["id"] == object_id]

    def notify_exits(self, state: str, priority: int) -> int:
        return sum(1 for e in self.bed.events()
                   if e.what == "exit" and e.args[2:] == (state, str(priority)))

    def keepalived_pid(self, role: str) -> int | None:
        path = self.bed.workdir / f"run-{role}" / "main.pid"
        try:
            return int(path.read_text())
        except (OSError, ValueError):
            return None

    def failed_hooks(self) -> list[dict[str, Any]]:
        failed = []
        for role in ("master", "backup"):
            for object_id in (FLOATING_IDS[role], PRIVATE_IDS[role]):
                failed += [r for action in ("start", "stop")
                           for r in self.hook_runs(role, action, object_id) if r["code"] != 0]
        return failed

    # --- the bonders -----------------------------------------------------------------------

    def install(self, config: Path, notify_hook: Path) -> None:
        """Hooks, systemctl stand-in and keepalived.conf of both bonders."""
        bed = self.bed
        for role in ("master", "backup"):
            own = bed.role_config(role, config, fifo=self.daemon)
            self.own[role] = own
            hooks = bed.workdir / f"connectedip-{role}"
            (hooks / "all").mkdir(parents=True)
            (hooks / str(PRIVATE_IDS[role])).mkdir()
            shutil.copyfile(ROOT / "hooks" / "keepalived-when-ready",
                            hooks / str(PRIVATE_IDS[role]) / "keepalived")
            (hooks / str(PRIVATE_IDS[role]) / "keepalived").chmod(0o755)
            if self.announce:
                wrapper = hooks / "all" / "announce-connected-ip"
                wrapper.write_text(
                    "#!/bin/sh\n"
                    f"BONDHA_CONFIG={own} BONDHA_SYSLOG=0 exec {bed.python} "
                    f"{ROOT / 'hooks' / 'announce-connected-ip'} \"$@\"\n")
                wrapper.chmod(0o755)
            else:  # a hook that does nothing, so that the runs show when an address came up
                noop = hooks / "all" / "noop"
                noop.write_text("#!/bin/sh\nexit 0\n")
                noop.chmod(0o755)
            conf = bed.render_keepalived(role, own, hook=None if self.daemon else notify_hook,
                                         fifo=bed.fifo(role) if self.daemon else None,
                                         advert_int=self.advert_int)
            run = bed.workdir / f"run-{role}"
            run.mkdir(exist_ok=True)
            bin_dir = bed.workdir / f"bin-{role}"
            bin_dir.mkdir()
            systemctl = bin_dir / "systemctl"
            systemctl.write_text(SYSTEMCTL.format(run=run, conf=conf,
                                                  log=bed.workdir / f"keepalived-{role}.log"))
            systemctl.chmod(0o755)

    def start_bonding(self, role: str) -> None:
        """Boot the bonding software: its connected IPs come up, keepalived with them."""
        bed = self.bed
        if self.daemon and f"daemon-{role}" not in bed.processes:
            bed.start_daemon(role, self.own[role])  # before keepalived, as its unit orders it
        ready = bed.workdir / f"bonding-{role}.ready"
        ready.unlink(missing_ok=True)
        path = f"{bed.workdir / f'bin-{role}'}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        bed.start(f"bonding-{role}", role[0], [
            bed.python, "-m", "bondha.testing.bonding", "--config", str(self.own[role]),
            "--bond", str(BONDS[role]), "--interface", "eth0",
            "--hooks", str(bed.workdir / f"connectedip-{role}"), "--poll", "0.1",
            "--push-delay", f"{self.push_delay:g}",
            "--events", str(bed.workdir / f"bonding-events-{role}.jsonl"),
            "--ready-file", str(ready)], env={"PATH": path})
        wait_for(ready.exists, 30, f"the {role}'s bonding stand-in", bed.diagnostics)

    def stop_bonding(self, role: str) -> None:
        """``systemctl stop bonding``: hooks stopped, addresses removed, keepalived with them."""
        process = self.bed.processes[f"bonding-{role}"]
        self.bed.kill(f"bonding-{role}", signal.SIGTERM)
        assert process.returncode == 0, self.bed.log(f"bonding-{role}")

    def power_off(self, role: str) -> None:
        """A hard failure: the port goes dark first (no goodbye advert), then every process
        of the bonder dies: keepalived, the bonding software, and any notify hook still
        running (keepalived runs each in a process group of its own)."""
        self.bed.ip("br", "link", "set", f"p{role[0]}", "down")
        pids = _run("ip", "netns", "pids", self.bed.ns(role[0])).stdout.split()
        for pid in map(int, pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.kill_keepalived(role)
        self.bed.kill(f"bonding-{role}")  # reaped
        self.bed.kill(f"daemon-{role}")

    def power_on(self, role: str) -> None:
        """Boot after the failure: no address of the bonding software survives a reboot."""
        ns = self.bed.ns(role[0])
        out = _run("ip", "-n", ns, "-o", "-4", "addr", "show", "dev", "eth0").stdout
        for line in out.splitlines():
            cidr = line.split()[3]
            if not cidr.startswith("192.168.67."):  # the management address stays
                _run("ip", "-n", ns, "addr", "del", cidr, "dev", "eth0")
        for pid_file in (self.bed.workdir / f"run-{role}").glob("*.pid"):
            pid_file.unlink()  # /run is empty after a reboot; a stale one stops keepalived
        self.bed.ip("br", "link", "set", f"p{role[0]}", "up")
        self.start_bonding(role)

    def kill_keepalived(self, role: str) -> None:
        pid = self.keepalived_pid(role)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        (self.bed.workdir / f"run-{role}" / "main.pid").unlink(missing_ok=True)

    def start_router(self) -> None:
        self.bed.ip("r", "addr", "add", f"{ROUTER_IP}/30", "dev", "eth0")
        self.bed.ip("r", "link", "set", "eth0", "up")
        self.bed.start("pinger", "r", [self.bed.python, str(ROOT / "tests" / "e2e" / "pinger.py"),
                                       FLOATING_IP, str(self.bed.workdir / "pings.txt"),
                                       "--interval", str(PING_INTERVAL)])

    def close(self) -> None:
        for role in ("master", "backup"):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self.kill_keepalived(role)
        self.bed.close()

    # --- the how-to's steps, each waited for to its end --------------------------------------

    def wait_active(self, role: str, *, starts_before: int, since: float,
                    other_stops_before: int | None = None) -> None:
        """``role``'s floating IP came up (and was announced), the other bonder's went away
        (when ``other_stops_before`` counts its stop runs so far), and after both the
        router got a reply: the gap, if any, has ended."""
        floating = FLOATING_IDS[role]
        wait_for(lambda: len(self.hook_runs(role, "start", floating)) > starts_before,
                 PATIENCE, f"the floating IP's start hooks on the {role}", self.bed.diagnostics)
        if other_stops_before is not None:
            other = "backup" if role == "master" else "master"
            gone = FLOATING_IDS[other]
            wait_for(lambda: len(self.hook_runs(other, "stop", gone)) > other_stops_before,
                     PATIENCE, f"the floating IP's stop hooks on the {other}",
                     self.bed.diagnostics)
            stop = self.hook_runs(other, "stop", gone)[-1]
            since = max(since, stop["at"] + stop["seconds"] + 0.2)  # removed right after
        wait_for(lambda: self.replied_after(since), PATIENCE,
                 "the router's next reply from the floating IP", self.bed.diagnostics)
        if other_stops_before is not None:
            self.settled(role)

    def stops(self, role: str) -> int:
        return len(self.hook_runs(role, "stop", FLOATING_IDS[role]))

    def starts(self, role: str) -> int:
        return len(self.hook_runs(role, "start", FLOATING_IDS[role]))

    def boot(self) -> None:
        """Both bonders booted; the master is active and the router reaches it."""
        self.start_router()
        self.start_bonding("master")
        self.start_bonding("backup")
        if self.daemon:
            wait_for(lambda: self.bed.active_bond() == BONDS["master"], 60,
                     "the master bond active", self.bed.diagnostics)
        else:  # its writes done: a failure must not find the boot's transition half-way
            wait_for(lambda: self.notify_exits("MASTER", 10) >= 1, 60, "the master's MASTER",
                     self.bed.diagnostics)
        self.wait_active("master", starts_before=0, since=time.time())
        self.settled("master")  # keepalived may have made the backup master for a moment
        settled = time.time()
        wait_for(lambda: self.replied_after(settled), PATIENCE, "a reply once settled",
                 self.bed.diagnostics)

    def fail_master(self) -> float:
        """(a) Hard failure of the master; returns the longest ping gap."""
        before = self.starts("backup")
        moment = self.moment = time.time()
        self.power_off("master")
        self.wait_active("backup", starts_before=before, since=moment)
        return self.longest_gap(moment - 1)

    def return_master(self) -> float:
        """(b) The master boots again and preempts; the backup lets the address go."""
        before, stops = self.starts("master"), self.stops("backup")
        moment = self.moment = time.time()
        self.power_on("master")
        self.wait_active("master", starts_before=before, since=moment,
                         other_stops_before=stops)
        return self.longest_gap(moment)

    def stop_master_bonding(self) -> float:
        """(c) ``systemctl stop bonding`` on the master; then bonding is started again and
        the master takes over once more (not measured: that is (b) again)."""
        before, stops = self.starts("backup"), self.stops("master")
        moment = self.moment = time.time()
        self.stop_bonding("master")
        self.wait_active("backup", starts_before=before, since=moment,
                         other_stops_before=stops)
        gap = self.longest_gap(moment - 1)
        again, backup_stops = self.starts("master"), self.stops("backup")
        restarted = time.time()
        self.start_bonding("master")
        self.wait_active("master", starts_before=again, since=restarted,
                         other_stops_before=backup_stops)
        return gap


@contextlib.contextmanager
def open_lan_bed(*, announce: bool = True, advert_int: float = 1.0, push_delay: float = 0.0,
                 daemon: bool = False) -> Iterator[LanBed]:
    """The booted LAN bed; everything removed on exit, whatever happened."""
    bed = TestBed()
    bed.workdir.chmod(0o755)
    lan = LanBed(bed, announce, advert_int, push_delay, daemon)
    try:
        bed.build_network(private=False, extra=("r",))
        config = bed.start_server()
        lan.install(config, bed.install_hook())
        lan.boot()
        yield lan
    finally:
        lan.close()
