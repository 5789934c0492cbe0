"""Where the commands' results go: stdout, one document or text; logs go to stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["emit", "print_json"]


def emit(text: str) -> None:
    """Results go to stdout (logs go to stderr), so ``--json`` output stays parseable."""
    sys.stdout.write(text + "\n")


def print_json(data: Any) -> None:
    emit(json.dumps(data, indent=2))
