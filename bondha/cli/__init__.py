"""The ``bondha`` command: :func:`main` parses, runs one command, returns its exit code.

Rooms: :mod:`.parser` (options, help, exit codes), :mod:`.commands` (one thin function per
command), :mod:`.output`, :mod:`.terminal` (colour, ``--watch``), :mod:`.demo` and
:mod:`.zipapp` (the single-file build's entry point).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from .parser import build_parser

__all__ = ["build_parser", "main", "run"]

log = logging.getLogger("bondha")

# What a Unix filter's exit status is when its reader went away (128 + SIGPIPE).
EXIT_STDOUT_CLOSED = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see EXIT_CODES)."""
    from ..log import setup_logging

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse's own usage errors already printed: exit 2
        return int(exc.code or 0)
    args.argv = argv[argv.index(args.command) + 1:]  # e.g. to record how a file was written
    setup_logging(args.verbosity, report_on_stdout=args.command in _REPORTS)
    try:
        code = run(args)
        sys.stdout.flush()  # inside the try: a reader gone shows here, not at exit
    except BrokenPipeError:
        return _stdout_closed()
    return code


# Commands whose result on stdout repeats their log lines (see bondha.log).
_REPORTS = frozenset({"plan", "apply", "check"})
# Commands that print no JSON document: --json with them is refused, not ignored.
_NO_JSON = frozenset({"keepalived-config", "daemon", "demo", "announce"})


def _stdout_closed() -> int:
    """The reader of stdout went away (``| head -1``): stop quietly, as a Unix filter does."""
    # Python would otherwise report the unflushed rest at exit: point stdout at nothing.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_STDOUT_CLOSED


def run(args: argparse.Namespace) -> int:
    """Call the command; every failure becomes one line on stderr and an exit code."""
    from ..errors import BondhaError, ConfigError

    try:
        if args.json and args.command in _NO_JSON:
            from ..errors import UsageError

            raise UsageError(f"--json: bondha {args.command} prints no JSON document; "
                             "leave --json out")
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
    except BrokenPipeError:
        raise  # the reader of stdout left: main() stops quietly
    except Exception as exc:  # a bug: still one line, never a traceback at 3 a.m.
        log.error("internal error (please report, run with -v for details): %s: %s",
                  type(exc).__name__, exc, exc_info=args.verbosity > 0)
        return 1
    return code

