"""The ``bondha`` command: parse, call one library function, print, return an exit code.

Imports beyond argparse happen inside the commands, so that ``--help`` and
the notify hook's non-MASTER events stay fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .config import Config
    from .model import Role
    from .reconciler import Result
    from .status import NodeState

__all__ = ["main"]

log = logging.getLogger("bondha")

EXIT_CODES = """\
exit codes:
  0  success: converged and verified, plan or status printed, nothing to do,
     or superseded by a newer keepalived event (which owns the outcome)
  1  could not converge: API failure after retries, or verification mismatch
  2  usage or configuration error (nothing was read or written)
  3  refused before any write: authentication, permission, unknown id
"""

EXAMPLES = """\
examples:
  bondha check                               config, credentials and every id, no writes
  bondha plan --active backup                what a failover to the backup bond would do
  bondha apply --active master               make the master bond active and verify
  bondha status --watch 2                    which bond has each floating address, live
  bondha --json status                       the same for automation (bondha.status/2)
  bondha status --local --last 20            this node's last transitions and reconciles
  bondha discover --master-bond 1 --backup-bond 3 --write
                                             find the floating pairs, write [bond]
  bondha check --keepalived /etc/keepalived/keepalived.conf
                                             also the keepalived.conf of this bonder
  bondha keepalived-config --role master --interface eth1 --src 192.168.66.1 \\
      --peer 192.168.66.2 --auth-pass horsebat   the keepalived.conf the docs describe
  bondha notify INSTANCE VI_1 MASTER 10      what keepalived's notify runs
  bondha daemon --fifo /run/bondha/notify.fifo   follow keepalived's notify_fifo, repair drift
  bondha demo                                a failover against a built-in stand-in server
  bondha announce --interface eth1 203.0.113.1   gratuitous ARP for an address here, now
"""


# The values of keepalived.State, spelled out so that building the parser imports nothing.
KEEPALIVED_STATES = ("MASTER", "BACKUP", "FAULT", "STOP")


def emit(text: str) -> None:
    """Results go to stdout (logs go to stderr), so ``--json`` output stays parseable."""
    sys.stdout.write(text + "\n")


def _print_json(data: Any) -> None:
    emit(json.dumps(data, indent=2))


# Run by hand, before or instead of a failover: these refuse a password file others can read.
# notify and status run during an outage: they log the same problem and go on.
_REFUSE_LOOSE_SECRETS = frozenset({"check", "plan", "apply"})


def _load(args: argparse.Namespace) -> Config:
    from .config import config_path, load_config
    from .credentials import guard_secret_files

    config = load_config(config_path(args.config))
    for warning in config.warnings:
        log.warning("%s", warning)
    guard_secret_files(config, refuse=args.command in _REFUSE_LOOSE_SECRETS)
    return config


def _role(args: argparse.Namespace) -> Role:
    from .model import Role

    return Role(args.active)


def _reconcile(args: argparse.Namespace, role: Role, *, dry_run: bool) -> int:
    from .reconciler import reconcile

    config = _load(args)
    return _report(args, lambda: reconcile(config, role, dry_run=dry_run), dry_run=dry_run)


def _report(args: argparse.Namespace, work: Callable[[], Result | None], *,
            dry_run: bool) -> int:
    """Print what ``work`` did; 0 when it converged, was superseded by a newer event, or
    had nothing to do (None: a keepalived event that asks for no write)."""
    from .errors import ApplyError

    try:
        result = work()
    except ApplyError as exc:
        result = exc.result
    if result is None:
        return 0
    if args.json:
        _print_json(result.plan.to_json() if dry_run else result.to_json())
    else:
        emit(result.render())
    return 0 if dry_run or result.converged or result.superseded else 1


def cmd_plan(args: argparse.Namespace) -> int:
    return _reconcile(args, _role(args), dry_run=True)


def cmd_apply(args: argparse.Namespace) -> int:
    return _reconcile(args, _role(args), dry_run=False)


def _node_state(args: argparse.Namespace, config: Config) -> NodeState | None:
    """This node's keepalived state: ``--keepalived-state``/``--priority``, else the last
    event the hook or the daemon recorded in the state directory, if any."""
    from .errors import UsageError
    from .keepalived import State
    from .local import recorded_node_state
    from .statedir import state_dir_path
    from .status import NodeState

    if args.keepalived_state is None:
        if args.priority is not None:
            raise UsageError("status: --priority needs --keepalived-state")
        return recorded_node_state(state_dir_path(config.ha.state_dir))
    if args.priority is None:
        raise UsageError("status: --keepalived-state needs --priority (10 on the master "
                         "bonder, 1 to 9 on the backup bonder)")
    return NodeState(State(args.keepalived_state), args.priority)


def cmd_status(args: argparse.Namespace) -> int:
    from .reconciler import read_live
    from .status import address_status, render_status, status_to_json
    from .terminal import use_colour

    config = _load(args)
    if args.local:
        return _watch_or_once(args, lambda: _local(args, config))
    node = _node_state(args, config)
    colour = use_colour(sys.stdout)

    def once() -> str:
        rows = address_status(config.pair, read_live(config), node)
        if args.json:
            return json.dumps(status_to_json(config.pair, rows, node),
                              indent=None if args.watch else 2)
        return render_status(config.pair, rows, node=node, colour=colour)

    return _watch_or_once(args, once)


def _local(args: argparse.Namespace, config: Config) -> str:
    """``status --local``: this node's state directory; reads no server."""
    from .local import local_status
    from .statedir import state_dir_path

    view = local_status(state_dir_path(config.ha.state_dir), args.last)
    if args.json:
        return json.dumps(view.to_json(), indent=None if args.watch else 2)
    return view.render()


