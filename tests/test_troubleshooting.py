"""Every message bondha can print as an error or a warning is on docs/troubleshooting.md.

The messages are found in the source, not listed by hand: the test walks the syntax tree of
every module of bondha/ (bondha/testing excluded: the stand-in server is not bondha talking
to an operator) and takes the text of

- every exception of errors.py's tree, ``Invalid`` (a config value) and argparse's
  ``ArgumentTypeError`` that is constructed;
- every ``log.error``/``log.warning``/``log.critical`` format;
- every ``*.error(...)``/``*.warn(...)`` of the config and keepalived.conf reporters (the
  message is their last argument) and every ``Finding(...)``;
- every string appended to ``warnings``/``findings``/``problems`` (what ``check`` prints);
- every string assigned to a variable named ``message`` (the client's HTTP errors).

Each text becomes a pattern: f-string fields and ``%s``-style fields turn into ``{}``, and
so does anything that is not a string literal. The page writes fields as ``{name}`` or
``<name>``; both turn into ``{}`` too. A pattern that is only fields and punctuation says
nothing and is skipped.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import bondha.errors

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "troubleshooting.md"
FIELD = "{}"

_ERROR_CLASSES = {name for name, value in vars(bondha.errors).items()
                  if isinstance(value, type) and issubclass(value, bondha.errors.BondhaError)}
# ValueError: bondha's parsers of option values raise it; the command line prints it.
_CONSTRUCTORS = _ERROR_CLASSES | {"Invalid", "ArgumentTypeError", "SecretFileError",
                                  "ValueError"}
_LOGGERS = {"log", "logger", "logging"}
_LOG_METHODS = {"error", "warning", "critical", "exception"}
_REPORTER_METHODS = {"error", "warn"}
_COLLECTIONS = {"warnings", "findings", "problems"}
_PERCENT = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?[sdrgfixX]")
_PAGE_FIELD = re.compile(r"\{[^{}\n]*\}|<[^<>\n]+>")


def _text(node: ast.AST) -> str:
    """The literal text of a message expression, with a field for each computed part."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(part) if isinstance(part, ast.Constant) else FIELD
                       for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    return FIELD


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _messages_of(call: ast.Call) -> Iterator[ast.expr]:
    name = _name(call.func)
    args = call.args
    if not args:
        return
    receiver = call.func.value if isinstance(call.func, ast.Attribute) else None
    receiver_name = _name(receiver) if receiver is not None else ""
    if name in _CONSTRUCTORS:
        yield from args if name == "ConfigError" else args[:1]
    elif name == "Finding":
        yield args[-1]
    elif name in _LOG_METHODS and receiver_name in _LOGGERS:
        yield args[0]
    elif name in _REPORTER_METHODS and receiver is not None:
        yield args[-1]
    elif name == "append" and receiver_name in _COLLECTIONS:
        yield args[0]


def normalise(text: str) -> str:
    text = _PERCENT.sub(FIELD, text.replace("%%", "%"))
    return " ".join(text.split())


@functools.cache
def messages() -> dict[str, list[str]]:
    """Each message pattern, with where it is defined."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "bondha").rglob("*.py")):
        if "testing" in path.relative_to(ROOT / "bondha").parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                exprs = list(_messages_of(node))
            elif isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "message" for t in node.targets):
                exprs = [node.value]
            else:
                continue
            for expr in exprs:
                pattern = normalise(_text(expr))
                if re.search(r"[A-Za-z]{2}", pattern.replace(FIELD, "")):
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    found.setdefault(pattern, []).append(where)
    return found


@functools.cache
def page_text() -> str:
    text = PAGE.read_text(encoding="utf-8").replace("`", "")
    return normalise(_PAGE_FIELD.sub(FIELD, text))


def _matches(pattern: str, page: str) -> bool:
    """The pattern's literal pieces appear on the page in order, each field matching one
    field of the page, or some text (the page may spell out an example value)."""
    pieces = [re.escape(piece) for piece in pattern.split(FIELD)]
    return re.search(r"(?:\{\}|.{0,80}?)".join(pieces), page) is not None


def test_the_collector_finds_messages_of_every_kind() -> None:
    found = messages()
    assert len(found) > 100
    for sample in ("state directory {}: cannot create it: {}",  # StateError
                   "must be an absolute path (starting with /)",  # _Invalid
                   "required option is missing",  # the config reporter
                   "{}: failed: {}",  # log.error
                   "does not end in .prom; node_exporter's textfile collector reads only "
                   "*.prom files"):  # report.warn
        assert sample in found, sorted(found)


def test_the_matcher_needs_every_piece_in_order() -> None:
    page = normalise(_PAGE_FIELD.sub(FIELD, "state directory <path>: cannot create it: {reason}"))
    assert _matches("state directory {}: cannot create it: {}", page)
    assert not _matches("state directory {}: cannot remove it: {}", page)
    assert not _matches("cannot create it: {}: state directory", page)


@pytest.mark.parametrize("pattern", sorted(messages()))
def test_every_message_is_explained_on_the_troubleshooting_page(pattern: str) -> None:
    assert _matches(pattern, page_text()), (
        f"docs/troubleshooting.md does not explain {pattern!r} "
        f"(defined at {', '.join(messages()[pattern])})")
