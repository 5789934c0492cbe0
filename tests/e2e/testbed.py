"""A real HA pair on one machine: two keepalived bonders and the stand-in server in namespaces.

::

    ns <p>-m (master bonder)   eth0 192.168.66.1/30 + 192.168.67.1/24 ─┐
    ns <p>-b (backup bonder)   eth0 192.168.66.2/30 + 192.168.67.2/24 ─┼─ br0 in ns <p>-br
    ns <p>-s (management)      eth0 192.168.67.10/24, bondha.testing  ─┘

Everything the bed creates (namespaces, their veths and bridge, processes, the work
directory) goes away in :meth:`TestBed.close`, which is safe to call at any point of a
half-built bed. keepalived runs the files the docs tell operators to install: the
``bondha keepalived-config`` output, and the hook as a non-root ``script_user`` under
``enable_script_security``. Used by tests/e2e and by bench/keepalived_failover.py.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Callable

import attrs

from bondha.model import Kind
from bondha.testing import example_fixture

ROOT = Path(__file__).resolve().parents[2]
SCRIPT_USER = "nobody"  # exists everywhere; the docs use a dedicated "bondha" user
SERVER_IP = "192.168.67.10"
SERVER_PORT = 8080
PRIVATE = {"master": ("192.168.66.1", "192.168.66.2"), "backup": ("192.168.66.2", "192.168.66.1")}
MANAGEMENT = {"master": "192.168.67.1", "backup": "192.168.67.2"}
BONDS = {"master": 1, "backup": 3}  # the how-to's example fixture
AUTH_PASS = "e2e-pass"
# Short enough that an unreachable server fails within the test's patience.
CONFIG_OPTIONS = ("timeout=2", "attempts=2", "attempt_delay=0.2")


class CannotRun(Exception):
    """This machine cannot host the test bed; the message says why."""


def _run(*command: str, check: bool = True,
         timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=check)


def _ids(user: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


# What the hook imports, copied where the script user can read it (see hook_python).
_RUNTIME_PACKAGES = ("bondha", "httpx", "httpcore", "h11", "anyio", "sniffio", "idna",
                     "certifi", "attr", "attrs", "tenacity", "typing_extensions.py",
                     "exceptiongroup")
_library: list[Path] = []


def _readable_library() -> Path:
    """bondha and its dependencies in a world-readable folder, made once per test run.

    The checkout and the venv may live where the script user cannot enter (a 0700
    mktemp folder, pyenv under /root): this is what an operator's ``pip install
    --target`` gives. Removed when the test run ends.
    """
    if _library:
        return _library[0]
    library = Path(tempfile.mkdtemp(prefix="bondha-e2e-lib-"))
    atexit.register(shutil.rmtree, library, True)
    sources = [ROOT, Path(sysconfig.get_paths()["purelib"])]
    for name in _RUNTIME_PACKAGES:
        found = next((base / name for base in sources if (base / name).exists()), None)
        if found is None:
            continue  # e.g. exceptiongroup, only needed before Python 3.11
        if found.is_dir():
            shutil.copytree(found, library / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(found, library / name)
    for path in [library, *library.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    _library.append(library)
    return library


def hook_python() -> tuple[str, dict[str, str]]:
    """A python the script user can run that imports bondha from this checkout, and its env."""
    env = {
        "PYTHONPATH": str(_readable_library()),
        "PYTHONDONTWRITEBYTECODE": "1",
        "BONDHA_SYSLOG": "0",
    }
    tried = []
    for python in dict.fromkeys((sys.executable, "/usr/bin/python3")):
        probe = subprocess.run(
            ["runuser", "-u", SCRIPT_USER, "--", python, "-c",
             "import bondha.cli, httpx, attrs, tenacity"],
            capture_output=True, text=True, timeout=30, check=False,
            env={**os.environ, **env})
        if probe.returncode == 0:
            return python, env
        tried.append(f"{python}: {(probe.stderr.strip().splitlines() or ['?'])[-1]}")
    raise CannotRun(f"no python that user {SCRIPT_USER} may run imports bondha "
                    f"({'; '.join(tried)})")


def preflight() -> None:
    """Raise CannotRun with the reason when this machine cannot host the bed."""
    if os.geteuid() != 0:
        raise CannotRun("needs root (network namespaces, keepalived)")
    for tool in ("keepalived", "ip", "runuser"):
        if shutil.which(tool) is None:
            raise CannotRun(f"{tool} is not installed (apt-get install keepalived iproute2)")
    probe = f"bhprobe{uuid.uuid4().hex[:6]}"
    created = _run("ip", "netns", "add", probe, check=False)
    if created.returncode != 0:
        raise CannotRun(f"cannot create a network namespace: {created.stderr.strip()}")
    _run("ip", "netns", "del", probe, check=False)
    hook_python()


@attrs.define
class Event:
    """One line the test's hook wrapper wrote: when keepalived ran the hook, and its exit."""

    at: float  # time.time()
    what: str  # "start" or "exit"
    code: int | None
    args: tuple[str, ...]

    @classmethod
    def parse(cls, line: str) -> Event:
        at, what, *rest = line.split()
        code = int(rest.pop(0)) if what == "exit" else None
        return cls(float(at), what, code, tuple(rest[-4:]))


