"""A stand-in of the bonding software on one bonder: connected IPs and their hooks.

The real bonding software receives each routing-object change from the management server
over the management VPN, puts an enabled connected IP on its interface, removes a disabled
one, and runs the connected IP hooks around that (bonder-facts.md). This stand-in does the
same for tests, against a server that speaks the management API (the stand-in server of
:mod:`bondha.testing`, or a real one)::

    python -m bondha.testing.bonding --config swap-active-bond.conf --bond 1 \\
        --interface eth0 --hooks /etc/bonding/connectedip.d --push-delay 0.5

It polls ``/api/vN/bonds/BOND/connected_ips/`` every ``--poll`` seconds; a change it sees
takes effect ``--push-delay`` seconds later, changes in the order they were seen. Adding:
``ip addr add IP/LEN dev INTERFACE``, then every hook with ``start``. Removing: every hook
with ``stop``, then ``ip addr del``. Hooks: the executables of ``HOOKS/all/`` and then
those of ``HOOKS/<connected IP id>/`` or, when that folder does not exist,
``HOOKS/default/``, each sorted by name, run one after the other as this process's user
with ``ID``, ``BOND_ID``, ``IP``, ``NETMASK``, ``NETWORK``, ``INTERFACE``, ``AGG_ROUTING``
(and ``PATH``) in the environment, and at most ``--hook-timeout`` seconds each. SIGTERM is
``systemctl stop bonding``: every address it put on the interface is stopped and removed,
then it exits 0.

Limits, on purpose: every connected IP goes on the one ``--interface`` (the object's own
``interface`` field is not followed); the aggregator is not modelled (``AGG_ROUTING`` is
passed on as the object says, default ``auto``); the management VPN is one fixed push
delay, with no loss, no reordering and no retries held back by an unreachable node; an
unreachable server changes nothing (the bonder keeps what it has, as the real one does);
routes and CPE NAT IPs are not followed; no bond hooks.
"""

from __future__ import annotations

import argparse
import base64
import configparser
import ipaddress
import json
import logging
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

import attrs

__all__ = ["BondingStandIn", "ConnectedIp", "HookRun", "hook_environment", "hooks_for", "main",
           "read_account"]

log = logging.getLogger("bondha.testing.bonding")


@attrs.frozen
class ConnectedIp:
    """One connected IP of the bond, as the management server lists it."""

    id: int
    interface_address: ipaddress.IPv4Interface | ipaddress.IPv6Interface
    enabled: bool
    agg_routing: str = "auto"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConnectedIp:
        return cls(int(data["id"]), ipaddress.ip_interface(str(data["ip"]).strip()),
                   bool(data["enabled"]), str(data.get("agg_routing") or "auto"))


def hook_environment(bond_id: int, connected: ConnectedIp, interface: str) -> dict[str, str]:
    """The variables the bonding software documents for a connected IP hook."""
    address = connected.interface_address
    netmask = str(address.netmask) if address.version == 4 else str(address.network.prefixlen)
    return {"ID": str(connected.id), "BOND_ID": str(bond_id), "IP": str(address.ip),
            "NETMASK": netmask, "NETWORK": str(address.network.network_address),
            "INTERFACE": interface, "AGG_ROUTING": connected.agg_routing}


def hooks_for(hooks_dir: Path, object_id: int) -> list[Path]:
    """``all/`` then ``<id>/`` (or ``default/`` when there is no ``<id>/``), sorted by name."""

    def executables(folder: Path) -> list[Path]:
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.is_file() and os.access(p, os.X_OK))

    own = hooks_dir / str(object_id)
    return executables(hooks_dir / "all") + executables(own if own.is_dir()
                                                        else hooks_dir / "default")


@attrs.frozen
class HookRun:
    """One hook run, as written to the events file (one JSON object per line)."""

    at: float  # time.time() when it started
    hook: str
    action: str
    id: int
    ip: str
    code: int | None  # None: killed at the timeout
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.define
class _Pending:
    due: float
    connected: ConnectedIp


