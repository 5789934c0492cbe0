"""The ``bondha`` command line: its options, help and exit codes, with no heavy import.

Building it loads argparse and the thin command functions only (each imports what it needs
when it runs), so that ``--help`` and a non-MASTER notify stay fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from .commands import (
    cmd_announce,
    cmd_apply,
    cmd_check,
    cmd_daemon,
    cmd_demo,
    cmd_discover,
    cmd_keepalived_config,
    cmd_notify,
    cmd_plan,
    cmd_status,
)

__all__ = ["EXAMPLES", "EXIT_CODES", "KEEPALIVED_STATES", "build_parser"]

EXIT_CODES = """\
exit codes:
  0  success: converged and verified, plan or status printed, nothing to do,
     or superseded by a newer keepalived event (which owns the outcome)
  1  could not converge: API failure after retries, or verification mismatch
  2  usage or configuration error (nothing was read or written)
  3  refused before any write: authentication, permission, unknown id
  141  stdout was closed early (e.g. `bondha check | head -1`): nothing more printed
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
    from ..discover import parse_kinds

    try:
        return parse_kinds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _address(text: str) -> str:
    from ..discover import parse_address

    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The options of every command, before the command or after it.

    After it (``bondha status --json``) they are added again with no default, so that a
    command's own parser never undoes what was given before the command.
    """
    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--config", metavar="PATH", default=default(None),
                        help="config file (default: $BONDHA_CONFIG, else "
                             "/etc/bonding/swap-active-bond.conf)")
    parser.add_argument("--json", action="store_true", default=default(False),
                        help="machine-readable output on stdout")
    parser.add_argument("-v", "--verbose", action="store_const", const=1, default=default(0),
                        dest="verbosity", help="debug logs")
    parser.add_argument("-q", "--quiet", action="store_const", const=-1, dest="verbosity",
                        default=default(0), help="errors only")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="bondha",
        description="Keep a pair of bonders highly available: enable the floating connected "
                    "IPs, routes and CPE NAT IPs on the active bond, disable them on the other.",
        epilog=EXAMPLES + "\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _global_options(parser, defaults=True)
    parser.add_argument("--version", action="version", version=f"bondha {__version__}",
                        help="print the version and exit (to compare the two bonders)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, func: Callable[[argparse.Namespace], int], help_text: str,
                example: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text,
                                  epilog=f"example:\n  {example}\n\n{EXIT_CODES}",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        _global_options(sub, defaults=False)
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
    discover.add_argument("--master-bond", type=_positive, metavar="ID",
                          help="the master bonder's bond (default: [bond] master_bond_id)")
    discover.add_argument("--backup-bond", type=_positive, metavar="ID",
                          help="the backup bonder's bond (default: [bond] backup_bond_id)")
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
    from ..keepalived.install import DEFAULT_HOOK, DEFAULT_SCRIPT_USER, DEFAULT_TRACK_SCRIPT

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

