"""The password and the Authorization header never show, whatever runs and whatever fails.

Every command and failure path runs as a separate process with ``-v`` and a sentinel
password; everything it prints (stdout, --json, the log on stderr, tracebacks) is searched
for the password and for the base64 value of the Authorization header.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from bondha.testing import Fault, Fixture, StandInServer, User, example_fixture
from tests.certificates import make_certificates
from tests.conftest import HOOK, ROOT, bondha, run, write_config

SENTINEL = "Sentinel-Pa55word-7f3a"
ACCOUNT = "sentinel@example.net"
TOKEN = base64.b64encode(f"{ACCOUNT}:{SENTINEL}".encode()).decode()
# What a proxy or a debug page might echo back: the request's credentials.
ECHO = f"Authorization: Basic {TOKEN} (password {SENTINEL})"


def assert_no_leak(*outputs: str) -> None:
    for text in outputs:
        assert SENTINEL not in text
        assert SENTINEL.lower() not in text.lower()
        assert TOKEN not in text


@pytest.fixture
def fixture() -> Fixture:
    base = example_fixture()
    return attrs.evolve(base, users=(*base.users, User(ACCOUNT, SENTINEL, bonds={1, 3}),
                                     User("narrow@example.net", SENTINEL, bonds={1}),
                                     User("viewer@example.net", SENTINEL, can_write=False)))


@attrs.frozen
class Setup:
    """Where the sentinel lives: the config text's extra lines and the environment."""

    config_lines: tuple[str, ...]
    env: dict[str, str]


