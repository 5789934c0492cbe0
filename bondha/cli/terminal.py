"""What the command line needs from a terminal: whether to colour, and refreshing in place."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Callable, TextIO

from ..errors import ApiError

__all__ = ["MAX_WATCH_SECONDS", "MIN_WATCH_SECONDS", "use_colour", "watch"]

MIN_WATCH_SECONDS = 1.0  # every refresh reads every object: spare the management server
MAX_WATCH_SECONDS = 3600.0
_CLEAR = "\x1b[H\x1b[2J"


def use_colour(stream: TextIO, environ: Mapping[str, str] = os.environ) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (no-color.org)."""
    if environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _error_line(exc: ApiError) -> str:
    return f"cannot read the pair: {exc}"


def watch(render: Callable[[], str], seconds: float, out: TextIO, *, count: int | None = None,
          clear: bool = False, header: bool = True,
          on_error: Callable[[ApiError], str] = _error_line,
          sleep: Callable[[float], None] = time.sleep) -> int:
    """Print ``render()`` every ``seconds``, ``count`` times or until Ctrl-C; returns 0.

    On a terminal (``clear``) each refresh replaces the last; elsewhere they follow each
    other (without ``header``: one line each, as JSON Lines). A refresh the server fails
    shows ``on_error(exc)`` and the watch goes on: a failover is exactly when the server
    may be slow, and when an operator is watching.
    """
    done = 0
    try:
        while count is None or done < count:
            stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
            try:
                body = render()
            except ApiError as exc:
                body = on_error(exc)
            if header:
                prefix = _CLEAR if clear else ("\n" if done else "")
                body = f"{prefix}every {seconds:g}s, {stamp} (Ctrl-C stops)\n{body}"
            out.write(body + "\n")
            out.flush()
            done += 1
            if count is None or done < count:
                sleep(seconds)
    except KeyboardInterrupt:
        out.write("\n")
    return 0
