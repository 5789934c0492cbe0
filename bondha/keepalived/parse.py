"""Reading keepalived.conf into a tree of keyword lines: just enough syntax to check it.

Pure; unbalanced braces are a UsageError naming the line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import attrs

from ..errors import UsageError

__all__ = ["Node", "parse_keepalived_text"]


@attrs.frozen
class Node:
    """One keyword line of keepalived.conf, with its block's lines when it opens one."""

    keyword: str
    args: tuple[str, ...]
    line: int
    children: tuple[Node, ...] | None = None

    def find(self, keyword: str) -> Node | None:
        return next(self.find_all(keyword), None)

    def find_all(self, keyword: str) -> Iterator[Node]:
        return (child for child in self.children or () if child.keyword == keyword)


def _tokens(text: str) -> Iterator[tuple[int, str]]:
    """(line, token) pairs; quoted strings are one token, comments (# or !) dropped."""
    for number, line in enumerate(text.splitlines(), start=1):
        for match in re.finditer(r'"([^"]*)"?|([{}])|([^\s{}"#!]+)|([#!].*)', line):
            quoted, brace, word, comment = match.groups()
            if comment is not None:
                break
            yield number, quoted if quoted is not None else (brace or word or "")


def parse_keepalived_text(text: str) -> tuple[Node, ...]:
    """The top-level nodes; unbalanced braces raise a UsageError naming the line."""
    open_blocks: list[tuple[list[Node], Node]] = []
    top: list[Node] = []
    words: list[tuple[int, str]] = []

    def here() -> list[Node]:
        return open_blocks[-1][0] if open_blocks else top

    def line_node() -> Node:
        node = Node(words[0][1], tuple(word for _, word in words[1:]), words[0][0])
        words.clear()
        return node

    for line, token in _tokens(text):
        if words and line != words[0][0]:
            here().append(line_node())
        if token == "{":  # noqa: S105 -- a brace, not a password
            open_blocks.append(([], line_node() if words else Node("", (), line)))
        elif token == "}":  # noqa: S105
            if words:
                here().append(line_node())
            if not open_blocks:
                raise UsageError(f"line {line}: '}}' closes no block")
            children, opener = open_blocks.pop()
            here().append(attrs.evolve(opener, children=tuple(children)))
        else:
            words.append((line, token))
    if words:
        here().append(line_node())
    if open_blocks:
        opener = open_blocks[-1][1]
        raise UsageError(f"line {opener.line}: block '{opener.keyword}' is never closed")
    return tuple(top)