def _watch_or_once(args: argparse.Namespace, once: Callable[[], str]) -> int:
    from .terminal import watch

    if args.watch is None:
        emit(once())
        return 0
    on_terminal = sys.stdout.isatty()  # refresh in place there, also with NO_COLOR
    return watch(once, args.watch, sys.stdout, count=args.count,
                 clear=on_terminal and not args.json,
                 header=not args.json,
                 on_error=lambda exc: json.dumps({"schema": "bondha.error/1", "error": str(exc)})
                 if args.json else f"cannot read the pair: {exc}")


def cmd_check(args: argparse.Namespace) -> int:
    from .access import check_access
    from .reconciler import read_live
    from .status import pair_findings

    config = _load(args)
    keepalived = _check_keepalived(args, config)
    if not args.json:  # before the server is asked: an unreachable server must not hide them
        for line in keepalived:
            emit(line)
    access = check_access(config)  # reads and OPTIONS only
    live = read_live(config)
    findings = [*config.warnings, *pair_findings(config.pair, live)]
    for ref in access.read_only:
        log.error("user %r may read but not change %s: a failover would fail there",
                  config.api.user, ref)
    keepalived_broken = any(": error: " in line for line in keepalived)
    code = 3 if not access.ok else 2 if keepalived_broken else 0
    if args.json:
        _print_json({"schema": "bondha.check/1", "objects": len(live), "warnings": findings,
                     "password_source": config.api.password_source,
                     "access": access.to_json(),
                     **({"keepalived": keepalived} if args.keepalived else {})})
    else:
        emit(f"config {config.source}: ok")
        emit(f"password from: {config.api.password_source}")
        emit(f"management server {config.api.base_url}: user {config.api.user!r} can read "
             f"all {len(live)} configured objects on bonds {config.pair.master.bond_id} "
             f"and {config.pair.backup.bond_id}")
        emit(access.render())
        for finding in findings:
            emit(f"warning: {finding}")
        if not access.ok:
            emit(f"check FAILED: {len(access.read_only)} objects cannot be changed")
        elif keepalived_broken:
            emit(f"check failed: {args.keepalived} breaks the pair")
        else:
            warned = len(findings) + len(access.warnings)
            plural = "" if warned == 1 else "s"
            emit("check passed" + (f" with {warned} warning{plural}" if warned else ""))
    return code

def _check_keepalived(args: argparse.Namespace, config: Config) -> list[str]:
    """``check --keepalived PATH``: one line per finding, ``PATH, line N: LEVEL: ...``."""
    if not args.keepalived:
        return []
    from .keepalived_conf import check_keepalived_file

    fifo = config.ha.notify_fifo
    findings = check_keepalived_file(args.keepalived, config_path=str(config.source),
                                     fifo=None if fifo is None else str(fifo))
    return [finding.render(args.keepalived) for finding in findings] or [
        f"keepalived {args.keepalived}: ok"]