@attrs.define
class TestBed:
    """Build with :func:`open_bed`; every method may raise, :meth:`close` always cleans up."""

    __test__ = False  # not a pytest class

    prefix: str = attrs.Factory(lambda: f"bh{uuid.uuid4().hex[:6]}")
    workdir: Path = attrs.Factory(lambda: Path(tempfile.mkdtemp(prefix="bondha-e2e-")))
    namespaces: list[str] = attrs.Factory(list)
    processes: dict[str, subprocess.Popen[bytes]] = attrs.Factory(dict)
    python: str = sys.executable
    python_for_hook: str = ""
    hook_env: dict[str, str] = attrs.Factory(dict)
    # time.time() - time.monotonic(): the server records writes on the monotonic clock.
    clock_offset: float = attrs.Factory(lambda: time.time() - time.monotonic())

    # --- namespaces -------------------------------------------------------------------------

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def ip(self, ns: str, *args: str) -> None:
        _run("ip", "-n", self.ns(ns), *args)

    def build_network(self, *, private: bool = True, extra: Sequence[str] = ()) -> None:
        """``private`` False: the bonders' private /30 is left to the bonding stand-in;
        ``extra``: more namespaces on the bridge, with no address (e.g. a router)."""
        for name in ("br", "m", "b", "s", *extra):
            _run("ip", "netns", "add", self.ns(name))
            self.namespaces.append(self.ns(name))
            self.ip(name, "link", "set", "lo", "up")
        self.ip("br", "link", "add", "br0", "type", "bridge")
        self.ip("br", "link", "set", "br0", "up")
        addresses: dict[str, list[str]] = {
            "m": [f"{PRIVATE['master'][0]}/30"] * private + [f"{MANAGEMENT['master']}/24"],
            "b": [f"{PRIVATE['backup'][0]}/30"] * private + [f"{MANAGEMENT['backup']}/24"],
            "s": [f"{SERVER_IP}/24"],
            **{name: [] for name in extra},
        }
        for name, cidrs in addresses.items():
            _run("ip", "link", "add", "eth0", "netns", self.ns(name), "type", "veth",
                 "peer", "name", f"p{name}", "netns", self.ns("br"))
            self.ip("br", "link", "set", f"p{name}", "master", "br0", "up")
            for cidr in cidrs:
                self.ip(name, "addr", "add", cidr, "dev", "eth0")
            self.ip(name, "link", "set", "eth0", "up")

    def set_server_link(self, up: bool) -> None:
        """Cut (or restore) the management server's only link: unreachable, not refusing."""
        self.ip("s", "link", "set", "eth0", "up" if up else "down")

    # --- processes --------------------------------------------------------------------------

    def start(self, key: str, ns: str, command: Sequence[str], *,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Run ``command`` in namespace ``ns``, in its own process group, logging to a file."""
        log = (self.workdir / f"{key}.log").open("ab")
        environ = {k: v for k, v in os.environ.items() if k not in ("BONDHA_STATE_DIR",
                                                                     "BONDHA_CONFIG")}
        process = subprocess.Popen(["ip", "netns", "exec", self.ns(ns), *command],
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, env={**environ, **(env or {})})
        log.close()
        self.processes[key] = process
        return process

    def kill(self, key: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal the process group (keepalived's VRRP child and any hook it runs too)."""
        process = self.processes.pop(key, None)
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def log(self, key: str) -> str:
        path = self.workdir / f"{key}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        for key in list(self.processes):
            self.kill(key, signal.SIGTERM if key.startswith("daemon") else signal.SIGKILL)
        for ns in reversed(self.namespaces):
            _run("ip", "netns", "del", ns, check=False)
        self.namespaces.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # --- the management server -----------------------------------------------------------------

    def start_server(self) -> Path:
        """The stand-in with the how-to's example; returns the config it wrote."""
        config = self.workdir / "swap-active-bond.conf"
        ready = self.workdir / "server.ready"
        options = [arg for option in CONFIG_OPTIONS for arg in ("--config-option", option)]
        self.start("server", "s", [
            self.python, "-m", "bondha.testing", "--host", SERVER_IP, "--port", str(SERVER_PORT),
            "--fixture", "example", "--write-config", str(config), *options,
            "--ready-file", str(ready)])
        wait_for(ready.exists, 20, "the stand-in server to listen", self.log("server"))
        self.share_with_script_user(config, 0o400)
        return config

    def control(self, method: str, path: str, body: Any = None) -> Any:
        """Call /_standin/ from inside the server's namespace (the host cannot reach it)."""
        code = (
            "import json, sys, urllib.request as u\n"
            "m, url, body = sys.argv[1:4]\n"
            "r = u.Request(url, method=m, data=body.encode() if body else None,"
            " headers={'Content-Type': 'application/json'})\n"
            "sys.stdout.write(u.urlopen(r, timeout=10).read().decode())\n"
        )
        url = f"http://{SERVER_IP}:{SERVER_PORT}/_standin/{path}"
        result = _run("ip", "netns", "exec", self.ns("s"), self.python, "-c", code, method, url,
                      "" if body is None else json.dumps(body))
        return json.loads(result.stdout or "null")

    def enabled_bonds(self) -> dict[str, set[int]]:
        """For each floating address (kind:address), the bonds that have it enabled."""
        floating = {ref.id for ref in example_fixture().pair().refs()}
        holders: dict[str, set[int]] = {}
        for record in self.control("GET", "objects"):
            if record["id"] not in floating:
                continue  # another customer's bond, or the private link
            kind = Kind(record["kind"])
            bonds = holders.setdefault(f"{kind.value}:{record[kind.address_field]}", set())
            if record["enabled"]:
                bonds.add(record["bond_id"])
        return holders

    def active_bond(self) -> int | None:
        """The bond that has every floating address, and alone; None when mixed."""
        holders = set(map(frozenset, self.enabled_bonds().values()))
        if len(holders) == 1:
            only = next(iter(holders))
            if len(only) == 1:
                return next(iter(only))
        return None

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.control("GET", "stats")
        return stats

    def wall(self, monotonic: float) -> float:
        return monotonic + self.clock_offset

    # --- keepalived and the hook -----------------------------------------------------------------

    def share_with_script_user(self, path: Path, mode: int) -> None:
        """The script user owns it, nobody else may read it (as the docs set the config:
        bondha refuses a password file that group or others can read)."""
        os.chown(path, *_ids(SCRIPT_USER))
        path.chmod(mode)

    def install_hook(self) -> Path:
        """The hook as the docs install it, behind a wrapper that timestamps each run.

        keepalived checks the wrapper: root-owned, 0755, in root-owned 0755 directories.
        """
        self.python_for_hook, self.hook_env = hook_python()
        bin_dir = self.workdir / "bin"
        bin_dir.mkdir(mode=0o755)
        hook = bin_dir / "swap-active-bond.real"
        shutil.copyfile(ROOT / "hooks" / "swap-active-bond", hook)
        hook.chmod(0o755)
        events = self.workdir / "events.log"
        hook_log = self.workdir / "hook.log"
        for path in (events, hook_log):
            path.touch()
            os.chown(path, *_ids(SCRIPT_USER))
        exports = " ".join(f"{k}='{v}'" for k, v in self.hook_env.items())
        wrapper = bin_dir / "swap-active-bond"
        wrapper.write_text(
            "#!/bin/sh\n"
            "# e2e: note when keepalived ran the hook and how it ended.\n"
            f'echo "$(date +%s.%N) start $*" >> {events}\n'
            f'{exports} {self.python_for_hook} {hook} "$@" >> {hook_log} 2>&1\n'
            "code=$?\n"
            f'echo "$(date +%s.%N) exit $code $*" >> {events}\n'
            "exit $code\n"
        )
        wrapper.chmod(0o755)
        return wrapper

    def bondha_as_script_user(self, role: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``bondha ARGS`` inside a bonder's namespace, as the user keepalived runs the hook as.

        Only from inside the bed: the server's address means nothing on the host.
        """
        if not self.python_for_hook:
            self.python_for_hook, self.hook_env = hook_python()
        env = [f"{k}={v}" for k, v in self.hook_env.items()]
        return _run("ip", "netns", "exec", self.ns(role[0]), "runuser", "-u", SCRIPT_USER, "--",
                    "env", *env, self.python_for_hook, "-m", "bondha", *args, check=False,
                    timeout=60)

    def events(self) -> list[Event]:
        path = self.workdir / "events.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [Event.parse(line) for line in lines if line.strip()]

    def render_keepalived(self, role: str, config: Path, *, hook: Path | None = None,
                          fifo: Path | None = None, script_user: str = SCRIPT_USER,
                          advert_int: float = 1.0) -> Path:
        """keepalived.conf of one bonder, exactly as `bondha keepalived-config` renders it.

        A sub-second ``advert_int`` renders VRRPv3, which has no password."""
        src, peer = PRIVATE[role]
        extra = ["--fifo", str(fifo)] if fifo else ["--hook", str(hook)]
        extra += ["--advert-int", f"{advert_int:g}"]
        if advert_int == int(advert_int):
            extra += ["--auth-pass", AUTH_PASS]
        rendered = _run(self.python, "-m", "bondha", "--config", str(config), "keepalived-config",
                        "--role", role, "--interface", "eth0", "--src", src, "--peer", peer,
                        "--track-script", "/bin/true",
                        "--script-user", script_user, *extra)
        path = self.workdir / f"keepalived-{role}.conf"
        path.write_text(rendered.stdout)
        return path

    def start_keepalived(self, role: str, conf: Path) -> None:
        run = self.workdir / f"run-{role}"
        run.mkdir(exist_ok=True)
        self.start(f"keepalived-{role}", role[0], [
            "keepalived", "--dont-fork", "--log-console", "--log-detail", "--no-syslog",
            "--vrrp", "--use-file", str(conf), "--pid", str(run / "keepalived.pid"),
            "--vrrp_pid", str(run / "vrrp.pid")])

    def role_config(self, role: str, config: Path, *, fifo: bool = False) -> Path:
        """The server's config plus a ``[bondha]`` section of this bonder's own.

        Both bonders share one file system here, so each gets its own state directory
        (lock and event record), owned by whoever runs bondha: the script user for the
        hook, root for the daemon, as in docs/operators.md.
        """
        state = self.workdir / f"state-{role}"
        state.mkdir(mode=0o700)
        if not fifo:
            os.chown(state, *_ids(SCRIPT_USER))
        own = self.workdir / f"swap-active-bond-{role}.conf"
        section = f"[bondha]\nstate_dir = {state}\n"
        if fifo:
            section += f"notify_fifo = {self.fifo(role)}\n"
        own.write_text(config.read_text() + section)
        self.share_with_script_user(own, 0o400)
        return own

    def fifo(self, role: str) -> Path:
        return self.workdir / f"{role}.fifo"

    def start_daemon(self, role: str, config: Path) -> None:
        """``bondha daemon`` on a bonder, as the docs' systemd unit runs it."""
        self.start(f"daemon-{role}", role[0], [self.python, "-m", "bondha", "--config",
                                               str(config), "daemon"],
                   env={"BONDHA_SYSLOG": "0"})
        wait_for(self.fifo(role).exists, 20, f"the {role} daemon's FIFO",
                 lambda: self.log(f"daemon-{role}"))

    def start_notify_pair(self) -> dict[str, Path]:
        """Server, hook and both keepalived as docs/operators.md sets them up.

        Returns each bonder's keepalived.conf (the bonder's bondha config sits beside it
        as ``swap-active-bond-ROLE.conf``).
        """
        config = self.start_server()
        hook = self.install_hook()
        confs = {}
        for role in ("master", "backup"):
            own = self.role_config(role, config)
            confs[role] = self.render_keepalived(role, own, hook=hook)
            self.start_keepalived(role, confs[role])
        return confs

    def failed_hook_runs(self) -> list[Event]:
        return [e for e in self.events() if e.what == "exit" and e.code != 0]

    def transitions(self, role: str, state: str = "MASTER") -> int:
        """How often keepalived of ``role`` logged entering ``state``."""
        return self.log(f"keepalived-{role}").count(f"Entering {state} STATE")

    def diagnostics(self) -> str:
        """Everything worth reading when a scenario fails."""
        parts = [f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
                 for path in sorted(self.workdir.glob("*.log"))]
        return "\n".join(parts)


def wait_for(condition: Callable[[], object], timeout: float, what: str,
             details: str | Callable[[], str] = "") -> None:
    """Poll until ``condition()`` is true; fail naming ``what`` and showing ``details``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            shown = details() if callable(details) else details
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}\n{shown}")
        time.sleep(0.1)


@contextlib.contextmanager
def open_bed() -> Iterator[TestBed]:
    """A network with the server running; removed on exit, whatever happened."""
    bed = TestBed()
    bed.workdir.chmod(0o755)  # the script user must reach the hook and the config
    try:
        bed.build_network()
        yield bed
    finally:
        bed.close()


@attrs.frozen
class Failover:
    """One transition as the server saw it."""

    event_at: float  # when keepalived ran the hook (wall clock)
    writes: int
    last_write_after: float  # seconds from the event to the last write the server applied
    overlap_moments: int
    dark_seconds: float

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def measure(bed: TestBed, event_at: float, writes_before: int,
            report_before: dict[str, Any]) -> Failover:
    """The writes after ``event_at``, from the server's own records."""
    stats = bed.stats()
    writes = stats["writes"][writes_before:]
    last = max((bed.wall(write["at"]) for write in writes), default=event_at)
    report = stats["address_report"]
    return Failover(
        event_at=event_at,
        writes=len(writes),
        last_write_after=last - event_at,
        overlap_moments=report["overlap_moments"] - report_before["overlap_moments"],
        dark_seconds=report["dark_seconds"] - report_before["dark_seconds"],
    )

