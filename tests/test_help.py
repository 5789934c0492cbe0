"""Every command's --help shows an example and the exit codes."""

from __future__ import annotations

import contextlib
import io

import pytest

from bondha.cli import build_parser, main

COMMANDS = ("plan", "apply", "status", "check", "discover", "keepalived-config", "notify",
            "daemon", "demo", "announce")


def help_of(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*args, "--help"]) == 0
    return out.getvalue()


def test_every_command_is_covered() -> None:
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(subparsers.choices) == set(COMMANDS)  # type: ignore[arg-type]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_an_example_and_exit_codes(command: str) -> None:
    text = help_of(command)
    example = text.split("example:\n", 1)[1].splitlines()[0].strip()
    assert example.startswith(f"bondha {command}") or f" {command}" in example
    assert "exit codes:" in text


def test_top_level_help_shows_an_example_of_every_command() -> None:
    text = help_of()
    examples = text.split("examples:\n", 1)[1]
    for command in COMMANDS:
        assert f" {command} " in examples or f" {command}\n" in examples, command


@pytest.mark.parametrize("command", [["demo"], ["daemon"], ["announce", "--interface", "lo",
                                                            "192.0.2.1"],
                                     ["keepalived-config", "--role", "master", "--interface",
                                      "eth1", "--src", "192.168.66.1", "--peer",
                                      "192.168.66.2", "--auth-pass", "x"]])
def test_json_is_refused_where_no_json_document_is_printed(
        command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # Nothing a user asked for is silently ignored: these print text only.
    assert main(["--json", *command]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"--json: bondha {command[0]} prints no JSON document" in captured.err
