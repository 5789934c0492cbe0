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
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .config import Config
    from .model import Role

__all__ = ["main"]

log = logging.getLogger("bondha")

EXIT_CODES = """\
exit codes:
  0  success: converged and verified, plan or status printed, nothing to do
  1  could not converge: API failure after retries, or verification mismatch
  2  usage or configuration error (nothing was read or written)
  3  refused before any write: authentication, permission, unknown id
"""

EXAMPLES = """\
examples:
  bondha check                               config, credentials and every id, no writes
  bondha plan --active backup                what a failover to the backup bond would do
  bondha apply --active master               make the master bond active and verify
  bondha --json status                       which bond has each floating address
  bondha notify INSTANCE VI_1 MASTER 10      what keepalived's notify runs
  bondha demo                                a failover against a built-in stand-in server
"""


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
    from .errors import ApplyError
    from .reconciler import reconcile

    config = _load(args)
    try:
        result = reconcile(config, role, dry_run=dry_run)
    except ApplyError as exc:
        result = exc.result
    if args.json:
        _print_json(result.plan.to_json() if dry_run else result.to_json())
    else:
        emit(result.render())
    return 0 if dry_run or result.converged else 1


def cmd_plan(args: argparse.Namespace) -> int:
    return _reconcile(args, _role(args), dry_run=True)


def cmd_apply(args: argparse.Namespace) -> int:
    return _reconcile(args, _role(args), dry_run=False)


def cmd_status(args: argparse.Namespace) -> int:
    from .reconciler import read_live
    from .status import STATUS_SCHEMA, address_status, render_status

    config = _load(args)
    rows = address_status(config.pair, read_live(config))
    if args.json:
        _print_json({"schema": STATUS_SCHEMA, "master_bond_id": config.pair.master.bond_id,
                     "backup_bond_id": config.pair.backup.bond_id,
                     "addresses": [r.to_json() for r in rows]})
    else:
        emit(render_status(config.pair, rows))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .access import check_access
    from .reconciler import read_live
    from .status import pair_findings

    config = _load(args)
    access = check_access(config)  # reads and OPTIONS only
    live = read_live(config)
    findings = [*config.warnings, *pair_findings(config.pair, live)]
    for ref in access.read_only:
        log.error("user %r may read but not change %s: a failover would fail there",
                  config.api.user, ref)
    code = 0 if access.ok else 3
    if args.json:
        _print_json({"schema": "bondha.check/1", "objects": len(live), "warnings": findings,
                     "password_source": config.api.password_source,
                     "access": access.to_json()})
    else:
        emit(f"config {config.source}: ok")
        emit(f"password from: {config.api.password_source}")
        emit(f"management server {config.api.base_url}: user {config.api.user!r} can read "
             f"all {len(live)} configured objects on bonds {config.pair.master.bond_id} "
             f"and {config.pair.backup.bond_id}")
        emit(access.render())
        for finding in findings:
            emit(f"warning: {finding}")
        if code:
            emit(f"check FAILED: {len(access.read_only)} objects cannot be changed")
        else:
            warned = len(findings) + len(access.warnings)
            plural = "" if warned == 1 else "s"
            emit("check passed" + (f" with {warned} warning{plural}" if warned else ""))
    return code


def cmd_notify(args: argparse.Namespace) -> int:
    from .keepalived import parse_notify_args, role_for

    event = parse_notify_args(args.event)
    role = role_for(event)
    if role is None:
        log.info("keepalived %s %s is %s (priority %d): this node makes no change",
                 event.type, event.name, event.state.value, event.priority)
        return 0
    log.info("keepalived %s %s is MASTER with priority %d: making the %s bond active",
             event.type, event.name, event.priority, role.value)
    return _reconcile(args, role, dry_run=False)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo()


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
    command("status", cmd_status, "show which bond has each floating address enabled",
            "bondha --json status")
    command("check", cmd_check, "check config, credentials, every configured id and what the "
            "account may do (reads and OPTIONS only, no writes)",
            "bondha --config /etc/bonding/swap-active-bond.conf check")
    notify = command("notify", cmd_notify,
                     "act on keepalived's notify arguments: MASTER with priority 10 activates "
                     "the master bond, any other priority the backup bond; other states "
                     "write nothing", "bondha notify INSTANCE VI_1 MASTER 10")
    # Taken as a whole and checked by parse_notify_args, so that odd arguments from keepalived
    # or a hand-written test get the notify-specific message.
    notify.add_argument("event", nargs=argparse.REMAINDER, metavar="TYPE NAME STATE PRIORITY")
    command("demo", cmd_demo, "fail over and back against a built-in stand-in server",
            "bondha demo")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see EXIT_CODES)."""
    from .log import setup_logging

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse's own usage errors already printed: exit 2
        return int(exc.code or 0)
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