def cmd_keepalived_config(args: argparse.Namespace) -> int:
    from .config import DEFAULT_CONFIG_PATH, config_path
    from .keepalived_conf import KeepalivedSettings, render_keepalived_conf
    from .model import Role

    # The pair's config must be valid before keepalived is told to run bondha; its
    # [bondha] notify_fifo, if set, is where keepalived must write.
    config = _load(args)
    path = config_path(args.config)
    fifo = args.fifo or (str(config.ha.notify_fifo) if config.ha.notify_fifo else None)
    settings = KeepalivedSettings.create(
        Role(args.role), args.interface, args.src, args.peer, args.auth_pass,
        priority=args.priority, router_id=args.router_id, instance=args.instance,
        advert_int=args.advert_int, track_script=args.track_script or None, hook=args.hook,
        config_path=None if path == DEFAULT_CONFIG_PATH else str(path.absolute()),
        fifo=fifo, script_user=args.script_user, vrrp_version=args.vrrp_version)
    emit(render_keepalived_conf(settings).rstrip("\n"))
    return 0


def cmd_discover(args: argparse.Namespace) -> int:
    from .config import config_path, load_api_settings
    from .discover import check_bonds, discover
    from .inifile import write_with_backup
    from .reconciler import read_bonds

    check_bonds(args.master_bond, args.backup_bond)
    path = config_path(args.config)
    api = load_api_settings(path)
    bonds = (args.master_bond, args.backup_bond)
    recorded = " ".join(["bondha discover", *(a for a in args.argv if a != "--write")])
    found = discover(*bonds, read_bonds(api, bonds, args.kinds), kinds=args.kinds,
                     include=args.include, exclude=args.exclude, command=recorded)
    written: dict[str, str | None] | None = None
    if args.write:
        text = found.config_text(path.read_text(encoding="utf-8"), path)
        backup = write_with_backup(path, text)
        written = {"path": str(path), "backup": str(backup) if backup else None}
        log.info("wrote [bond] to %s (old file kept as %s)", path, backup)
    if args.json:
        _print_json({**found.to_json(), "written": written})
    else:
        emit(found.render())
    return 0


def cmd_notify(args: argparse.Namespace) -> int:
    from .keepalived import parse_notify_args
    from .transition import notify

    event = parse_notify_args(args.event)
    config = _load(args)
    return _report(args, lambda: notify(config, event), dry_run=False)


def cmd_daemon(args: argparse.Namespace) -> int:
    from .config import config_path
    from .daemon import run_daemon

    return run_daemon(config_path(args.config), args.fifo)


def cmd_announce(args: argparse.Namespace) -> int:
    from .node.announce import announce_by_hand

    emit(announce_by_hand(args.interface, args.address, args.config))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo()