def sentinel_source(kind: str, tmp_path: Path) -> Setup:
    if kind == "passwd":
        return Setup((f"passwd = {SENTINEL}",), {})
    if kind == "env":
        return Setup((), {"BONDHA_PASSWORD": SENTINEL})
    secret = tmp_path / ("bondha-password" if kind == "credential" else "pw")
    secret.write_text(SENTINEL + "\n")
    secret.chmod(0o600)
    if kind == "credential":
        return Setup((), {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    return Setup((f"passwd_file = {secret}",), {})


def make_config(tmp_path: Path, server_url: str, fixture: Fixture, setup: Setup,
                user: str = ACCOUNT, **options: Any) -> Path:
    options = {"attempt_delay": 0.01, "attempts": 2, "timeout": 3, **options}
    text = fixture.config_text(server_url, user=user, password="x", **options)
    lines = [line for line in text.splitlines() if not line.startswith("passwd =")]
    at = lines.index("[bondingadmin]") + 1
    lines[at:at] = setup.config_lines
    lines += ["[bondha]", "deadline = 3"]  # lasting faults end here, not after the default 30 s
    return write_config(tmp_path / "c.conf", "\n".join(lines) + "\n")


COMMANDS: list[tuple[str, ...]] = [
    ("-v", "check"), ("-v", "--json", "check"),
    ("-v", "plan", "--active", "backup"), ("-v", "--json", "plan", "--active", "backup"),
    ("-v", "status"), ("-v", "--json", "status"),
    ("-v", "--json", "apply", "--active", "backup"), ("-v", "apply", "--active", "master"),
    ("-v", "notify", "INSTANCE", "VI_1", "MASTER", "9"),
]


@pytest.mark.parametrize("source", ["passwd", "passwd_file", "env", "credential"])
def test_every_command_with_every_password_source(server: StandInServer, fixture: Fixture,
                                                  tmp_path: Path, source: str) -> None:
    setup = sentinel_source(source, tmp_path)
    path = make_config(tmp_path, server.url, fixture, setup)
    commands = COMMANDS if source == "passwd" else COMMANDS[:2] + COMMANDS[6:7]
    for args in commands:
        out = bondha(*args, config=path, env=setup.env)
        assert out.returncode == 0, (args, out.stderr)
        assert_no_leak(out.stdout, out.stderr)
    hook = run(str(HOOK), "INSTANCE", "VI_1", "MASTER", "10", config=path, env=setup.env)
    assert hook.returncode == 0, hook.stderr
    assert_no_leak(hook.stdout, hook.stderr)


# Each failure: (how to break things, the command, the exit code that proves the path ran).
Breaker = Callable[[StandInServer, Path], dict[str, Any]]


def wrong_password(server: StandInServer, tmp_path: Path) -> dict[str, Any]:
    return {"user": "ha@example.net"}  # exists, but its password is not the sentinel


def forbidden_bond(server: StandInServer, tmp_path: Path) -> dict[str, Any]:
    return {"user": "narrow@example.net"}


def read_only(server: StandInServer, tmp_path: Path) -> dict[str, Any]:
    return {"user": "viewer@example.net"}


def echoing_errors(server: StandInServer, tmp_path: Path) -> dict[str, Any]:
    server.inject(Fault(method="GET", status=503, body=f'{{"detail": "{ECHO}"}}', count=1))
    server.inject(Fault(method="PATCH", status=500, body=f"<html><pre>{ECHO}</pre></html>"))
    return {}


def echoing_html_404(server: StandInServer, tmp_path: Path) -> dict[str, Any]:
    server.inject(Fault(status=404, body=f"<html>{ECHO}</html>"))
    return {}


def echoing_garbage(server: StandInServer, tmp_path: Path) -> dict[str, Any]:
    server.inject(Fault(method="GET", status=200, body=f"not json {ECHO}"))
    return {}


def echoing_bad_field(server: StandInServer, tmp_path: Path) -> dict[str, Any]:
    server.inject(Fault(method="PATCH", status=400, body=f'{{"enabled": ["{ECHO}"]}}'))
    return {}


def echoing_next_link(server: StandInServer, tmp_path: Path) -> dict[str, Any]:
    body = f'{{"results": [], "next": "https://evil.example/{SENTINEL}/{TOKEN}"}}'
    server.inject(Fault(method="GET", path=r"/routes/$", status=200, body=body))
    return {}


def unknown_id(server: StandInServer, tmp_path: Path) -> dict[str, Any]:
    return {"replace": ("master_route_ids = 7", "master_route_ids = 7, 99")}


def unreachable(server: StandInServer, tmp_path: Path) -> dict[str, Any]:
    server.stop()
    return {}


def readable_file(server: StandInServer, tmp_path: Path) -> dict[str, Any]:
    return {"mode": 0o644}


def bad_option(server: StandInServer, tmp_path: Path) -> dict[str, Any]:
    return {"timeout": "soon", "verify_ssl": "perhaps"}


FAILURES: list[tuple[Breaker, tuple[str, ...], int]] = [
    (wrong_password, ("-v", "check"), 3),
    (wrong_password, ("-v", "--json", "apply", "--active", "backup"), 3),
    (wrong_password, ("-v", "notify", "INSTANCE", "VI_1", "MASTER", "9"), 3),
    (forbidden_bond, ("-v", "--json", "plan", "--active", "backup"), 3),
    (read_only, ("-v", "check"), 3),
    (read_only, ("-v", "--json", "apply", "--active", "backup"), 1),
    (echoing_errors, ("-v", "--json", "apply", "--active", "backup"), 1),
    (echoing_html_404, ("-v", "status"), 3),
    (echoing_garbage, ("-v", "--json", "check"), 1),
    (echoing_bad_field, ("-v", "apply", "--active", "backup"), 1),
    (echoing_next_link, ("-v", "plan", "--active", "backup"), 1),
    (unknown_id, ("-v", "--json", "plan", "--active", "backup"), 3),
    (unreachable, ("-v", "notify", "INSTANCE", "VI_1", "MASTER", "9"), 1),
    (readable_file, ("-v", "apply", "--active", "backup"), 2),
    (bad_option, ("-v", "--json", "check"), 2),
]


@pytest.mark.parametrize(("breaker", "args", "code"), FAILURES,
                         ids=[f"{b.__name__}-{a[-1] if a[-1] != 'backup' else a[-3]}"
                              for b, a, _ in FAILURES])
def test_failure_paths(server: StandInServer, fixture: Fixture, tmp_path: Path,
                       breaker: Breaker, args: tuple[str, ...], code: int) -> None:
    options = breaker(server, tmp_path)
    mode = options.pop("mode", 0o600)
    old, new = options.pop("replace", ("", ""))
    setup = sentinel_source("passwd", tmp_path)
    path = make_config(tmp_path, server.url, fixture, setup, **options)
    path.write_text(path.read_text().replace(old, new) if old else path.read_text())
    path.chmod(mode)
    out = bondha(*args, config=path)
    assert out.returncode == code, out.stderr
    assert "Traceback" not in out.stderr
    assert_no_leak(out.stdout, out.stderr)


def test_untrusted_tls_certificate(fixture: Fixture, tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    with StandInServer(fixture, ssl_context=certs.server_context()) as tls:
        path = make_config(tmp_path, tls.url, fixture, sentinel_source("passwd", tmp_path))
        out = bondha("-v", "--json", "apply", "--active", "backup", config=path)
    assert out.returncode == 1
    assert "not trusted" in out.stderr
    assert_no_leak(out.stdout, out.stderr)


@pytest.mark.parametrize("line", [f"passwd {SENTINEL}", f"  {SENTINEL}", f"passwd = {SENTINEL}"])
def test_syntax_errors_around_the_password(tmp_path: Path, line: str) -> None:
    text = f"[bondingadmin]\nhost = h\nuser = {ACCOUNT}\npasswd = a\n{line}\n[bond\n"
    out = bondha("-v", "check", config=write_config(tmp_path / "c.conf", text))
    assert out.returncode == 2
    assert_no_leak(out.stdout, out.stderr)


def test_bad_notify_arguments(config_path: Path) -> None:
    for args in (("INSTANCE", "VI_1", "PRIMARY", "10"), ("VI_1", "MASTER")):
        out = bondha("-v", "notify", *args, config=config_path)
        assert out.returncode == 2
        assert_no_leak(out.stdout, out.stderr)


def test_internal_error_traceback_with_v(server: StandInServer, fixture: Fixture,
                                         tmp_path: Path) -> None:
    """A bug in a dependency: the -v traceback shows the frames, not the credentials."""
    path = make_config(tmp_path, server.url, fixture, sentinel_source("passwd", tmp_path))
    program = (
        "import sys, bondha.transport\n"
        "async def broken(self, request, **kwargs):\n"
        "    raise RuntimeError('transport exploded on ' + request.method)\n"
        "bondha.transport.Lanes.exchange = broken\n"
        "from bondha.cli import main\n"
        f"sys.exit(main(['-v', '--config', {str(path)!r}, 'apply', '--active', 'backup']))\n"
    )
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                         timeout=60, check=False, cwd=ROOT)
    assert out.returncode == 1
    assert "internal error" in out.stderr
    assert "Traceback" in out.stderr
    assert_no_leak(out.stdout, out.stderr)


@pytest.fixture
def config_path(server: StandInServer, fixture: Fixture, tmp_path: Path) -> Path:
    return make_config(tmp_path, server.url, fixture, sentinel_source("passwd", tmp_path))
