"""Text from elsewhere, made safe to show: control characters escaped, length bounded.

A management server's error message, an object's address, keepalived's notify arguments and
a line of the notify FIFO are not ours: shown raw, ``ESC [ 2 J`` clears the operator's
terminal, an OSC sequence retitles it, a C1 ``0x9b`` starts a sequence on terminals that
take 8-bit controls, and a newline forges a log line. Every such text goes through
:func:`printable` before it reaches a terminal, stderr, syslog or a rendered view.

Pure: no I/O.
"""

from __future__ import annotations

import unicodedata

__all__ = ["bounded", "printable"]

# Categories whose characters change what a terminal or a log shows rather than being shown:
# Cc (C0, DEL, C1), Cf (bidirectional overrides, zero-width joiners), Zl/Zp (line and
# paragraph separators: a line break to some readers), Cs (lone surrogates), Co, Cn.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every control or formatting character written as an escape (``\\e``,
    ``\\n``, ``\\x9b``, ``\\u202e``); other text, backslashes included, unchanged.

    ASCII text without controls (the usual case) is returned as it is, at no cost beyond a
    scan.
    """
    if text.isascii() and text.isprintable():
        return text
    return "".join(_escape(c) if unicodedata.category(c) in _HIDDEN and c != " " else c
                   for c in text)


def bounded(text: str, limit: int = 200) -> str:
    """:func:`printable`, cut to at most ``limit`` characters of the original (``...`` marks
    a cut): for quoting a prefix of something that may be huge."""
    if len(text) <= limit:
        return printable(text)
    return printable(text[:limit]) + "..."
