"""One thin function per ``bondha`` command: parse, call one library function, print, exit code.

Imports beyond argparse happen inside the commands, so that ``--help`` and the notify
hook's non-MASTER events stay fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Callable

from .output import emit, print_json

if TYPE_CHECKING:
    from ..config import Config
    from ..model import Role
    from ..result import Result
    from ..status import NodeState

__all__ = ["cmd_announce", "cmd_apply", "cmd_check", "cmd_daemon", "cmd_demo", "cmd_discover",
           "cmd_keepalived_config", "cmd_notify", "cmd_plan", "cmd_status"]

# Run by hand, before or instead of a failover: these refuse a password file others can read.
# notify and status run during an outage: they log the same problem and go on.
_REFUSE_LOOSE_SECRETS = frozenset({"check", "plan", "apply"})


def _load(args: argparse.Namespace) -> Config:
    from ..config import config_path, load_config
    from ..config.load import checked

    return checked(load_config(config_path(args.config)),
                   refuse_loose_secrets=args.command in _REFUSE_LOOSE_SECRETS,
                   warnings_reported=args.command == "check")


def _role(args: argparse.Namespace) -> Role:
    from ..model import Role

    return Role(args.active)


def _reconcile(args: argparse.Namespace, role: Role, *, dry_run: bool) -> int:
    from ..reconciler import reconcile

    config = _load(args)
    return _report(args, lambda: reconcile(config, role, dry_run=dry_run), dry_run=dry_run)


def _report(args: argparse.Namespace, work: Callable[[], Result | None], *,
            dry_run: bool) -> int:
    """Print what ``work`` did; 0 when it converged, was superseded by a newer event, or
    had nothing to do (None: a keepalived event that asks for no write)."""
    from ..errors import ApplyError

    try:
        result = work()
    except ApplyError as exc:
        result = exc.result
    if result is None:
        return 0
    if args.json:
        print_json(result.plan.to_json() if dry_run else result.to_json())
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
    from ..errors import UsageError
    from ..keepalived.events import State
    from ..node.history import recorded_node_state
    from ..node.statedir import state_dir_of
    from ..status import NodeState

    if args.keepalived_state is None:
        if args.priority is not None:
            raise UsageError("status: --priority needs --keepalived-state")
        return recorded_node_state(state_dir_of(config))
    if args.priority is None:
        raise UsageError("status: --keepalived-state needs --priority (10 on the master "
                         "bonder, 1 to 9 on the backup bonder)")
    return NodeState(State(args.keepalived_state), args.priority)


def cmd_status(args: argparse.Namespace) -> int:
    from ..reconciler import read_live
    from ..status import address_status, render_status, status_to_json
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
    from ..node.history import local_status
    from ..node.statedir import state_dir_of

    view = local_status(state_dir_of(config), args.last)
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
    from ..check import check, check_keepalived

    config = _load(args)
    keepalived = check_keepalived(args.keepalived, config) if args.keepalived else None
    if keepalived is not None and not args.json:
        # Before the server is asked: an unreachable server must not hide them.
        for line in keepalived.lines():
            emit(line)
    report = check(config, keepalived)
    if args.json:
        print_json(report.to_json())
    else:
        emit(report.render())
    return report.exit_code


def cmd_keepalived_config(args: argparse.Namespace) -> int:
    from ..config import DEFAULT_CONFIG_PATH, config_path
    from ..keepalived.render import KeepalivedSettings, render_keepalived_conf
    from ..model import Role

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
    from ..config import config_path
    from ..survey import survey

    recorded = " ".join(["bondha discover", *(a for a in args.argv if a != "--write")])
    result = survey(config_path(args.config), args.master_bond, args.backup_bond,
                    kinds=args.kinds, include=args.include, exclude=args.exclude,
                    command=recorded, write=args.write)
    if args.json:
        print_json({**result.found.to_json(), "written": result.written})
    else:
        emit(result.found.render())
    return 0


def cmd_notify(args: argparse.Namespace) -> int:
    from ..keepalived.events import parse_notify_args
    from ..node.transition import notify

    event = parse_notify_args(args.event)
    config = _load(args)
    return _report(args, lambda: notify(config, event), dry_run=False)


def cmd_daemon(args: argparse.Namespace) -> int:
    from ..config import config_path
    from ..node.daemon import run_daemon

    return run_daemon(config_path(args.config), args.fifo)


def cmd_announce(args: argparse.Namespace) -> int:
    from ..node.announce import announce_by_hand

    emit(announce_by_hand(args.interface, args.address, args.config))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo()

