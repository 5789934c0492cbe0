"""Where the commands' results go: stdout, one document or text; logs go to stderr."""

from __future__ import annotations

import json
import math
import sys
from json.encoder import encode_basestring_ascii
from typing import Any, Callable

__all__ = ["dumps", "emit", "print_json"]


def emit(text: str) -> None:
    """Results go to stdout (logs go to stderr), so ``--json`` output stays parseable."""
    sys.stdout.write(text + "\n")


def print_json(data: Any) -> None:
    emit(dumps(data))


def dumps(data: Any) -> str:
    """``json.dumps(data, indent=2)``, character for character, with ~40 % less CPU.

    With ``indent`` the standard library encodes in Python, one generator per level of
    nesting, and never in C: a 600-address failover's ``--json`` document (1.4 MB) took
    about as much CPU as all of its planning. Here one call per container, the strings
    escaped by the standard library's own C function. Anything but dicts with string keys,
    lists, tuples, strings, numbers, booleans and None (or a circular document) goes to
    ``json.dumps`` itself, for its exact output or error.
    """
    try:
        return _encode(data, "\n")
    except (_Unusual, RecursionError):
        return json.dumps(data, indent=2)


class _Unusual(Exception):
    """A value this encoder leaves to ``json.dumps``."""


def _number(value: float) -> str:
    if math.isnan(value):  # as json writes them (allow_nan)
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _boolean(value: bool) -> str:
    return "true" if value else "false"


def _null(value: None) -> str:
    return "null"


# By exact type: a subclass (an IntEnum, a str enum) takes the slower path, as json does.
_SCALARS: dict[type, Callable[[Any], str]] = {
    str: encode_basestring_ascii, int: int.__repr__, float: _number, bool: _boolean,
    type(None): _null}


def _encode(value: Any, newline: str) -> str:
    scalar = _SCALARS.get(type(value))
    if scalar is not None:
        return scalar(value)
    inner = newline + "  "
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = []
        for key, item in value.items():
            if type(key) is not str:
                raise _Unusual
            scalar = _SCALARS.get(type(item))
            items.append(f"{encode_basestring_ascii(key)}: "
                         f"{scalar(item) if scalar is not None else _encode(item, inner)}")
        return "{" + inner + ("," + inner).join(items) + newline + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        return "[" + inner + ("," + inner).join([_encode(item, inner) for item in value]) \
            + newline + "]"
    return _subclassed(value)


def _subclassed(value: Any) -> str:
    """A scalar of a subclass (a str or int enum), encoded as json encodes its base."""
    for base in (str, int, float):
        if isinstance(value, base):
            return _SCALARS[base](value)
    raise _Unusual