def _number(text: str, low: float, high: float, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{what} must be from {low:g} to {high:g}, not {text}")
    return value


def _watch_seconds(text: str) -> float:
    from .terminal import MAX_WATCH_SECONDS, MIN_WATCH_SECONDS

    return _number(text, MIN_WATCH_SECONDS, MAX_WATCH_SECONDS, "SECONDS")


def _priority(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 0 to 255")
    return int(_number(text, 0, 255, "the priority"))


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def _kinds(text: str) -> tuple[Any, ...]:
    from .discover import parse_kinds

    try:
        return parse_kinds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _address(text: str) -> str:
    from .discover import parse_address

    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bondha",
        description="Keep a pair of bonders highly available: enable the floating connected "
                    "IPs, routes and CPE NAT IPs on the active bond, disable them on the other.",
        epilog=EXAMPLES + "\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="PATH",
                        help="config file (default: $BONDHA_CONFIG, else "
                             "/etc/bonding/swap-active-bond.conf)")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument("-v", "--verbose", action="store_const", const=1, default=0,
                        dest="verbosity", help="debug logs")
    parser.add_argument("-q", "--quiet", action="store_const", const=-1, dest="verbosity",
                        help="errors only")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, func: Callable[[argparse.Namespace], int], help_text: str,
                example: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text,
                                  epilog=f"example:\n  {example}\n\n{EXIT_CODES}",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(func=func)
        return sub

    for name, func, verb in (("plan", cmd_plan, "print the writes that would make"),
                             ("apply", cmd_apply, "make")):
        sub = command(name, func, f"{verb} one bond active" + (
            " (never writes)" if name == "plan" else ", then read back and verify"),
            f"bondha {name} --active backup")
        sub.add_argument("--active", required=True, choices=["master", "backup"],
                         help="the bond that should carry the floating addresses")
    status = command("status", cmd_status,
                     "show which bond has each floating address enabled, one row per address, "
                     "with a verdict: ok, OVERLAP (both bonds), DARK (neither), UNPAIRED (one "
                     "bond only), WRONG BOND (not the bond this node's keepalived state says)",
                     "bondha status --keepalived-state MASTER --priority 10 --watch 2")
    status.add_argument("--keepalived-state", choices=KEEPALIVED_STATES,
                        type=str.upper, metavar="STATE",
                        help="this node's keepalived state (MASTER, BACKUP, FAULT, STOP), "
                             "to flag addresses live on the other bond")
    status.add_argument("--priority", type=_priority, metavar="N",
                        help="this node's keepalived priority (10 marks the master bonder)")
    status.add_argument("--watch", type=_watch_seconds, metavar="SECONDS",
                        help="refresh every SECONDS (1 to 3600) until Ctrl-C; with --json, "
                             "one JSON document per line")
    status.add_argument("--count", type=_positive, metavar="N",
                        help="with --watch: stop after N refreshes")
    status.add_argument("--local", action="store_true",
                        help="read no server: this node's last keepalived event and the last "
                             "transitions and reconciles the hook and the daemon recorded")
    status.add_argument("--last", type=_positive, metavar="N", default=10,
                        help="with --local: how many records (default %(default)s)")
    check = command("check", cmd_check,
                    "check config, credentials, every configured id and what the account may "
                    "do (reads and OPTIONS only, no writes)",
                    "bondha --config /etc/bonding/swap-active-bond.conf check")
    check.add_argument("--keepalived", metavar="PATH",
                       help="also check this keepalived.conf for mistakes that break the "
                            "pair (exit code 2 if it has any)")
    discover = command(
        "discover", cmd_discover,
        "read every connected IP, route and CPE NAT IP of two bonds, pair them by address "
        "and print a ready [bond] section (needs only [bondingadmin] in the config)",
        "bondha discover --master-bond 1 --backup-bond 3 --exclude 192.168.66.0/30 --write")
    discover.add_argument("--master-bond", required=True, type=_positive, metavar="ID",
                          help="the master bonder's bond")
    discover.add_argument("--backup-bond", required=True, type=_positive, metavar="ID",
                          help="the backup bonder's bond")
    discover.add_argument("--kinds", type=_kinds, metavar="KIND,...",
                          default="connected_ips,routes,cpe_nat_ips",
                          help="which kinds float (default: connected_ips,routes,cpe_nat_ips)")
    discover.add_argument("--include", action="append", type=_address, default=[],
                          metavar="ADDR", help="float only this address (repeatable); an IP "
                          "matches at any prefix length, IP/LEN only exactly")
    discover.add_argument("--exclude", action="append", type=_address, default=[],
                          metavar="ADDR", help="never float this address (repeatable)")
    discover.add_argument("--write", action="store_true",
                          help="put the section into the config file, keeping the rest and "
                               "the comments (old file kept as PATH.bak-TIMESTAMP, mode 0600)")
    _keepalived_config_parser(command("keepalived-config", cmd_keepalived_config,
        "print the keepalived.conf of one bonder (notify hook, or vrrp_notify_fifo)",
        "bondha keepalived-config --role master --interface eth1 --src 192.168.66.1 "
        "--peer 192.168.66.2 --auth-pass horsebat"))
    notify = command("notify", cmd_notify,
                     "act on keepalived's notify arguments: MASTER with priority 10 activates "
                     "the master bond, any other priority the backup bond; other states "
                     "write nothing", "bondha notify INSTANCE VI_1 MASTER 10")
    # Taken as a whole and checked by parse_notify_args, so that odd arguments from keepalived
    # or a hand-written test get the notify-specific message.
    notify.add_argument("event", nargs=argparse.REMAINDER, metavar="TYPE NAME STATE PRIORITY")
    daemon = command("daemon", cmd_daemon,
                     "follow keepalived's notify_fifo in the foreground: apply each transition "
                     "at once and, while MASTER, repair drift every [bondha] reconcile_interval "
                     "seconds; SIGTERM stops (exit 0), SIGHUP reloads the config",
                     "bondha daemon --fifo /run/bondha/notify.fifo")
    daemon.add_argument("--fifo", metavar="PATH", type=Path,
                        help="the FIFO keepalived writes to (global_defs notify_fifo); "
                             "default [bondha] notify_fifo; created (mode 0600) if absent")
    announce = command(
        "announce", cmd_announce,
        "tell the LAN that ADDRESS lives here: gratuitous ARP (IPv4) or unsolicited neighbour "
        "advertisement (IPv6) on IF, by [bondha] announce_* of the config if it exists, in "
        "the foreground; refused for an address that is not on IF (needs root)",
        "bondha announce --interface eth1 203.0.113.1")
    announce.add_argument("--interface", required=True, metavar="IF",
                          help="the interface the addresses are on")
    announce.add_argument("address", nargs="+", metavar="ADDRESS")
    command("demo", cmd_demo, "fail over and back against a built-in stand-in server",
            "bondha demo")
    return parser


def _keepalived_config_parser(sub: argparse.ArgumentParser) -> None:
    from .keepalived import DEFAULT_HOOK, DEFAULT_SCRIPT_USER, DEFAULT_TRACK_SCRIPT

    sub.add_argument("--role", required=True, choices=["master", "backup"],
                     help="which bonder this file is for")
    sub.add_argument("--interface", required=True, help="the interface of the private IP")
    sub.add_argument("--src", required=True, metavar="IP", help="this bonder's private IP")
    sub.add_argument("--peer", required=True, metavar="IP", help="the other bonder's private IP")
    sub.add_argument("--auth-pass", default="", metavar="PASS",
                     help="VRRP password, the same on both bonders (at most 8 characters); "
                          "required with VRRPv2, refused with v3 (which has none)")
    sub.add_argument("--priority", type=int,
                     help="10 on the master (the default); 1 to 9 on the backup (default 9)")
    sub.add_argument("--router-id", type=int, default=2,
                     help="virtual_router_id, the same on both (default %(default)s)")
    sub.add_argument("--instance", default="VI_1", help="vrrp_instance name (default %(default)s)")
    sub.add_argument("--advert-int", type=float, default=1.0,
                     help="seconds between adverts (default %(default)g); below 1 s, e.g. "
                          "0.2, takes VRRPv3 and a dead master is noticed in under 1 s")
    sub.add_argument("--vrrp-version", type=int, choices=[2, 3],
                     help="default: 3 for a sub-second --advert-int, else 2")
    sub.add_argument("--track-script", default=DEFAULT_TRACK_SCRIPT, metavar="COMMAND",
                     help="health check; '' for none (default %(default)r)")
    sub.add_argument("--hook", default=DEFAULT_HOOK, metavar="PATH",
                     help="where the notify hook is installed (default %(default)s)")
    sub.add_argument("--fifo", metavar="PATH",
                     help="write events to this FIFO for `bondha daemon` instead of running "
                          "the hook (default: [bondha] notify_fifo of the config, if set)")
    sub.add_argument("--script-user", default=DEFAULT_SCRIPT_USER, metavar="USER",
                     help="user keepalived runs the hook as; it must be able to read the "
                          "config (default %(default)s)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see EXIT_CODES)."""
    from .log import setup_logging

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse's own usage errors already printed: exit 2
        return int(exc.code or 0)
    args.argv = argv[argv.index(args.command) + 1:]  # e.g. to record how a file was written
    setup_logging(args.verbosity)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Call the command; every failure becomes one line on stderr and an exit code."""
    from .errors import BondhaError, ConfigError

    try:
        code: int = args.func(args)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("%s", problem)
        return exc.exit_code
    except BondhaError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as exc:  # a bug: still one line, never a traceback at 3 a.m.
        log.error("internal error (please report, run with -v for details): %s: %s",
                  type(exc).__name__, exc, exc_info=args.verbosity > 0)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
