"""bondha.printable: nothing a terminal or a log reader would act on gets through."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from bondha.printable import bounded, printable


def test_terminal_sequences_are_escaped() -> None:
    assert printable("a\x1b[2Jb\x1b]0;title\x07c\x9b31md\ne\u202ef") == (
        r"a\e[2Jb\e]0;title\x07c\x9b31md\ne\u202ef")


def test_plain_text_is_left_alone() -> None:
    text = "GET the routes of bond 3: HTTP 500: <détail> \\n stays"
    assert printable(text) == text


@given(st.text())
def test_nothing_hidden_survives_and_escaping_is_idempotent(text: str) -> None:
    shown = printable(text)
    assert not any(unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}
                   for c in shown)
    assert printable(shown) == shown


def test_bounded_cuts_before_escaping() -> None:
    assert bounded("\x1b" * 1000, 3) == r"\e\e\e..."
    assert bounded("short", 80) == "short"
