"""Entry point of the single-file build (``scripts/build-zipapp``): one file, two commands.

Dropped at the old script's path (``/usr/local/bin/swap-active-bond.py``) or saved
as ``swap-active-bond``, the file is keepalived's notify hook, taking the same four
arguments; under any other name (``bondha``, ``bondha.pyz``) it is the ``bondha`` command.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from . import main as cli_main

__all__ = ["HOOK_NAMES", "main"]

HOOK_NAMES = frozenset({"swap-active-bond.py", "swap-active-bond"})


def main(argv: Sequence[str] | None = None) -> int:
    """``argv`` as ``sys.argv`` (the program name first); returns the exit code."""
    args = list(sys.argv if argv is None else argv)
    if os.path.basename(args[0]) in HOOK_NAMES:
        # keepalived appends the four event arguments to the notify line: what comes before
        # them (``--config PATH``) are bondha's global options, as for hooks/swap-active-bond.
        options, event = args[1:-4], args[1:][-4:]
        return cli_main([*options, "notify", *event])
    return cli_main(args[1:])