@attrs.define
class BondingStandIn:
    """Follows one bond's connected IPs on ``interface``; see the module's text."""

    api_root: str  # e.g. http://192.168.67.10:8080/api/v3/
    user: str
    password: str = attrs.field(repr=False)
    bond_id: int
    interface: str
    hooks_dir: Path
    poll: float = 0.2
    push_delay: float = 0.0
    hook_timeout: float = 30.0
    events: Path | None = None
    ssl_context: ssl.SSLContext | None = None
    ip_command: Callable[[Sequence[str]], None] | None = None
    held: dict[int, ConnectedIp] = attrs.Factory(dict)  # what it put on the interface
    _seen: dict[int, bool] = attrs.Factory(dict)
    _pending: list[_Pending] = attrs.Factory(list)
    _stopping: threading.Event = attrs.Factory(threading.Event)

    # --- the server ---------------------------------------------------------------------------

    def read(self) -> list[ConnectedIp]:
        """The bond's connected IPs (every page); OSError or ValueError when unreadable."""
        url: str | None = f"{self.api_root}bonds/{self.bond_id}/connected_ips/"
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        found: list[ConnectedIp] = []
        while url:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"not an http(s) URL: {url!r}")
            request = urllib.request.Request(  # noqa: S310 -- checked just above
                url, headers={"Authorization": f"Basic {token}"})
            with urllib.request.urlopen(  # noqa: S310
                    request, timeout=5, context=self.ssl_context) as answer:
                body = json.loads(answer.read())
            items = body["results"] if isinstance(body, dict) else body
            url = body.get("next") if isinstance(body, dict) else None
            found.extend(ConnectedIp.from_json(item) for item in items)
        return found

    def observe(self, now: float) -> bool:
        """One poll: queue each change of ``enabled`` to apply after the push delay.

        The first read is the configuration the bonding software starts with: no delay.
        False when the server could not be read.
        """
        try:
            listed = self.read()
        except (OSError, ValueError, KeyError) as exc:
            log.info("bonding stand-in: cannot read bond %d: %s", self.bond_id, exc)
            return False
        delay = self.push_delay if self._seen else 0.0
        for connected in listed:
            if self._seen.get(connected.id) != connected.enabled:
                self._seen[connected.id] = connected.enabled
                self._pending.append(_Pending(now + delay, connected))
        return True

    def apply_due(self, now: float) -> None:
        while self._pending and self._pending[0].due <= now:
            change = self._pending.pop(0).connected
            held = self.held.get(change.id)
            if change.enabled and held is None:
                self.add(change)
            elif not change.enabled and held is not None:
                self.remove(held)

    # --- the interface ------------------------------------------------------------------------

    def _ip(self, args: Sequence[str]) -> None:
        if self.ip_command is not None:
            self.ip_command(args)
            return
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10,
                              check=False)
        if done.returncode != 0 and "File exists" not in done.stderr:
            log.warning("bonding stand-in: ip %s: %s", " ".join(args), done.stderr.strip())

    def add(self, connected: ConnectedIp) -> None:
        self._ip(["addr", "add", str(connected.interface_address), "dev", self.interface])
        self.held[connected.id] = connected
        log.info("bonding stand-in: added %s (connected IP %d)", connected.interface_address,
                 connected.id)
        self.run_hooks("start", connected)

    def remove(self, connected: ConnectedIp) -> None:
        self.run_hooks("stop", connected)
        self._ip(["addr", "del", str(connected.interface_address), "dev", self.interface])
        del self.held[connected.id]
        log.info("bonding stand-in: removed %s (connected IP %d)", connected.interface_address,
                 connected.id)

    def run_hooks(self, action: str, connected: ConnectedIp) -> list[HookRun]:
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               **hook_environment(self.bond_id, connected, self.interface)}
        runs = []
        for hook in hooks_for(self.hooks_dir, connected.id):
            started, at = time.monotonic(), time.time()
            code: int | None
            try:
                done = subprocess.run([str(hook), action], env=env, capture_output=True,
                                      text=True, timeout=self.hook_timeout, check=False)
                code = done.returncode
                output = (done.stdout + done.stderr).strip()
            except subprocess.TimeoutExpired:
                code, output = None, f"killed after {self.hook_timeout:g} s"
            run = HookRun(at, hook.name, action, connected.id, str(connected.interface_address.ip),
                          code, time.monotonic() - started)
            level = logging.INFO if code == 0 else logging.WARNING
            log.log(level, "bonding stand-in: hook %s %s for %s: exit %s%s", hook, action,
                    connected.interface_address.ip, code, f" ({output})" if output else "")
            if self.events is not None:
                with self.events.open("a", encoding="utf-8") as stream:
                    stream.write(json.dumps(run.to_json()) + "\n")
            runs.append(run)
        return runs

    # --- running ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to stop (from a signal handler or another thread)."""
        self._stopping.set()

    def run(self, ready: Callable[[], None] | None = None) -> None:
        """Poll and apply until :meth:`stop`; then stop and remove every held address."""
        waiting = ready
        while not self._stopping.is_set():
            read = self.observe(time.monotonic())
            self.apply_due(time.monotonic())
            if read and waiting is not None:
                waiting()
                waiting = None
            self._stopping.wait(self._next_wait())
        self.shut_down()

    def _next_wait(self) -> float:
        if self._pending:
            return max(0.0, min(self.poll, self._pending[0].due - time.monotonic()))
        return self.poll

    def shut_down(self) -> None:
        """``systemctl stop bonding``: every held address stopped and removed."""
        for connected in list(self.held.values()):
            self.remove(connected)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bondha.testing.bonding",
        description="Stand in for the bonding software of one bonder: follow a bond's "
                    "connected IPs on the management server, put the enabled ones on an "
                    "interface, run connected IP hooks.",
        epilog="Exit codes: 0 stopped by SIGTERM/SIGINT (addresses removed), 2 bad arguments.")
    parser.add_argument("--config", type=Path, required=True,
                        help="a swap-active-bond.conf; only [bondingadmin] is read")
    parser.add_argument("--bond", type=int, required=True, help="the bond this bonder runs")
    parser.add_argument("--interface", required=True, help="where the connected IPs go")
    parser.add_argument("--hooks", type=Path, required=True,
                        help="the connectedip.d folder (all/, <id>/, default/)")
    parser.add_argument("--poll", type=float, default=0.2, help="seconds between reads")
    parser.add_argument("--push-delay", type=float, default=0.0,
                        help="seconds from a change on the server to the bonder applying it")
    parser.add_argument("--hook-timeout", type=float, default=30.0)
    parser.add_argument("--events", type=Path, help="append one JSON line per hook run here")
    parser.add_argument("--ready-file", type=Path,
                        help="touched once the first read has been applied")
    return parser


