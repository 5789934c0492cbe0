"""Logging set-up for the front ends: stderr always, syslog when no one is watching a terminal.

keepalived runs the hook with no terminal, so syslog (and so the journal) is
where an operator looks at 3 a.m.; priorities follow the Python levels.

A log call with ``extra=REPORTED`` says a line that the command's result on stdout repeats
(each change of ``apply``, each config warning of ``check``): on a terminal, where stdout
and stderr show together, stderr leaves it out (``-v`` keeps it), so each shows once.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys

__all__ = ["REPORTED", "setup_logging"]

SYSLOG_SOCKET = "/dev/log"
SYSLOG_ENV = "BONDHA_SYSLOG"  # "0" or "1" overrides the terminal guess (tests, containers)
REPORTED = {"reported": True}


def _not_reported(record: logging.LogRecord) -> bool:
    return not getattr(record, "reported", False)


def setup_logging(verbosity: int = 0, *, syslog: bool | None = None,
                  report_on_stdout: bool = False) -> None:
    """verbosity: -1 errors only, 0 info, 1 debug.

    ``syslog`` None means: as ``$BONDHA_SYSLOG`` says, else when stderr is no terminal.
    ``report_on_stdout``: the command prints a result that repeats its ``REPORTED`` lines.
    """
    level = {-1: logging.ERROR, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    logger = logging.getLogger("bondha")
    logger.setLevel(level)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter("bondha: %(levelname)s: %(message)s"))
    if report_on_stdout and verbosity <= 0 and _terminal(sys.stdout) and _terminal(sys.stderr):
        stderr.addFilter(_not_reported)
    logger.addHandler(stderr)
    if syslog is None:
        wanted = os.environ.get(SYSLOG_ENV, "").strip().lower()
        syslog = wanted in ("1", "yes", "true", "on") if wanted else not sys.stderr.isatty()
    if syslog and os.path.exists(SYSLOG_SOCKET):
        try:
            handler = logging.handlers.SysLogHandler(
                SYSLOG_SOCKET, facility=logging.handlers.SysLogHandler.LOG_DAEMON)
        except OSError:
            return  # no syslog daemon listening: stderr alone
        handler.setFormatter(logging.Formatter("bondha[%(process)d]: %(message)s"))
        logger.addHandler(handler)
    logger.propagate = False


def _terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