@attrs.frozen
class _Account:
    """The management server's address and account, from ``[bondingadmin]``."""

    api_root: str
    user: str
    password: str = attrs.field(repr=False)
    ssl_context: ssl.SSLContext | None


def read_account(path: Path) -> _Account:
    """``host``, ``user``, ``passwd`` (or ``passwd_file``), ``verify_ssl``, ``ca_bundle`` and
    ``api_version`` of ``[bondingadmin]``; ValueError names what is missing or wrong.

    Read with configparser, not with bondha's config parser: a stand-in must not lean on
    the code it tests (the real bonding software knows the server by other means).
    """
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with path.open(encoding="utf-8-sig") as file:
            parser.read_file(file)
    except (OSError, configparser.Error) as exc:
        raise ValueError(f"{path}: {exc}") from None
    if not parser.has_section("bondingadmin"):
        raise ValueError(f"{path}: no [bondingadmin] section")
    admin = parser["bondingadmin"]
    host, user = admin.get("host", "").strip(), admin.get("user", "").strip()
    password = admin.get("passwd", "")
    if not password and admin.get("passwd_file"):
        secret = Path(admin["passwd_file"].strip())
        secret = secret if secret.is_absolute() else path.parent / secret
        try:
            password = secret.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ValueError(f"{secret}: {exc.strerror or exc}") from None
    if not host or not user or not password:
        raise ValueError(f"{path}: [bondingadmin] needs host, user and passwd")
    base = (host if "://" in host else f"https://{host}").rstrip("/")
    version = admin.get("api_version", "3").strip().lower().removeprefix("v")
    if not version.isdigit():
        raise ValueError(f"{path}: [bondingadmin] api_version {version!r}: not a number")
    try:
        verify = admin.getboolean("verify_ssl", fallback=True)
    except ValueError:
        raise ValueError(f"{path}: [bondingadmin] verify_ssl: not a boolean") from None
    context = None
    if base.startswith("https:"):
        context = ssl.create_default_context(cafile=admin.get("ca_bundle") or None)
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    return _Account(f"{base}/api/v{int(version)}/", user, password, context)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        account = read_account(args.config)
    except ValueError as exc:
        print(f"bonding stand-in: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    standin = BondingStandIn(account.api_root, account.user, account.password, args.bond,
                             args.interface, args.hooks, poll=args.poll,
                             push_delay=args.push_delay, hook_timeout=args.hook_timeout,
                             events=args.events, ssl_context=account.ssl_context)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: standin.stop())
    standin.run(ready=args.ready_file.touch if args.ready_file else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
